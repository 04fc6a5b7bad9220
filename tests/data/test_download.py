"""Downloads are checksummed and atomic, and load_dataset falls back to them, all over 127.0.0.1."""

import dataclasses
import gzip
import hashlib
import io
import socket
import tarfile
import time
from pathlib import Path

import pytest

from bpfree.data import DATASETS, DataError, download, load_dataset
from bpfree.data.download import extract_tar

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _md5(path: Path) -> str:
    """Hex md5 of a file."""
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _with_md5s(monkeypatch: pytest.MonkeyPatch, name: str, md5s: dict[str, str]) -> None:
    """Swap the registered checksums of a dataset for those of the tiny files."""
    spec = DATASETS[name]
    sources = tuple(dataclasses.replace(s, md5=md5s[s.filename]) for s in spec.sources)
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(spec, sources=sources))


def test_download_writes_the_verified_file(tmp_path, serve):
    (tmp_path / "server").mkdir()
    payload = tmp_path / "server" / "file.bin"
    payload.write_bytes(bytes(range(256)) * 5000)
    url = serve(tmp_path / "server") + "file.bin"
    dest = tmp_path / "out" / "file.bin"
    assert download(url, dest, _md5(payload)) == dest
    assert dest.read_bytes() == payload.read_bytes()
    assert list(dest.parent.iterdir()) == [dest]


def test_wrong_checksum_leaves_nothing_behind(tmp_path, serve):
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "file.bin").write_bytes(b"not what was published")
    url = serve(tmp_path / "server") + "file.bin"
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DataError, match="checksum mismatch"):
        download(url, dest, "0" * 32)
    assert list(dest.parent.iterdir()) == []


def test_missing_remote_file_leaves_nothing_behind(tmp_path, serve):
    (tmp_path / "server").mkdir()
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DataError, match="404"):
        download(serve(tmp_path / "server") + "file.bin", dest, "0" * 32)
    assert list(dest.parent.iterdir()) == []


def test_unreachable_server_fails_fast(tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="cannot download"):
        download(_closed_port_url() + "file.bin", dest, "0" * 32, timeout=2.0)
    assert list(tmp_path.iterdir()) == []


def test_load_dataset_downloads_missing_mnist_from_mirror(tmp_path, make_mnist, serve, monkeypatch):
    written = make_mnist(tmp_path / "server", gzipped=True)
    _with_md5s(
        monkeypatch, "mnist", {f"{f}.gz": _md5(tmp_path / "server" / f"{f}.gz") for f in _IDX_FILES}
    )
    root = tmp_path / "data"
    data = load_dataset("mnist", root, mirror=serve(tmp_path / "server").rstrip("/"))
    assert data.train_x.shape == (12, 1, 28, 28) and data.test_y.shape == (5,)
    assert data.train_y.tolist() == written["train-labels-idx1-ubyte"].tolist()
    downloaded = sorted(p.name for p in (root / "mnist").iterdir())
    assert downloaded == sorted(f"{f}.gz" for f in _IDX_FILES)


def test_load_dataset_downloads_only_the_missing_files(tmp_path, make_mnist, serve, monkeypatch):
    make_mnist(tmp_path / "server", gzipped=True)
    _with_md5s(
        monkeypatch, "mnist", {f"{f}.gz": _md5(tmp_path / "server" / f"{f}.gz") for f in _IDX_FILES}
    )
    make_mnist(tmp_path / "data" / "mnist", gzipped=False)
    (tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    load_dataset("mnist", tmp_path / "data", mirror=serve(tmp_path / "server"))
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(
        [*_IDX_FILES[:3], "t10k-labels-idx1-ubyte.gz"]
    )


def test_load_dataset_with_wrong_checksum_keeps_no_file(tmp_path, make_mnist, serve):
    make_mnist(tmp_path / "server", gzipped=True)  # the registry's md5s are the real files'
    root = tmp_path / "data"
    with pytest.raises(DataError, match="checksum mismatch") as err:
        load_dataset("mnist", root, mirror=serve(tmp_path / "server"))
    assert "train-images-idx3-ubyte" in str(err.value) and "--data-dir" in str(err.value)
    assert list((root / "mnist").iterdir()) == []


def test_load_dataset_without_network_says_how_to_provide_files(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", tmp_path, mirror=_closed_port_url())
    assert time.perf_counter() - start < 5.0
    message = str(err.value)
    assert all(f in message for f in _IDX_FILES)
    assert str(tmp_path / "fashion-mnist") in message
    assert "--data-dir" in message and "BPFREE_DATA" in message
    assert list((tmp_path / "fashion-mnist").iterdir()) == []


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    """Write a .tar.gz holding the given files."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_load_dataset_downloads_and_unpacks_cifar10(tmp_path, make_cifar, serve, monkeypatch):
    files = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
    written = make_cifar(tmp_path / "batches", files, 10, b"labels", n=2)
    (tmp_path / "server").mkdir()
    archive = _tar_gz(
        tmp_path / "server" / "cifar-10-python.tar.gz",
        {f"cifar-10-batches-py/{f}": (tmp_path / "batches" / f).read_bytes() for f in files},
    )
    _with_md5s(monkeypatch, "cifar10", {archive.name: _md5(archive)})
    root = tmp_path / "data"
    data = load_dataset("cifar10", root, mirror=serve(tmp_path / "server"))
    assert data.train_x.shape == (10, 3, 32, 32) and data.test_x.shape == (2, 3, 32, 32)
    assert data.test_y.tolist() == written["test_batch"][1]
    assert [p.name for p in root.iterdir()] == ["cifar-10-batches-py"]  # the archive is gone


def test_extract_tar_refuses_members_outside_the_folder(tmp_path):
    archive = _tar_gz(tmp_path / "evil.tar.gz", {"../escaped": b"x"})
    (tmp_path / "into").mkdir()
    with pytest.raises(DataError, match=r"evil\.tar\.gz"):
        extract_tar(archive, tmp_path / "into")
    assert not (tmp_path / "escaped").exists()


def test_extract_tar_rejects_a_corrupt_archive(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(gzip.compress(b"not a tar archive at all" * 40)[:50])
    with pytest.raises(DataError, match=r"broken\.tar\.gz"):
        extract_tar(archive, tmp_path)
