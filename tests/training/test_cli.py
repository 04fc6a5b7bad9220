"""The ``bpfree`` command: a run to its printed accuracy, and every bad input as a clear error."""

import dataclasses

import pytest

from bpfree import cli
from bpfree.data import datasets


@pytest.fixture
def data_dir(tmp_path, make_mnist):
    make_mnist(tmp_path / "data" / "mnist", gzipped=False, n_train=40, n_test=10)
    return tmp_path / "data"


def run(*args):
    return cli.main(["train", "--no-progress", *map(str, args)])


def test_train_prints_each_epoch_and_the_final_accuracy_last(data_dir, tmp_path, capsys):
    status = run(
        "--rule",
        "pepita",
        "--dataset",
        "mnist",
        "--hidden",
        8,
        "--epochs",
        2,
        "--data-dir",
        data_dir,
        "--out",
        tmp_path / "run",
        "--option",
        "sign=-1",
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    assert sum(line.startswith("epoch") for line in out) == 2
    assert out[-1].startswith("test accuracy: ") and out[-1].endswith("%")
    assert "'rule_options': {'sign': -1}" in "\n".join(out)


def test_config_file_with_flags_overriding(data_dir, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("rule: fa\nhidden: [4]\nepochs: 5\n")
    status = run("--config", config, "--epochs", 1, "--data-dir", data_dir, "--out", tmp_path / "r")
    assert status == 0
    assert "'rule': 'fa'" in capsys.readouterr().out
    assert (tmp_path / "r" / "metrics.jsonl").read_text().count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rule", "pepsi"], r"unknown rule 'pepsi'.*pepita"),
        (["--dataset", "imagenet"], r"unknown dataset 'imagenet'.*mnist"),
        (["--option", "sing=1"], r"unknown option 'sing'.*valid options"),
        (["--option", "sign"], "KEY=VALUE"),
        (["--lr", "-1"], "'lr' must be a positive number, got -1.0"),
        (["--optimizer", "lbfgs"], r"'optimizer' must be one of sgd, adam"),
        (
            ["--rule", "fg-weight", "--option", "perturbations=0"],
            "perturbations must be a positive",
        ),
        (["--rule", "grape", "--option", "perturbations=0"], "perturbations must be a positive"),
        (["--rule", "dfa", "--option", "points=[nope]"], "no module named 'nope'"),
        (
            ["--rule", "dfa", "--model", "lenet", "--option", "points=[blocks.0.1]"],
            r"'blocks.0.1'.*no parameters",
        ),
        (["--rule", "pfa", "--option", "expansion=0.5"], "expansion must be a number at least 1"),
        (["--rule", "fa", "--option", "sparsity=1.0"], r"sparsity must be a number in \[0, 1\)"),
        (["--rule", "pepita-wm", "--model", "pepita-conv"], "cannot walk PepitaConvNet"),
    ],
)
def test_bad_input_is_a_clear_error(args, message, data_dir, tmp_path, capsys):
    assert run("--epochs", 1, "--data-dir", data_dir, "--out", tmp_path / "r", *args) == 2
    assert __import__("re").search(message, capsys.readouterr().err)


def test_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("rule: fa\nbatchsize: 3\n")
    assert run("--config", config) == 2
    assert "unknown key 'batchsize'" in capsys.readouterr().err


def test_missing_data_without_network_names_the_files_and_the_option(tmp_path, monkeypatch, capsys):
    closed_port = "http://127.0.0.1:9/"
    monkeypatch.setitem(
        datasets.DATASETS,
        "mnist",
        dataclasses.replace(datasets.DATASETS["mnist"], base_url=closed_port),
    )
    assert run("--data-dir", tmp_path / "empty", "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "--data-dir" in err and "BPFREE_DATA" in err
    assert not (tmp_path / "r").exists()
