"""load_dataset reads the published layouts into checked tensors and says how to fix the rest."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bpfree.data import DATASETS, DataError, load_dataset, resolve_data_dir

_CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


def _check_images(x: torch.Tensor, expected_uint8: np.ndarray) -> None:
    """x is float32 in [0, 1] and equals the written uint8 pixels divided by 255."""
    assert x.dtype == torch.float32
    assert x.min().item() >= 0.0 and x.max().item() <= 1.0
    torch.testing.assert_close(x, torch.from_numpy(expected_uint8).float() / 255, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gzipped", [False, True])
def test_load_idx_dataset(tmp_path, make_mnist, name, gzipped):
    written = make_mnist(tmp_path / name, gzipped=gzipped)
    data = load_dataset(name, tmp_path, download=False)
    assert (data.name, data.num_classes, data.input_shape) == (name, 10, (1, 28, 28))
    assert data.train_x.shape == (12, 1, 28, 28) and data.test_x.shape == (5, 1, 28, 28)
    _check_images(data.train_x[:, 0], written["train-images-idx3-ubyte"])
    _check_images(data.test_x[:, 0], written["t10k-images-idx3-ubyte"])
    assert data.train_y.dtype == torch.int64 and data.test_y.dtype == torch.int64
    assert data.train_y.tolist() == written["train-labels-idx1-ubyte"].tolist()
    assert data.test_y.tolist() == written["t10k-labels-idx1-ubyte"].tolist()


def test_load_cifar10_concatenates_batches_in_order(tmp_path, make_cifar):
    written = make_cifar(tmp_path / "cifar-10-batches-py", _CIFAR10_FILES, 10, b"labels")
    data = load_dataset("cifar10", tmp_path, download=False)
    assert (data.num_classes, data.input_shape) == (10, (3, 32, 32))
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    train = [written[f] for f in _CIFAR10_FILES[:5]]
    _check_images(data.train_x, np.concatenate([x for x, _ in train]))
    _check_images(data.test_x, written["test_batch"][0])
    assert data.train_y.tolist() == [label for _, y in train for label in y]
    assert data.test_y.tolist() == written["test_batch"][1]


def test_load_cifar100_reads_fine_labels(tmp_path, make_cifar):
    written = make_cifar(
        tmp_path / "cifar-100-python", ("train", "test"), 100, b"fine_labels", n=30
    )
    data = load_dataset("cifar100", tmp_path, download=False)
    assert (data.num_classes, data.input_shape) == (100, (3, 32, 32))
    assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (30, 3, 32, 32)
    _check_images(data.train_x, written["train"][0])
    assert data.train_y.tolist() == written["train"][1]
    assert data.test_y.tolist() == written["test"][1]
    assert data.train_y.max().item() > 9  # the fine labels, not the 20 coarse ones


def test_labels_out_of_range_name_the_file(tmp_path, make_mnist, write_idx):
    make_mnist(tmp_path / "mnist", gzipped=False)
    labels = write_idx(
        tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.array([0, 1, 10, 3, 4], dtype=np.uint8)
    )
    with pytest.raises(DataError, match=re.escape(str(labels))):
        load_dataset("mnist", tmp_path, download=False)


def test_cifar100_label_out_of_range_names_the_batch(tmp_path, make_cifar, write_cifar_batch):
    folder = tmp_path / "cifar-100-python"
    make_cifar(folder, ("train", "test"), 100, b"fine_labels")
    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    write_cifar_batch(folder / "test", images, [5, 100], label_key=b"fine_labels")
    with pytest.raises(DataError, match=re.escape(str(folder / "test"))):
        load_dataset("cifar100", tmp_path, download=False)


def test_image_and_label_counts_must_agree(tmp_path, make_mnist, write_idx):
    make_mnist(tmp_path / "mnist", gzipped=False)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte", np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataError, match=r"12 images .* 11 labels"):
        load_dataset("mnist", tmp_path, download=False)


def test_images_of_the_wrong_size_are_refused(tmp_path, make_mnist, write_idx):
    make_mnist(tmp_path / "mnist", gzipped=False)
    images = write_idx(
        tmp_path / "mnist" / "train-images-idx3-ubyte", np.zeros((12, 32, 32), dtype=np.uint8)
    )
    with pytest.raises(DataError, match=re.escape(str(images))):
        load_dataset("mnist", tmp_path, download=False)


def test_unknown_name_lists_the_valid_names(tmp_path):
    with pytest.raises(DataError, match="imagenet") as err:
        load_dataset("imagenet", tmp_path)
    for name in ("mnist", "fashion-mnist", "cifar10", "cifar100"):
        assert name in str(err.value)


def test_missing_files_say_which_where_and_how_to_provide_them(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path, download=False)
    message = str(err.value)
    for name in _CIFAR10_FILES:
        assert name in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "--data-dir" in message and "BPFREE_DATA" in message
    assert not any(tmp_path.iterdir())  # nothing created when downloading is off


def test_only_the_missing_files_are_named(tmp_path, make_mnist):
    make_mnist(tmp_path / "mnist", gzipped=True)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte in"):
        load_dataset("mnist", tmp_path, download=False)


def test_resolve_data_dir_prefers_argument_then_env_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BPFREE_DATA", raising=False)
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "bpfree"
    monkeypatch.setenv("BPFREE_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def test_load_dataset_reads_from_the_env_folder(tmp_path, make_mnist, monkeypatch):
    make_mnist(tmp_path / "mnist", gzipped=False)
    monkeypatch.setenv("BPFREE_DATA", str(tmp_path))
    assert load_dataset("mnist", download=False).train_x.shape == (12, 1, 28, 28)


def test_registry_specs_are_complete():
    assert set(DATASETS) == {"mnist", "fashion-mnist", "cifar10", "cifar100"}
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.base_url.startswith("http")
        provided = {file for source in spec.sources for file in source.provides}
        assert provided == set(spec.files)
        assert all(re.fullmatch("[0-9a-f]{32}", source.md5) for source in spec.sources)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_dataset_onto_cuda(tmp_path: Path, make_mnist):
    make_mnist(tmp_path / "mnist", gzipped=False)
    data = load_dataset("mnist", tmp_path, device="cuda", download=False)
    assert data.train_x.is_cuda and data.train_y.is_cuda and data.test_x.is_cuda
