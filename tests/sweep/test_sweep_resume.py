"""A sweep stopped by a kill and run again ends with exactly its trials, the interrupted one
resumed from its checkpoint (not redone); two commands sharing one SQLite study split the
trials between them with none run twice, and a final seed one of them trains is left to it."""

import json
import re
import shutil
import signal
import time

import pytest

from bpfree.sweep import load_spec, sweep
from bpfree.training import TRAINED_ELSEWHERE, RunFolder

pytest.importorskip("optuna")
from optuna.trial import TrialState

from tests.sweep.conftest import load_study, start_sweep


def metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_sweep_killed_after_three_trials_ends_with_six_none_run_twice(
    write_spec, data_dir, tmp_path
):
    base = {"rule": "bp", "dataset": "mnist", "hidden": [32], "epochs": 20, "batch_size": 4,
            "diagnostics": False, "decay_epochs": [15], "val_fraction": 0.25}  # fmt: skip
    space = {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}
    spec = write_spec(trials=6, base=base, space=space)
    out = tmp_path / "out"
    first = start_sweep(spec, out, data_dir)
    trial3 = out / "tiny" / "trials" / "trial-0003"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        # metrics.jsonl follows the checkpoint: wait for both to hold an epoch
        if (trial3 / "checkpoint.pt").exists() and 0 < RunFolder(trial3).finished_epochs() < 20:
            break
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = metrics(trial3)
    assert 0 < len(before) < 20, "the kill was meant to land inside trial 3"
    assert [t.state for t in load_study(out).trials][:3] == [TrialState.COMPLETE] * 3

    second = start_sweep(spec, out, data_dir)
    assert second.wait(timeout=300) == 0
    trials = load_study(out).trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    after = metrics(trial3)
    assert [row["epoch"] for row in after] == list(range(1, 21))
    assert after[: len(before)] == before  # the epochs before the kill were kept, not rerun


def test_two_commands_sharing_one_study_finish_six_trials_between_them(
    write_spec, data_dir, tmp_path
):
    spec = write_spec(trials=6)
    out = tmp_path / "out"
    workers = [start_sweep(spec, out, data_dir) for _ in range(2)]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    trials = load_study(out).trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    started = []
    for log in out.glob("log-*.txt"):
        started += [int(n) for n in re.findall(r"^trial (\d+) ->", log.read_text(), re.M)]
    assert sorted(started) == list(range(6))  # each trial run by exactly one command
    settings = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(settings)) == 6  # and the two commands drew different settings
    for number in range(6):
        assert len(metrics(out / "tiny" / "trials" / f"trial-{number:04d}")) == 3


def test_a_final_seed_another_command_trains_is_left_to_it_not_failed(
    write_spec, data_dir, tmp_path, monkeypatch
):
    spec = load_spec(write_spec(trials=2, final={"seeds": [0], "epochs": 2}))
    out = tmp_path / "out"
    run = {"executor": None, "overrides": {"data_dir": str(data_dir)}}
    sweep(spec, out, **run, log=lambda _: None)
    final = RunFolder(next((out / "final").glob("trial-*/seed-0")))
    shutil.rmtree(final.path)
    for checked in (True, False):  # held before the check, or taken between check and start
        if not checked:
            monkeypatch.setattr(RunFolder, "in_use", lambda self: False)
        lines = []
        with final.writing():  # as another bpfree command training it would
            sweep(spec, out, **run, log=lines.append)
        assert lines[-1] == f"final seed 0: {TRAINED_ELSEWHERE}"
        assert not any("FAILED" in line for line in lines)
        assert final.finished_epochs() == 0
