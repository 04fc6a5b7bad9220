"""Text to token ids: a byte-level BPE trained with the ``tokenizers`` package, or raw bytes.

A BPE is trained on the training split only and saved beside the run (``tokenizer.json``), so
that a resumed run, and anyone reading its results, uses the very same vocabulary.

>>> tokenizer = train_bpe(documents, vocab_size=8192)
>>> ids = tokenizer.encode(["To be, or not to be"])   # int64 array of token ids
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bpfree.core.extras import require
from bpfree.core.files import write_text
from bpfree.data.errors import DataError

TOKENIZERS = ("bpe", "bytes")

# Documents encoded per call of the BPE: bounded memory on WikiText-103's 1.8M lines.
_ENCODE_BATCH = 4096


class ByteTokenizer:
    """A text's UTF-8 bytes as its tokens: 256 ids, nothing to train or save."""

    vocab_size = 256

    def encode(self, documents: Iterable[str]) -> np.ndarray:
        """The documents' bytes one after the other, as int64 ids."""
        data = b"".join(document.encode("utf-8") for document in documents)
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64)

    def save(self, path: Path) -> None:
        """Nothing to save: bytes need no vocabulary."""


class BPETokenizer:
    """A byte-level BPE (``tokenizers.Tokenizer``): every text encodes, no unknown token."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, documents: Iterable[str]) -> np.ndarray:
        """The documents' tokens one after the other, as int64 ids."""
        pieces, batch = [], []
        for document in documents:
            batch.append(document)
            if len(batch) == _ENCODE_BATCH:
                pieces.extend(self._encode(batch))
                batch = []
        pieces.extend(self._encode(batch))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)

    def _encode(self, batch: Sequence[str]) -> list[np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(batch), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def save(self, path: Path) -> None:
        """Write the tokenizer's JSON to ``path``, whole or not at all."""
        write_text(path, self.tokenizer.to_str())

    @classmethod
    def load(cls, path: Path) -> BPETokenizer:
        """The tokenizer ``save`` wrote; a ``DataError`` naming the file if it cannot be read."""
        tokenizers = require("tokenizers", extra="text", needed_for="a BPE tokenizer")
        try:
            return cls(tokenizers.Tokenizer.from_file(str(path)))
        except Exception as error:  # tokenizers raises its own exception types
            raise DataError(
                f"{path}: not a tokenizer saved by bpfree ({error}); delete it to train a new one"
            ) from None


def train_bpe(documents: Iterable[str], *, vocab_size: int) -> BPETokenizer:
    """A byte-level BPE of ``vocab_size`` ids trained on ``documents``."""
    tokenizers = require("tokenizers", extra="text", needed_for="a BPE tokenizer")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer)
    return BPETokenizer(tokenizer)
