"""Readers of the file formats the dataset authors publish: IDX (MNIST) and CIFAR pickle batches."""

import gzip
import math
import pickle
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bpfree.data.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes (third magic byte) to their big-endian element types.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# The only globals a CIFAR batch needs (numpy arrays, numpy scalars, Python 2 byte strings);
# refusing the rest keeps a tampered pickle from running code.
_CIFAR_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)

_CIFAR_PIXELS = 3 * 32 * 32


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, plain or gzip (told by its magic bytes), into a native-endian array."""
    path = Path(path)
    raw = _read_bytes(path)
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"{path}: corrupt or truncated gzip data ({err}); "
                "delete the file and download it again"
            ) from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); "
            "expected the MNIST-format files, plain or gzip"
        )
    dtype = _IDX_DTYPES.get(raw[2])
    if dtype is None:
        raise DataError(f"{path}: unknown IDX type code 0x{raw[2]:02x}; the file is corrupt")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(
            f"{path}: IDX header is truncated or declares {ndim} dimensions; "
            "delete the file and download it again"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(
            f"{path}: IDX file is {what} ({len(raw)} bytes, header {shape} needs "
            f"{expected}); delete the file and download it again"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10/100 python batch into uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            batch = _CifarUnpickler(f).load()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    except Exception as err:  # unpickling malformed bytes can fail with almost any exception
        raise DataError(
            f"{path}: not a CIFAR python batch ({type(err).__name__}: {err}); "
            "delete the file and download it again"
        ) from err
    if not isinstance(batch, dict):
        raise DataError(f"{path}: a CIFAR batch is a dict, found {type(batch).__name__}")
    data = batch.get(b"data")
    labels = batch.get(b"labels", batch.get(b"fine_labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(
            f"{path}: a CIFAR batch needs b'data' (an array) and b'labels' or "
            f"b'fine_labels'; found keys {sorted(map(repr, batch))}"
        )
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
        raise DataError(
            f"{path}: b'data' must be uint8 of shape (N, {_CIFAR_PIXELS}), "
            f"found {data.dtype} {data.shape}"
        )
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise DataError(
            f"{path}: labels must be {len(data)} integers (one per image), "
            f"found {labels.dtype} {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_bytes(path: Path) -> bytes:
    """Read a whole file, turning an OS error into a DataError that names it."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from err


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches (Python 2 strings kept as bytes) that runs no foreign code."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, encoding="bytes")

    def find_class(self, module: str, name: str) -> object:
        """Resolve only the numpy globals a CIFAR batch uses."""
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}, a CIFAR batch holds only numpy arrays and lists"
            )
        return super().find_class(module, name)
