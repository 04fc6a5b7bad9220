"""A tiny sweep spec over the tiny MNIST files, and helpers to start ``bpfree sweep``."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import _write_idx

BASE = {
    "rule": "pepita", "dataset": "mnist", "hidden": [8], "epochs": 3, "batch_size": 8,
    "diagnostics": False, "decay_epochs": [2], "val_fraction": 0.25,
}  # fmt: skip
SPACE = {
    "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
    "momentum": {"type": "categorical", "choices": [0.0, 0.9]},
    "rule_options.f_scale": {"type": "float", "low": 0.01, "high": 0.1, "rules": ["pepita"]},
}


def spec_values(**changes):
    values = {
        "name": "tiny", "base": dict(BASE), "space": dict(SPACE), "trials": 4,
        "pruner": "none", "final": {"seeds": []},
    }  # fmt: skip
    values.update(changes)
    return values


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(**changes): a spec file of the tiny sweep with keys replaced."""

    def write(**changes) -> Path:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec_values(**changes)))
        return path

    return write


def start_sweep(spec: Path, out: Path, data_dir: Path, *flags: str) -> subprocess.Popen:
    """``bpfree sweep`` in its own process, its output in OUT/log-<pid>.txt."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bpfree", "sweep", str(spec), "--out", str(out),
               "--data-dir", str(data_dir), "--threads", "1", *flags]  # fmt: skip
    log = open(out / f"log-{len(list(out.glob('log-*')))}.txt", "w")  # noqa: SIM115
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def load_study(out: Path, name: str = "tiny"):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / name / 'study.db'}")


@pytest.fixture
def learnable_data_dir(tmp_path):
    """MNIST files whose label shows in the image (a bright bar at a row given by the class, over
    noise): 120 training and 40 test images, so that settings differ in validation accuracy."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "learnable" / "mnist"
    folder.mkdir(parents=True)
    for prefix, n in (("train", 120), ("t10k", 40)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 100, (n, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels, strict=True):
            image[2 + 2 * label : 4 + 2 * label, :] = 255
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return tmp_path / "learnable"
