"""``bpfree reproduce`` under stress: stopped by SIGTERM it leaves no worker behind; with the
threads per run fixed its runs do not depend on how many ran at once; failed runs and damaged
folders are reported, not hidden."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from bpfree import cli
from bpfree.cluster import LocalPool
from bpfree.reproduce import SuiteError, load_suite, plan, reproduce
from bpfree.reproduce.runner import FAILED, run_jobs
from bpfree.testing import assert_same
from bpfree.training import TRAINED_ELSEWHERE, RunFolder

SUITE = """
title: tiny
seeds: [0, 1]
defaults: {hidden: [8], epochs: 2, batch_size: 16, diagnostics: false, decay_epochs: [1]}
rows:
  - {name: bp, config: {rule: bp, dataset: mnist}}
  - {name: pepita, config: {rule: pepita, dataset: mnist}}
"""


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    return path


def quiet(_message):
    pass


def test_with_the_threads_fixed_the_runs_do_not_depend_on_the_jobs(suite_file, data_dir, tmp_path):
    suite = load_suite(suite_file)
    for jobs in (1, 2):
        reproduce(
            suite,
            tmp_path / f"jobs{jobs}",
            executor=LocalPool(jobs, log=quiet) if jobs > 1 else None,
            threads=1,
            data_dir=str(data_dir),
            log=quiet,
        )
    for row in ("bp", "pepita"):
        for seed in (0, 1):
            folder = f"tiny/{row}/seed-{seed}/checkpoint.pt"
            a = torch.load(tmp_path / "jobs1" / folder, weights_only=True)
            b = torch.load(tmp_path / "jobs2" / folder, weights_only=True)
            assert a["config"]["threads"] == b["config"]["threads"] == 1
            assert_same(a["training"], b["training"])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read()
    except FileNotFoundError:
        return False


def test_sigterm_leaves_no_worker_alive(suite_file, data_dir, tmp_path):
    long = suite_file.read_text().replace("epochs: 2, batch_size: 16", "epochs: 500, batch_size: 4")
    suite_file.write_text(long)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bpfree",
            "reproduce",
            str(suite_file),
            "--jobs",
            "2",
            "--threads",
            "1",
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    workers = []
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        workers += [int(pid) for pid in re.findall(r"\(process (\d+)\)", line)]
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    while not list((tmp_path / "out").rglob("checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in err
    assert not any(alive(pid) for pid in workers)


def test_failed_runs_make_the_command_fail_and_the_report_names_them(suite_file, tmp_path, capsys):
    out = tmp_path / "out"
    status = cli.main(
        ["reproduce", str(suite_file), "--out", str(out), "--data-dir", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert status == 1 and "4 runs failed" in captured.err
    report = (out / "tiny" / "report.md").read_text()
    assert "Failed runs:" in report
    assert f"bpfree reproduce {suite_file} --out {out}" in report  # a command that works


def test_a_run_config_that_is_not_yaml_is_named(suite_file, data_dir, tmp_path):
    folder = tmp_path / "out" / "tiny" / "bp" / "seed-0"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("rule: [bp\n")
    with pytest.raises(SuiteError, match=r"bp/seed-0/config.yaml cannot be read as YAML"):
        reproduce(load_suite(suite_file), tmp_path / "out", data_dir=str(data_dir), log=quiet)


def test_a_run_another_command_trains_is_left_to_it_not_failed(suite_file, data_dir, tmp_path):
    suite = load_suite(suite_file)
    held = tmp_path / "out" / "tiny" / "bp" / "seed-0"
    lines = []
    with RunFolder(held).writing():  # as another bpfree command training it would
        failures = run_jobs(plan(suite, tmp_path / "out", data_dir=str(data_dir)), log=lines.append)
    assert failures == {}
    assert f"bp seed 0: {TRAINED_ELSEWHERE}" in lines
    assert not (held / FAILED).exists() and RunFolder(held).finished_epochs() == 0
    others = [folder.parent for folder in (tmp_path / "out").rglob("metrics.jsonl")]
    assert len(others) == 3 and held not in others
