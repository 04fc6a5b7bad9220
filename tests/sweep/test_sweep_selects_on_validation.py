"""A sweep selects on the validation split: the test set is read once per finished trial,
after its last epoch, never for a pruned one; the report holds the best settings, the top
trials, every trial in trials.csv, and the best settings over the final seeds."""

import csv

import pytest
import torch

import bpfree.sweep.trial as trial_module
from bpfree.cluster import InProcess
from bpfree.data import load_dataset
from bpfree.sweep import load_spec, sweep
from bpfree.sweep.report import write_report
from bpfree.training import RunFolder
from bpfree.training import trainer as trainer_module

optuna = pytest.importorskip("optuna")
COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def quiet(_message):
    pass


def test_the_test_set_is_read_only_after_a_trial_has_finished(
    write_spec, learnable_data_dir, tmp_path, monkeypatch
):
    """Every read of the test set is recorded with the epochs its trial had saved then."""
    data_dir = learnable_data_dir
    test_x = load_dataset("mnist", data_dir).test_x
    training, reads = [], []

    def train_recorded(config, **kwargs):
        training.append(config.out)
        return trainer_module.train(config, **kwargs)

    def evaluate_recorded(predictor, x, y, **kwargs):
        if torch.equal(x, test_x):
            reads.append(RunFolder(training[-1]).finished_epochs())
        return evaluate(predictor, x, y, **kwargs)

    evaluate = trainer_module.evaluate
    monkeypatch.setattr(trial_module, "train", train_recorded)
    monkeypatch.setattr(trainer_module, "evaluate", evaluate_recorded)
    spec = load_spec(
        write_spec(
            trials=8,
            pruner={"type": "successive-halving", "min_epochs": 1, "reduction_factor": 2},
            space={"lr": {"type": "float", "low": 1e-4, "high": 3.0, "log": True}},
        )
    )
    study = sweep(spec, tmp_path / "out", executor=InProcess(log=quiet),
                  overrides={"data_dir": str(data_dir)}, log=quiet)  # fmt: skip
    states = [t.state for t in study.trials]
    assert COMPLETE in states and PRUNED in states
    # one read per completed trial, while its last epoch was being finished (2 of 3 saved)
    assert reads == [spec.base["epochs"] - 1] * states.count(COMPLETE)
    for trial in study.trials:
        rows = RunFolder(trial.user_attrs["folder"]).read_metrics()
        assert all("val_acc" in row for row in rows)
        assert [("test_acc" in row) for row in rows] == [False] * (len(rows) - 1) + [
            trial.state == COMPLETE
        ]


def test_the_report_names_the_best_settings_and_their_final_seeds(write_spec, data_dir, tmp_path):
    spec = load_spec(write_spec(trials=3, final={"seeds": [0, 1], "epochs": 2},
                                references={"PEPITA (paper)": "52.57 ± 0.36"}))  # fmt: skip
    folder = tmp_path / "out"
    study = sweep(spec, folder, executor=InProcess(log=quiet),
                  overrides={"data_dir": str(data_dir)}, log=quiet)  # fmt: skip
    written = write_report(study, spec, folder, "bpfree sweep spec.yaml")
    report = (folder / "report.md").read_text()
    best = study.best_trial
    assert f"## Best settings (trial {best.number}: best_val_acc {best.value:.2f} %" in report
    assert "## Top 3 trials" in report and "PEPITA (paper): 52.57 ± 0.36" in report
    top = report.split("## Top 3 trials")[1].split("\n\n")[2].splitlines()
    header, rows = top[0], top[2:]
    assert header.startswith("| trial | state | validation | test | epochs |")
    assert len(rows) == 3 and all(row.count("|") == header.count("|") for row in rows)
    assert {row.split(" | ")[1] for row in rows} == {"complete"}
    finals = [
        RunFolder(folder / "final" / f"trial-{best.number:04d}" / f"seed-{s}").read_metrics()
        for s in (0, 1)
    ]
    assert [len(rows) for rows in finals] == [2, 2]
    accuracies = [rows[-1]["test_acc"] for rows in finals]
    mean = sum(accuracies) / 2
    std = abs(accuracies[0] - accuracies[1]) / 2**0.5
    assert f"| mean ± std | {mean:.2f} ± {std:.2f} |" in report
    with open(folder / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["number"]) for row in rows] == [0, 1, 2]
    assert {row["state"] for row in rows} == {"complete"}
    for plot in ("history.png", "curves.png"):
        assert folder / plot in written and (folder / plot).stat().st_size > 0
