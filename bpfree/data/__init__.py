"""Datasets loaded whole onto the training device, and mini-batches as index slices of them."""

from bpfree.data.batches import Batches
from bpfree.data.datasets import DATASETS, Dataset, DatasetSpec, load_dataset, resolve_data_dir
from bpfree.data.download import download
from bpfree.data.errors import DataError
from bpfree.data.formats import read_cifar_batch, read_idx

__all__ = [
    "DATASETS",
    "Batches",
    "DataError",
    "Dataset",
    "DatasetSpec",
    "download",
    "load_dataset",
    "read_cifar_batch",
    "read_idx",
    "resolve_data_dir",
]
