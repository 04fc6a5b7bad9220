"""The dataset registry, and loading a whole dataset into tensors on the training device."""

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from bpfree.core.registry import Registry
from bpfree.data.download import download as download_file
from bpfree.data.download import extract
from bpfree.data.errors import DataError
from bpfree.data.formats import read_cifar_batch, read_idx

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "BPFREE_DATA"
DEFAULT_DATA_DIR = "~/.cache/bpfree"


@dataclass(frozen=True)
class Source:
    """One published file to fetch: its name under the base URL, its md5, the files it yields.

    A `.tar.gz` or `.zip` source is an archive: it is unpacked into the data root, which it
    fills with the dataset's folder. Any other source is saved as is into the dataset's folder.
    """

    filename: str
    md5: str
    provides: tuple[str, ...]

    @property
    def is_archive(self) -> bool:
        """Whether the file is an archive to unpack (.tar.gz, .zip) rather than a file to keep."""
        return self.filename.endswith((".tar.gz", ".zip"))


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is, which files it needs under the data root, and where they come from.

    layout is "idx" (train/test pairs of images and labels files, each plain or `.gz`) or
    "cifar" (python pickle batches); train_files and test_files are the files each split reads.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    folder: str
    layout: Literal["idx", "cifar"]
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    base_url: str
    sources: tuple[Source, ...]

    @property
    def files(self) -> tuple[str, ...]:
        """Every file the dataset needs in its folder."""
        return self.train_files + self.test_files


