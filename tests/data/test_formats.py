"""The IDX and CIFAR readers give back exactly what was written and reject damaged files by name."""

import gzip
import os
import pickle
import re
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pytest

from bpfree.data import DataError, read_cifar_batch, read_idx


def _raises_naming(path: Path) -> AbstractContextManager:
    """Expect a DataError whose message names path."""
    return pytest.raises(DataError, match=re.escape(str(path)))


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([7, 0, 9], dtype=np.uint8),
        np.array([-128, 0, 127], dtype=np.int8),
        np.array([[1, -70000], [2**31 - 1, 5]], dtype=np.int32),
        np.array([[0.5, -1.25, 3e9]], dtype=np.float32),
        np.array([1e300, -2.5], dtype=np.float64),
    ],
)
def test_read_idx_gives_back_what_was_written(tmp_path, write_idx, array, gzipped):
    path = write_idx(tmp_path / "a-idx-ubyte", array, gzipped=gzipped)
    out = read_idx(path)
    assert out.dtype == array.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_decodes_the_published_layout(tmp_path):
    # magic 00 00 type ndim, then big-endian uint32 dims, then big-endian data (the MNIST spec)
    path = tmp_path / "ints"
    header = bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 2])
    path.write_bytes(header + bytes([0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFE]))
    np.testing.assert_array_equal(read_idx(path), [[256, -2]])
    path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 0, 255]))
    np.testing.assert_array_equal(read_idx(path), [7, 0, 255])


def test_read_idx_tells_gzip_by_magic_bytes_not_name(tmp_path, write_idx):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "plain.gz", array)), array)
    np.testing.assert_array_equal(
        read_idx(write_idx(tmp_path / "packed", array, gzipped=True)), array
    )


def _damage(raw: bytes, how: str) -> bytes:
    """A damaged copy of a valid IDX file of 2x3 uint8."""
    return {
        "truncated data": raw[:-1],
        "trailing bytes": raw + b"\0",
        "bad magic": b"\x01" + raw[1:],
        "unknown type code": raw[:2] + b"\x07" + raw[3:],
        "no dimensions": raw[:3] + b"\x00",
        "truncated header": raw[:6],
        "empty": b"",
        "truncated gzip": gzip.compress(raw)[:-9],
    }[how]


@pytest.mark.parametrize(
    "how",
    [
        "truncated data",
        "trailing bytes",
        "bad magic",
        "unknown type code",
        "no dimensions",
        "truncated header",
        "empty",
        "truncated gzip",
    ],
)
def test_read_idx_rejects_damaged_file_by_name(tmp_path, write_idx, how):
    path = write_idx(tmp_path / "images-idx3-ubyte", np.ones((2, 3), dtype=np.uint8))
    path.write_bytes(_damage(path.read_bytes(), how))
    with _raises_naming(path):
        read_idx(path)


def test_read_idx_missing_file_is_a_data_error(tmp_path):
    with _raises_naming(tmp_path / "nothing"):
        read_idx(tmp_path / "nothing")


@pytest.mark.parametrize("label_key", [b"labels", b"fine_labels"])
def test_read_cifar_batch_gives_back_what_was_written(tmp_path, write_cifar_batch, label_key):
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    path = write_cifar_batch(tmp_path / "batch", images, [4, 0, 99], label_key=label_key)
    x, y = read_cifar_batch(path)
    assert x.dtype == np.uint8 and x.shape == (3, 3, 32, 32)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, [4, 0, 99])


def test_read_cifar_batch_keeps_the_channel_plane_layout(tmp_path):
    # A batch row is 1024 red, then 1024 green, then 1024 blue bytes, each plane row-major.
    row = np.concatenate([np.full(1024, 1), np.full(1024, 2), np.arange(1024) % 256])
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": row.astype(np.uint8)[None], b"labels": [1]}))
    x, _ = read_cifar_batch(path)
    assert (x[0, 0] == 1).all() and (x[0, 1] == 2).all()
    assert x[0, 2, 0, 5] == 5 and x[0, 2, 1, 0] == 32


def _malformed(how: str) -> bytes:
    """The bytes of a malformed CIFAR batch."""
    data = np.zeros((2, 3072), dtype=np.uint8)
    good = pickle.dumps({b"data": data, b"labels": [1, 2]})
    return {
        "garbage": b"this is not a pickle",
        "truncated": good[: len(good) // 2],
        "not a dict": pickle.dumps([data, [1, 2]]),
        "no labels": pickle.dumps({b"data": data}),
        "no data": pickle.dumps({b"labels": [1, 2]}),
        "wrong pixel count": pickle.dumps({b"data": data[:, :1000], b"labels": [1, 2]}),
        "wrong dtype": pickle.dumps({b"data": data.astype(np.float32), b"labels": [1, 2]}),
        "label count": pickle.dumps({b"data": data, b"labels": [1, 2, 3]}),
        "float labels": pickle.dumps({b"data": data, b"labels": [1.5, 2.0]}),
    }[how]


@pytest.mark.parametrize(
    "how",
    [
        "garbage",
        "truncated",
        "not a dict",
        "no labels",
        "no data",
        "wrong pixel count",
        "wrong dtype",
        "label count",
        "float labels",
    ],
)
def test_read_cifar_batch_rejects_malformed_file_by_name(tmp_path, how):
    path = tmp_path / "data_batch_1"
    path.write_bytes(_malformed(how))
    with _raises_naming(path):
        read_cifar_batch(path)


class _Payload:
    """Unpickles into a call of os.mkdir: what a tampered batch could run."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.target),)


def test_read_cifar_batch_runs_no_code_from_the_file(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Payload(marker), b"labels": []}))
    with _raises_naming(path):
        read_cifar_batch(path)
    assert not marker.exists()
