"""Suites end to end on a tiny synthetic MNIST: aggregation and verdicts, resuming after an
interrupt without redoing finished runs, budgets kept apart, failures and missing rules named."""

import csv
import dataclasses
import json

import pytest
import yaml

import bpfree.training.jobs
from bpfree import cli
from bpfree.reproduce import SuiteError, load_suite, plan, reproduce
from bpfree.reproduce.aggregate import collect
from bpfree.training import RunFolder

SUITE = """
title: tiny table
source: a test
seeds: [0, 1]
defaults: {hidden: [8], epochs: 2, batch_size: 16, diagnostics: false}
rows:
  - {name: bp, config: {rule: bp, dataset: mnist}, paper: {mean: 10.0, std: 1.0}, tolerance: 100}
  - {name: pepita, config: {rule: pepita, dataset: mnist}, paper: 200.0, tolerance: 1}
  - {name: future, config: {rule: some-future-rule, dataset: mnist}, paper: 99.0}
"""


@pytest.fixture
def data_dir(tmp_path, make_mnist):
    make_mnist(tmp_path / "data" / "mnist", gzipped=False, n_train=48, n_test=16)
    return str(tmp_path / "data")


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    return load_suite(path)


def quiet(_message):
    pass


def test_a_suite_runs_end_to_end_and_reports_beside_the_paper(suite, data_dir, tmp_path):
    out = tmp_path / "out"
    results, written = reproduce(suite, out, data_dir=data_dir, log=quiet)
    bp, pepita, future = results
    for result in (bp, pepita):
        assert result.status == "complete" and result.seeds == [0, 1]
        finals = [
            RunFolder(out / "tiny" / result.row.name / f"seed-{s}").read_metrics()[-1]["test_acc"]
            for s in (0, 1)
        ]
        assert result.values == finals
        assert result.value == pytest.approx(sum(finals) / 2)
    assert bp.verdict == "within" and pepita.verdict == "outside"  # |x - 200| > 1 for any x
    assert pepita.difference == pytest.approx(pepita.value - 200.0)
    assert future.status == future.verdict == "rule not in bpfree yet"

    names = {p.name for p in written}
    assert {"report.md", "results.csv", "curves.png"} <= names
    report = (out / "tiny" / "report.md").read_text()
    assert "| future | 0/2 |" in report and "rule not in bpfree yet" in report
    rows = list(csv.DictReader((out / "tiny" / "results.csv").open()))
    assert [r["verdict"] for r in rows] == ["within", "outside", "rule not in bpfree yet"]


def test_aggregation_of_synthetic_run_folders(suite, tmp_path):
    """Mean, sample std, difference and verdict from hand-written run folders."""
    out = tmp_path / "out"
    jobs = plan(suite, out)
    finals = {("bp", 0): 11.0, ("bp", 1): 13.0, ("pepita", 0): 199.5}
    for job in jobs:
        if (job.row.name, job.seed) in finals:
            folder = RunFolder(job.folder)
            folder.write_config(job.config.to_dict())
            rows = [{"epoch": e, "test_acc": 0.0} for e in (1, 2)]
            rows[-1]["test_acc"] = finals[job.row.name, job.seed]
            folder.write_metrics(rows)
    bp, pepita, _ = collect(suite, jobs)
    assert (bp.value, bp.std, bp.difference, bp.verdict) == (
        12.0,
        pytest.approx(2**0.5),
        2.0,
        "within",
    )
    assert pepita.status == pepita.verdict == "incomplete (1 of 2 seeds)"
    assert pepita.value == 199.5  # reported, but not judged until every seed has finished


def test_an_interrupted_suite_resumes_without_redoing_finished_runs(
    suite, data_dir, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    real_train = bpfree.training.train
    trained = []

    def train_then_interrupt(config, **kwargs):
        trained.append((config.rule, config.seed))
        if len(trained) == 3:
            raise KeyboardInterrupt
        return real_train(config, **kwargs)

    monkeypatch.setattr(bpfree.training.jobs, "train", train_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        reproduce(suite, out, data_dir=data_dir, log=quiet)
    assert trained == [("bp", 0), ("bp", 1), ("pepita", 0)]
    finished = out / "tiny" / "bp" / "seed-0" / "metrics.jsonl"
    before = finished.stat().st_mtime_ns

    trained.clear()
    monkeypatch.setattr(
        bpfree.training.jobs,
        "train",
        lambda c, **k: trained.append((c.rule, c.seed)) or real_train(c, **k),
    )
    results, _ = reproduce(suite, out, data_dir=data_dir, log=quiet)
    assert trained == [("pepita", 0), ("pepita", 1)]
    assert finished.stat().st_mtime_ns == before
    assert [r.status for r in results[:2]] == ["complete", "complete"]


def test_a_budget_runs_apart_and_says_so(suite, data_dir, tmp_path):
    out = tmp_path / "out"
    reproduce(suite, out, budget=1, data_dir=data_dir, log=quiet)
    assert not (out / "tiny").exists()
    metrics = RunFolder(out / "tiny-budget1" / "bp" / "seed-0").read_metrics()
    assert [row["epoch"] for row in metrics] == [1]
    report = (out / "tiny-budget1" / "report.md").read_text()
    assert "QUICK LOOK" in report and "within (budget 1 epochs)" in report
    assert (out / "tiny-budget1" / "results.csv").read_text().startswith("# QUICK LOOK")


def test_a_failed_run_is_named_and_the_others_go_on(suite, tmp_path):
    out = tmp_path / "out"
    results, _ = reproduce(suite, out, data_dir=str(tmp_path / "no-data"), log=quiet)
    assert [r.status for r in results] == ["failed", "failed", "rule not in bpfree yet"]
    assert "DataError" in results[0].failures[0] and "mnist" in results[0].failures[0]
    assert "Failed runs:" in (out / "tiny" / "report.md").read_text()


def test_a_folder_holding_another_run_is_not_overwritten(suite, data_dir, tmp_path):
    out = tmp_path / "out"
    folder = out / "tiny" / "bp" / "seed-0"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"rule": "bp", "lr": 0.5, "hidden": [8]}))
    with pytest.raises(Exception, match=r"holds a run with other settings than row 'bp'.*lr"):
        reproduce(suite, out, data_dir=data_dir, log=quiet)


