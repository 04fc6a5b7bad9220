"""A run folder that was tampered with, damaged or is in use: the run resumes from the previous
good checkpoint, or stops with a message that names the file or the option; nothing that could
still be read is overwritten, and no file of the folder runs code."""

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from bpfree import cli
from bpfree.rules import StepResult
from bpfree.rules.bp import BP
from bpfree.testing import assert_same
from bpfree.training import (
    ConfigError,
    RunFolder,
    RunFolderError,
    TrainConfig,
    TrainingDiverged,
    train,
)


def tiny(data_dir, out, **changes):
    values = dict(
        rule="bp",
        hidden=[8],
        epochs=2,
        batch_size=16,
        decay_epochs=[1],
        data_dir=str(data_dir),
        out=str(out),
        diagnostics=False,
    )
    return TrainConfig(**{**values, **changes})


class Payload:
    """Unpickling this runs ``touch`` on a file: what a crafted checkpoint would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(data_dir, tmp_path):
    run = tiny(data_dir, tmp_path / "run")
    train(run, progress=False)
    ran = tmp_path / "ran"
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        with open(tmp_path / "run" / name, "wb") as file:
            pickle.dump({"epoch": 2, "config": {}, "payload": Payload(ran)}, file)
    with pytest.raises(RunFolderError, match=r"checkpoint\.pt cannot be read.*Move .* away"):
        train(run, progress=False)
    assert not ran.exists()


@pytest.mark.parametrize(
    "damage",
    ["truncated", "empty", "bit-flipped", "keyless", "wrong-shaped", "a folder", "another run"],
)
def test_a_damaged_latest_checkpoint_gives_way_to_the_previous_one(damage, data_dir, tmp_path):
    whole = tiny(data_dir, tmp_path / "whole", epochs=3)
    train(whole, progress=False)
    run = tiny(data_dir, tmp_path / "run", epochs=3)
    train(tiny(data_dir, tmp_path / "run", epochs=2), progress=False)
    latest = tmp_path / "run" / "checkpoint.pt"
    good = latest.read_bytes()
    damage_checkpoint(latest, damage, good)
    if damage == "another run":
        with pytest.raises(ConfigError, match="different settings"):
            train(run, progress=False)
        return
    train(run, progress=False)  # resumes after epoch 1 from checkpoint.prev.pt, redoes epoch 2
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(latest, weights_only=True)
    assert_same(a["training"], b["training"])
    assert [row["epoch"] for row in b["metrics"]] == [1, 2, 3]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3


def damage_checkpoint(path, damage, good):
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "bit-flipped":
        flipped = bytearray(good)
        for i in range(0, len(flipped), 7):
            flipped[i] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif damage == "keyless":
        torch.save({"epoch": 2}, path)
    elif damage == "wrong-shaped":
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["training"]["model"]["head.weight"] = torch.zeros(3, 3)
        torch.save(checkpoint, path)
    elif damage == "a folder":
        path.unlink()
        path.mkdir()
    elif damage == "another run":
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["config"]["lr"] = 0.5
        checkpoint["config"]["seed"] = 7
        torch.save(checkpoint, path)


def test_when_no_checkpoint_can_be_read_the_error_names_both_files(data_dir, tmp_path):
    run = tiny(data_dir, tmp_path / "run")
    train(run, progress=False)
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / "run" / name).write_bytes(b"\x00garbage")
    with pytest.raises(RunFolderError, match=r"checkpoint\.pt cannot.*checkpoint\.prev\.pt cannot"):
        train(run, progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == b"\x00garbage"


@pytest.mark.parametrize("damage", ["deleted", "half-written", "binary", "without epoch"])
def test_damaged_metrics_are_rewritten_from_the_checkpoint(damage, data_dir, tmp_path):
    train(tiny(data_dir, tmp_path / "whole", epochs=3), progress=False)
    train(tiny(data_dir, tmp_path / "run"), progress=False)
    metrics = tmp_path / "run" / "metrics.jsonl"
    text = metrics.read_text()
    if damage == "deleted":
        metrics.unlink()
    elif damage == "half-written":
        metrics.write_text(text[: len(text) // 2])
    elif damage == "binary":
        metrics.write_bytes(b"\xff\xfe\x00\x01" * 10)
    else:
        metrics.write_text('{"train_loss": 1.0}\n')
    rows = train(tiny(data_dir, tmp_path / "run", epochs=3), progress=False).metrics
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert_same(a["training"], b["training"])


def test_fewer_epochs_than_a_folder_holds_is_refused(data_dir, tmp_path):
    train(tiny(data_dir, tmp_path / "run", epochs=3), progress=False)
    config = (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="holds 3 finished epochs, more than the 1 asked for"):
        train(tiny(data_dir, tmp_path / "run", epochs=1), progress=False)
    assert (tmp_path / "run" / "config.yaml").read_text() == config


def test_a_second_writer_fails_at_once_naming_the_holder(data_dir, tmp_path):
    holder = pytest.raises(RunFolderError, match=rf"in use by process {os.getpid()}")
    with RunFolder(tmp_path / "run").writing(), holder:
        train(tiny(data_dir, tmp_path / "run"), progress=False)
    train(tiny(data_dir, tmp_path / "run"), progress=False)  # free again once released


def test_a_killed_write_leaves_no_temporary_file_behind(data_dir, tmp_path):
    train(tiny(data_dir, tmp_path / "run", epochs=1), progress=False)
    stale = tmp_path / "run" / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half")
    train(tiny(data_dir, tmp_path / "run"), progress=False)
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_run_files_follow_the_umask(data_dir, tmp_path):
    previous = os.umask(0o022)
    try:
        train(tiny(data_dir, tmp_path / "run", epochs=1), progress=False)
    finally:
        os.umask(previous)
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644


def test_weights_made_non_finite_by_the_last_step_stop_the_run(data_dir, tmp_path, monkeypatch):
    run = tiny(data_dir, tmp_path / "run", epochs=3)
    train(tiny(data_dir, tmp_path / "run", epochs=1), progress=False)
    kept = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    real_step, steps = BP._step, []

    def step(self, x, y):
        steps.append(1)
        result = real_step(self, x, y)
        if len(steps) == 3:  # the last step of epoch 2: a finite loss, then NaN weights
            self.model.head.weight.grad.fill_(float("nan"))
        return StepResult(result.loss, result.output)

    monkeypatch.setattr(BP, "_step", step)
    with pytest.raises(TrainingDiverged, match=r"weights became non-finite at epoch 2, steps 1-3"):
        train(run, progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == kept


def test_a_loss_non_finite_in_the_first_epoch_says_nothing_was_saved(
    data_dir, tmp_path, monkeypatch
):
    nan = StepResult(torch.tensor(float("nan")), torch.zeros(1, 10))
    monkeypatch.setattr(BP, "_step", lambda self, x, y: nan)
    with pytest.raises(TrainingDiverged, match="epoch 1, steps 1-3: training stopped; no epoch"):
        train(tiny(data_dir, tmp_path / "run"), progress=False)


def run_cli(*args):
    return cli.main(["train", "--no-progress", *map(str, args)])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("/proc/bpfree-test/run", "cannot write"),
        ("a file", "cannot write"),
        ("under a file", "cannot write"),
    ],
)
def test_an_out_folder_that_cannot_be_written_is_named(where, message, data_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = {"a file": blocker, "under a file": blocker / "run"}.get(where, where)
    assert run_cli("--hidden", 8, "--epochs", 1, "--data-dir", data_dir, "--out", out) == 2
    err = capsys.readouterr().err
    assert message in err and str(out).split("/")[-1] in err and "Traceback" not in err


def test_a_full_disk_is_named(data_dir, tmp_path, monkeypatch, capsys):
    import errno

    from bpfree.training import run_folder

    def full(path, write, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_folder, "atomic_write", full)
    monkeypatch.setattr(run_folder, "write_text", lambda path, text: full(path, None))
    assert (
        run_cli("--hidden", 8, "--epochs", 1, "--data-dir", data_dir, "--out", tmp_path / "r") == 2
    )
    assert "no space left on the device" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "inf"], "'lr' must be a positive number, got inf"),
        (["--weight-decay", "inf"], "'weight_decay' must be a non-negative number, got inf"),
        (["--option", "seed=abc"], "option seed must be an integer"),
        (["--rule", "pepita", "--option", "f_scale=big"], "option f_scale must be a non-negative"),
        (["--rule", "fa", "--option", "scale=[1]"], "option scale must be a non-negative"),
        (["--option", "sign=[1"], "--option 'sign=\\[1': the value is not valid YAML"),
        (["--model-option", "batch_norm={"], "--model-option 'batch_norm={': the value is not"),
        (["--device", "cuda:abc"], "'device' must be cpu, cuda or cuda:<index>, got 'cuda:abc'"),
        (["--device", "mps"], "'device' must be cpu, cuda or cuda:<index>, got 'mps'"),
        (["--seed", str(2**64)], "'seed' must be an integer in \\[0, 2\\*\\*63\\)"),
        (["--threads", "0"], "'threads' must be None or a positive integer, got 0"),
        (["--sync-batchnorm"], "'sync_batchnorm' needs device cuda"),
    ],
)
def test_bad_values_are_named(args, message, data_dir, tmp_path, capsys):
    assert run_cli("--epochs", 1, "--data-dir", data_dir, "--out", tmp_path / "r", *args) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", ["a folder", "binary"])
def test_a_config_that_is_not_a_yaml_file_is_named(kind, tmp_path, capsys):
    path = tmp_path / "run.yaml"
    if kind == "a folder":
        path.mkdir()
    else:
        path.write_bytes(b"\xff\xfe\xfa\x00\x81")
    assert run_cli("--config", path) == 2
    assert str(path) in capsys.readouterr().err


def test_sigterm_stops_training_with_the_last_epoch_kept(data_dir, tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bpfree",
            "train",
            "--no-progress",
            "--hidden",
            "8",
            "--epochs",
            "200",
            "--batch-size",
            "4",
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--no-diagnostics",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted: every finished epoch is kept" in err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] >= 1


@pytest.mark.parametrize("moment", ["keeping the previous", "replacing the latest"])
def test_an_interrupt_while_saving_a_checkpoint_leaves_the_latest_under_its_name(
    moment, tmp_path, monkeypatch
):
    """checkpoint.pt is never missing: the previous one is made by a second name, not a move."""
    folder = RunFolder(tmp_path / "run")
    epoch = {"config": {}, "metrics": [], "training": {}, "data_order": torch.zeros(1)}
    with folder.writing():
        folder.save_checkpoint({**epoch, "epoch": 1})
        folder.save_checkpoint({**epoch, "epoch": 2})
        real_replace = os.replace

        def interrupted(source, target):
            stage = "checkpoint.prev.pt" if moment == "keeping the previous" else "checkpoint.pt"
            if os.path.basename(target) == stage:
                raise KeyboardInterrupt
            real_replace(source, target)

        monkeypatch.setattr(os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            folder.save_checkpoint({**epoch, "epoch": 3})
        monkeypatch.setattr(os, "replace", real_replace)
    assert torch.load(folder.checkpoint, weights_only=True)["epoch"] == 2
    previous = torch.load(folder.previous_checkpoint, weights_only=True)["epoch"]
    assert previous == (1 if moment == "keeping the previous" else 2)
    with folder.writing():  # a new writer clears what the interrupt left
        pass
    assert sorted(p.name for p in folder.path.iterdir()) == [
        ".lock",
        "checkpoint.prev.pt",
        "checkpoint.pt",
    ]
