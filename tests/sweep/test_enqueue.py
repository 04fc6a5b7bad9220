"""Settings named in ``enqueue`` are the study's first trials, with exactly those values (the
rest sampled), and a rerun of the command does not try them again."""

import pytest

from bpfree.cluster import InProcess
from bpfree.sweep import load_spec, sweep

optuna = pytest.importorskip("optuna")

PAPER = {"lr": 0.01, "momentum": 0.9, "rule_options.f_scale": 0.05}
PARTIAL = {"lr": 0.002}


def quiet(_message):
    pass


def run(spec_path, folder, data_dir):
    return sweep(load_spec(spec_path), folder, executor=InProcess(log=quiet),
                 overrides={"data_dir": str(data_dir)}, log=quiet)  # fmt: skip


def test_enqueued_settings_run_first_and_once(write_spec, data_dir, tmp_path):
    folder = tmp_path / "out"
    study = run(write_spec(trials=3, enqueue=[PAPER, PARTIAL]), folder, data_dir)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert trials[0].params == PAPER
    assert trials[1].params["lr"] == 0.002 and set(trials[1].params) == set(PAPER)
    assert trials[2].params["lr"] not in (0.01, 0.002)  # sampled, not a third enqueued

    study = run(write_spec(trials=5, enqueue=[PAPER, PARTIAL]), folder, data_dir)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state.is_finished() for t in trials)
    assert [t.params["lr"] for t in trials].count(0.01) == 1
    assert [t.params["lr"] for t in trials].count(0.002) == 1


def test_a_full_study_takes_no_enqueued_trial(write_spec, data_dir, tmp_path):
    folder = tmp_path / "out"
    run(write_spec(trials=2), folder, data_dir)
    study = run(write_spec(trials=2, enqueue=[PAPER]), folder, data_dir)
    assert len(study.get_trials()) == 2  # no trial left waiting beyond the budget
