"""A run killed with SIGKILL, anywhere, then started again with the same command, ends with the
same training state, bitwise, as a run never killed: for every rule, killed at a random step
and between the checkpoint and the metrics of an epoch; and the same for ``bpfree reproduce``.

The kills are real: a child process runs the command with one function of bpfree wrapped to
send SIGKILL to its own process at the chosen moment (``killing.py``).
"""

import importlib
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bpfree.reproduce import load_suite, reproduce
from bpfree.rules import RULES
from bpfree.testing import assert_same
from bpfree.training import TrainConfig, train

sys.path.insert(0, str(Path(__file__).parent))  # killing.py, found by name by the forkserver
start_killed = importlib.import_module("killing").start_killed

EPOCHS, STEPS_PER_EPOCH = 2, 3  # 40 samples in batches of 16
CASES = [(name, {}) for name in sorted(RULES)] + [
    ("wm", {"pre_mirror_steps": 2}),
    ("pepita-wm", {"pre_mirror_steps": 2}),
]


def killed(moment: str, k: int, *command: str) -> None:
    assert start_killed(moment, k, list(command)) == -signal.SIGKILL


def config(rule, options, data_dir, out):
    return TrainConfig(
        rule=rule,
        hidden=[8],
        epochs=EPOCHS,
        batch_size=16,
        decay_epochs=[1],
        rule_options=options,
        data_dir=str(data_dir),
        out=str(out),
        diagnostics=False,
        threads=1,
    )


def command(run: TrainConfig) -> list[str]:
    return ["train", "--no-progress", "--config", write_yaml(run)]


def write_yaml(run: TrainConfig) -> str:
    path = f"{run.out}.yaml"
    with open(path, "w") as file:
        json.dump(run.to_dict(), file)  # JSON is YAML
    return path


def final_state(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=True)


def assert_same_run(a, b):
    assert_same(a["training"], b["training"])
    assert_same(a["data_order"], b["data_order"])
    drop = [{k: v for k, v in row.items() if k != "seconds"} for row in a["metrics"]]
    assert drop == [{k: v for k, v in row.items() if k != "seconds"} for row in b["metrics"]]


@pytest.mark.parametrize(("rule", "options"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_a_run_killed_anywhere_resumes_to_the_same_state(rule, options, data_dir, tmp_path):
    whole = config(rule, options, data_dir, tmp_path / "whole")
    train(whole, progress=False)
    at = random.Random(f"{rule}{options}").randint(1, EPOCHS * STEPS_PER_EPOCH)
    for moment, k, name in (("step", at, "step"), ("between", 1, "between")):
        run = config(rule, options, data_dir, tmp_path / name)
        killed(moment, k, *command(run))
        train(run, progress=False)
        assert_same_run(final_state(tmp_path / "whole"), final_state(tmp_path / name))


SUITE = """
title: tiny
seeds: [0]
defaults: {hidden: [8], epochs: 2, batch_size: 16, diagnostics: false, decay_epochs: [1]}
rows:
  - {name: bp, config: {rule: bp, dataset: mnist}}
  - {name: pepita, config: {rule: pepita, dataset: mnist}}
"""


def test_a_killed_reproduce_resumes_every_run_to_the_same_state(data_dir, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    suite = load_suite(path)
    reproduce(suite, tmp_path / "whole", data_dir=str(data_dir), threads=1, log=lambda _: None)
    out = tmp_path / "killed"
    flags = ["--data-dir", str(data_dir), "--threads", "1", "--out", str(out)]
    killed("between", 2, "reproduce", str(path), *flags)  # the first run's last epoch
    rerun = subprocess.run(
        [sys.executable, "-m", "bpfree", "reproduce", str(path), *flags],
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr
    for row in ("bp", "pepita"):
        folder = f"tiny/{row}/seed-0"
        assert_same_run(final_state(tmp_path / "whole" / folder), final_state(out / folder))
        assert (out / folder / "curves.png").exists()
