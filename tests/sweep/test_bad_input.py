"""Every bad sweep input is refused with a message naming it, before any trial starts."""

import importlib.util
import re

import pytest

from bpfree import cli
from tests.sweep.conftest import BASE, SPACE

pytest.importorskip("optuna")

LR = SPACE["lr"]
BAD_SPECS = {
    "an unknown key": ({"trails": 4}, "unknown key 'trails'"),
    "an empty range": (
        {"space": {"lr": {**LR, "low": 0.01, "high": 0.01}}},
        r"space.lr: the range \[0.01, 0.01\] is empty",
    ),
    "an inverted range": (
        {"space": {"lr": {**LR, "low": 0.1, "high": 0.01}}},
        r"space.lr: the range \[0.1, 0.01\] is inverted",
    ),
    "a log range from zero": (
        {"space": {"lr": {**LR, "low": 0.0}}},
        "space.lr: a log range needs a positive low bound, got 0.0",
    ),
    "a categorical without choices": (
        {"space": {"batch_size": {"type": "categorical", "choices": []}}},
        "space.batch_size: a categorical needs at least one of its choices",
    ),
    "an unknown parameter": (
        {"space": {"learning_rate": LR}},
        "space.learning_rate: not a searchable config key",
    ),
    "an unknown rule option": (
        {"space": {"rule_options.nonsense": LR}},
        r"space.rule_options.nonsense = 0.001 \(rule pepita\)",
    ),
    "a value out of the config's range": (
        {"space": {"dropout": {"type": "float", "low": 0.0, "high": 1.5}}},
        r"space.dropout = 1.5 \(rule pepita\).*'dropout' must be a number in \[0, 1\)",
    ),
    "no validation split": (
        {"base": {k: v for k, v in BASE.items() if k != "val_fraction"}},
        "base.val_fraction must hold out a validation split",
    ),
    "a text dataset": (
        {"base": {**BASE, "dataset": "shakespeare", "model": "transformer-lm"}},
        "base.dataset 'shakespeare' is a text: .* does not yet minimise",
    ),
    "final decay epochs that are not epochs": (
        {"final": {"seeds": [0], "decay_epochs": [0, 2.5]}},
        r"final.decay_epochs must be a list of epochs \(integers >= 1\), got \[0, 2.5\]",
    ),
    "an enqueued value outside its range": (
        {"enqueue": [{"lr": 0.5}]},
        r"enqueue\[0\].lr = 0.5 is outside the range \[0.001, 0.1\]",
    ),
    "an enqueued choice that is not one": (
        {"enqueue": [{"lr": 0.01}, {"momentum": 0.5}]},
        r"enqueue\[1\].momentum = 0.5 is not one of the choices \[0.0, 0.9\]",
    ),
    "an enqueued parameter that is not searched": (
        {"enqueue": [{"weight_decay": 0.0}]},
        r"enqueue\[0\].weight_decay is not a searched parameter",
    ),
    "enqueue that is not a list of settings": (
        {"enqueue": {"lr": 0.01}},
        "enqueue must be a list of settings",
    ),
    "an unknown pruner": ({"pruner": "hyperband"}, "pruner.type must be one of"),
    "an unknown objective": ({"objective": "test_acc"}, "objective must be one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_is_refused_naming_what_is_wrong(case, write_spec, data_dir, tmp_path, capsys):
    changes, message = BAD_SPECS[case]
    spec = write_spec(**changes)
    status = cli.main(["sweep", str(spec), "--out", str(tmp_path / "out"),
                       "--data-dir", str(data_dir)])  # fmt: skip
    assert status == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # refused before anything was made


@pytest.mark.skipif(importlib.util.find_spec("pg8000") is not None, reason="pg8000 installed")
def test_a_storage_url_whose_driver_is_missing_is_named(write_spec, data_dir, tmp_path, capsys):
    status = cli.main(["sweep", str(write_spec()), "--out", str(tmp_path / "out"),
                       "--storage", "postgresql+pg8000://me:secret@127.0.0.1/sweeps",
                       "--data-dir", str(data_dir)])  # fmt: skip
    error = capsys.readouterr().err
    assert status == 2
    assert "database driver 'pg8000' is not installed" in error
    assert "secret" not in error  # the password is not printed
    assert not (tmp_path / "out" / "tiny" / "trials").exists()


def test_an_unreachable_ray_address_is_refused_at_once(write_spec, data_dir, tmp_path, capsys):
    pytest.importorskip("ray")
    status = cli.main(["sweep", str(write_spec()), "--out", str(tmp_path / "out"),
                       "--ray", "127.0.0.1:1", "--data-dir", str(data_dir)])  # fmt: skip
    assert status == 2
    assert "nothing answers at the Ray address '127.0.0.1:1'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "tiny" / "trials").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--jobs", "0"], "--jobs must be at least 1"),
     (["--cpus-per-run", "0"], "--cpus-per-run must be positive"),
     (["--jobs", "2", "--ray", "local"], "--jobs and --ray do not go together"),
     (["--gpus-per-run", "1"], "--gpus-per-run needs --ray, or --device cuda")],
)  # fmt: skip
def test_bad_executor_flags_are_refused(flags, message, write_spec, tmp_path, capsys):
    status = cli.main(["sweep", str(write_spec()), "--out", str(tmp_path / "out"), *flags])
    assert status == 2 and message in capsys.readouterr().err