@dataclass
class Dataset:
    """A whole dataset on one device: images (N, C, H, W) float32 in [0, 1], labels (N,) int64.

    Checked once, where it enters (``load_dataset``): every label is a class index (each file
    is refused otherwise) and the images are bytes scaled to [0, 1], finite by construction;
    so a training step need not check its batch (``Rule.step(..., check=False)``).
    """

    name: str
    num_classes: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape (C, H, W) of one image."""
        return tuple(self.train_x.shape[1:])


_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_spec(name: str, base_url: str, md5s: tuple[str, str, str, str]) -> DatasetSpec:
    """Spec of an MNIST-format dataset: four IDX files, published gzipped one by one."""
    return DatasetSpec(
        name=name,
        num_classes=10,
        input_shape=(1, 28, 28),
        folder=name,
        layout="idx",
        train_files=_IDX_FILES[:2],
        test_files=_IDX_FILES[2:],
        base_url=base_url,
        sources=tuple(
            Source(f"{file}.gz", md5, (file,)) for file, md5 in zip(_IDX_FILES, md5s, strict=True)
        ),
    )


def _cifar_spec(
    name: str,
    num_classes: int,
    folder: str,
    train_files: tuple[str, ...],
    test_file: str,
    archive: str,
    md5: str,
) -> DatasetSpec:
    """Spec of a CIFAR dataset: python pickle batches, published as one .tar.gz archive."""
    files = (*train_files, test_file)
    return DatasetSpec(
        name=name,
        num_classes=num_classes,
        input_shape=(3, 32, 32),
        folder=folder,
        layout="cifar",
        train_files=train_files,
        test_files=(test_file,),
        base_url="https://www.cs.toronto.edu/~kriz/",
        sources=(Source(archive, md5, files),),
    )


# Checksums as in torchvision/datasets/mnist.py and cifar.py.
DATASETS: Registry[DatasetSpec] = Registry("dataset")
for _spec in (
    _idx_spec(
        "mnist",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
    _idx_spec(
        "fashion-mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ),
    _cifar_spec(
        "cifar10",
        10,
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    _cifar_spec(
        "cifar100",
        100,
        "cifar-100-python",
        ("train",),
        "test",
        "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
):
    DATASETS.add(_spec.name, _spec)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data root: the explicit argument, else $BPFREE_DATA, else ~/.cache/bpfree."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    download: bool = True,
    mirror: str | None = None,
) -> Dataset:
    """Load a registered dataset whole onto device, downloading missing files if allowed.

    data_dir is the data root (see resolve_data_dir); mirror replaces the spec's base URL.
    Raises DataError naming the file and the fix when a file is missing, corrupt or inconsistent.
    """
    try:
        spec = DATASETS.lookup(name)
    except ValueError as error:
        raise DataError(str(error)) from None
    root = resolve_data_dir(data_dir)
    folder = root / spec.folder
    missing = _missing(spec, folder)
    if missing and download:
        try:
            fetch(spec, root, missing, mirror or spec.base_url)
        except DataError as err:
            raise DataError(_missing_message(spec, folder, missing, str(err))) from err
        missing = _missing(spec, folder)
    if missing:
        reason = "the download did not provide them" if download else "downloading is off"
        raise DataError(_missing_message(spec, folder, missing, reason))
    read = _READERS[spec.layout]
    train_x, train_y = read(spec, [_locate(spec, folder, file) for file in spec.train_files])
    test_x, test_y = read(spec, [_locate(spec, folder, file) for file in spec.test_files])
    logger.info(
        "%s: read %d train and %d test images from %s", name, len(train_y), len(test_y), folder
    )
    return Dataset(
        name=name,
        num_classes=spec.num_classes,
        train_x=_images_to_tensor(train_x, device),
        train_y=torch.from_numpy(train_y).to(device),
        test_x=_images_to_tensor(test_x, device),
        test_y=torch.from_numpy(test_y).to(device),
    )


def _locate(spec: DatasetSpec, folder: Path, file: str) -> Path | None:
    """The path holding a required file, or None; IDX files may also be gzipped as FILE.gz."""
    candidates = (file, f"{file}.gz") if spec.layout == "idx" else (file,)
    return next((folder / c for c in candidates if (folder / c).is_file()), None)


def _missing(spec: DatasetSpec, folder: Path) -> list[str]:
    """The required files absent from folder."""
    return [file for file in spec.files if _locate(spec, folder, file) is None]


def _missing_message(spec: DatasetSpec, folder: Path, missing: Sequence[str], reason: str) -> str:
    """Say which files are missing where, why they were not fetched, and how to provide them."""
    kind = " (IDX files, plain or .gz)" if spec.layout == "idx" else ""
    return (
        f"{spec.name}: missing {', '.join(missing)} in {folder}; {reason}. "
        f"Pass --data-dir DIR or set {DATA_DIR_ENV} to a folder holding them, "
        f"as DIR/{spec.folder}/FILE{kind}."
    )


class Published(Protocol):
    """What ``fetch`` reads of a spec (image or text): its folder and its published sources."""

    folder: str
    sources: tuple[Source, ...]


def fetch(spec: Published, root: Path, missing: Sequence[str], base_url: str) -> None:
    """Download (and unpack) the sources that provide the missing files."""
    base_url = base_url.rstrip("/") + "/"
    for source in spec.sources:
        if not set(source.provides) & set(missing):
            continue
        url = base_url + source.filename
        if not source.is_archive:
            download_file(url, root / spec.folder / source.filename, source.md5)
            continue
        archive = download_file(url, root / source.filename, source.md5)
        try:
            extract(archive, root)
        finally:
            archive.unlink(missing_ok=True)


def _read_idx_split(spec: DatasetSpec, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read one split from its (images, labels) IDX files, checking they agree."""
    images_path, labels_path = paths
    images, labels = read_idx(images_path), read_idx(labels_path)
    _, height, width = spec.input_shape
    if images.dtype != np.uint8 or images.shape[1:] != (height, width):
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, {height}, {width}) "
            f"for {spec.name}, found {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{labels_path}: expected integer labels of shape (N,), "
            f"found {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; one of them is from another release, replace both"
        )
    _check_labels(spec, labels, labels_path)
    return images.reshape(-1, *spec.input_shape), labels.astype(np.int64)


def _read_cifar_split(spec: DatasetSpec, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read one split from its CIFAR pickle batches, concatenated in order."""
    batches = [read_cifar_batch(path) for path in paths]
    for path, (_, labels) in zip(paths, batches, strict=True):
        _check_labels(spec, labels, path)
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


_READERS: dict[str, Callable[[DatasetSpec, Sequence[Path]], tuple[np.ndarray, np.ndarray]]] = {
    "idx": _read_idx_split,
    "cifar": _read_cifar_split,
}


def _check_labels(spec: DatasetSpec, labels: np.ndarray, path: Path) -> None:
    """Raise DataError naming path unless every label is a class index of spec."""
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DataError(
            f"{path}: labels must lie in [0, {spec.num_classes}) for {spec.name}, "
            f"found {labels.min()}..{labels.max()}; the file is corrupt or belongs "
            "to another dataset"
        )


def _images_to_tensor(images: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """uint8 images to float32 in [0, 1] on device (moved as uint8: a quarter of the bytes)."""
    return torch.from_numpy(images).to(device).float().div_(255)