def test_cli_reports_a_malformed_suite_by_row_and_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(SUITE.replace("paper: 200.0", "papers: 200.0"))
    assert cli.main(["reproduce", str(path), "--out", str(tmp_path)]) == 2
    assert "row 2 (pepita): unknown key 'papers'" in capsys.readouterr().err
    assert cli.main(["reproduce", "--list"]) == 0
    assert "icml-table1-fc" in capsys.readouterr().out


def test_cli_reproduce_prints_the_table(suite, data_dir, tmp_path, capsys):
    status = cli.main(
        [
            "reproduce",
            str(suite.path),
            "--out",
            str(tmp_path / "o"),
            "--data-dir",
            data_dir,
            "--budget",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0 and "QUICK LOOK" in out and "| bp | 2/2 |" in out
    assert (
        json.loads(
            (tmp_path / "o" / "tiny-budget1" / "bp" / "seed-1" / "metrics.jsonl").read_text()
        )["epoch"]
        == 1
    )


def test_best_test_acc_takes_each_seeds_best_epoch(suite, tmp_path):
    best = dataclasses.replace(suite, metric="best_test_acc")
    jobs = plan(best, tmp_path)
    for job in jobs:
        if job.row.name == "bp":
            folder = RunFolder(job.folder)
            folder.write_config(job.config.to_dict())
            folder.write_metrics(
                [{"epoch": 1, "test_acc": 50.0 + job.seed}, {"epoch": 2, "test_acc": 40.0}]
            )
    assert collect(best, jobs)[0].values == [50.0, 51.0]
    assert collect(suite, jobs)[0].values == [40.0, 40.0]


def test_rows_and_seeds_narrow_what_is_trained_and_the_report_keeps_every_row(
    suite, data_dir, tmp_path, monkeypatch
):
    real_train = bpfree.training.train
    trained = []
    monkeypatch.setattr(
        bpfree.training.jobs,
        "train",
        lambda c, **k: trained.append((c.rule, c.seed)) or real_train(c, **k),
    )
    out = tmp_path / "out"
    results, _ = reproduce(suite, out, data_dir=data_dir, rows=["p*"], seeds=[1], log=quiet)
    assert trained == [("pepita", 1)]
    assert [r.row.name for r in results] == ["bp", "pepita", "future"]
    assert results[1].values == [
        RunFolder(out / "tiny" / "pepita" / "seed-1").read_metrics()[-1]["test_acc"]
    ]
    assert results[1].verdict == "incomplete (1 of 2 seeds)"  # not judged on one seed
    assert results[0].verdict == "not run"


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"rows": ["cifar*"]}, r"--rows 'cifar\*' matches no row of tiny; its rows: bp, pepita"),
        ({"seeds": [7]}, r"--seeds 7 is not a seed of tiny; its seeds: 0, 1"),
    ],
)
def test_a_selection_outside_the_suite_is_named(suite, tmp_path, selection, message):
    with pytest.raises(SuiteError, match=message):
        reproduce(suite, tmp_path / "out", train=True, log=quiet, **selection)


def test_report_lists_each_layers_final_alignment_mean_over_seeds(suite, tmp_path):
    out = tmp_path / "out"
    jobs = plan(suite, out)
    for job in jobs:
        if job.row.name == "pepita":
            folder = RunFolder(job.folder)
            folder.write_config(job.config.to_dict())
            angle = 80.0 + 10 * job.seed  # seeds 0, 1: mean 85
            last = {"layer": {"angle": angle, "norm_ratio": 1.0 + job.seed}}
            folder.write_metrics(
                [
                    {"epoch": 1, "test_acc": 1.0, "alignment": {"layer": {"angle": 0.0}}},
                    {"epoch": 2, "test_acc": 2.0, "alignment": last},
                ]
            )
    report = reproduce(suite, out, train=False, log=quiet)[1][0].read_text()
    assert "| row | layer | angle | norm ratio |" in report
    assert "| pepita | layer | 85.00 | 1.50 |" in report
    assert "| bp | layer |" not in report  # no finished runs, no alignment
