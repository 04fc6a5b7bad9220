"""Runs launched the standard way, by ``torchrun``, on 127.0.0.1: two "nodes" of two ranks train
the weights one node of four trains, and a run whose rank was killed resumes, from the same
``torchrun`` command, to the weights of a run never killed (two replicas started in the test,
which train what two ``torchrun`` ranks train)."""

import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bpfree.testing import assert_same
from bpfree.training import TrainConfig

HERE = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def train_args(data_dir, out, rule="pepita"):
    return [
        "train",
        "--no-progress",
        "--rule",
        rule,
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--decay-epochs",
        "1",
        "--threads",
        "1",
        "--no-diagnostics",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
    ]


def launch(*torchrun_args, program):
    """``torchrun`` in a process group of its own, with its workers."""
    return subprocess.Popen(
        [*TORCHRUN, *torchrun_args, *program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process, timeout=240):
    """The launch's exit status and output; one still running after ``timeout`` seconds is
    killed with its workers (they would hold their ports through the tests after it) and its
    output shown."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"torchrun ran past {timeout} s:\n{out}{err}") from None
    return process.returncode, out + err


def training_state(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=True)["training"]


sys.path.insert(0, str(HERE))  # helpers the forkserver imports by name
cases = importlib.import_module("cases")
replicas = importlib.import_module("replicas")
run_replicas, free_port = replicas.run_replicas, replicas.free_port


def test_two_nodes_of_two_ranks_train_as_one_node_of_four(data_dir, tmp_path):
    port = free_port()
    rendezvous = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    rendezvous += ["--local-addr", "127.0.0.1"]  # the address the nodes' ranks meet at
    nodes = [
        launch(
            "--nnodes",
            "2",
            "--nproc-per-node",
            "2",
            *rendezvous,
            "--rdzv-id",
            "two-nodes",
            "-m",
            "bpfree",
            program=train_args(data_dir, tmp_path / "two-nodes"),
        )
        for _ in range(2)
    ]
    for node in nodes:
        status, output = finish(node)
        assert status == 0, output
    one = launch(
        "--standalone",
        "--nproc-per-node",
        "4",
        "-m",
        "bpfree",
        program=train_args(data_dir, tmp_path / "one-node"),
    )
    status, output = finish(one)
    assert status == 0, output
    assert_same(training_state(tmp_path / "two-nodes"), training_state(tmp_path / "one-node"))


def test_a_run_with_a_killed_rank_resumes_to_the_weights_of_one_never_killed(data_dir, tmp_path):
    whole = TrainConfig.from_dict(
        {
            "rule": "pepita",
            "hidden": [8],
            "epochs": 2,
            "batch_size": 16,
            "decay_epochs": [1],
            "threads": 1,
            "diagnostics": False,
            "data_dir": str(data_dir),
            "out": str(tmp_path / "whole"),
        }
    )
    run_replicas(cases.train_with_writes_only_on_rank_0, 2, whole)  # never killed
    out = tmp_path / "killed"
    killed = launch(
        "--standalone",
        "--nproc-per-node",
        "2",
        str(HERE / "kill_rank.py"),
        "1",
        "5",
        program=train_args(data_dir, out),
    )
    status, output = finish(killed)
    assert status != 0, output
    assert (out / "checkpoint.pt").exists(), output
    saved = torch.load(out / "checkpoint.pt", weights_only=True)  # intact: the first epoch
    assert saved["epoch"] == 1
    rerun = launch(
        "--standalone", "--nproc-per-node", "2", "-m", "bpfree", program=train_args(data_dir, out)
    )
    status, output = finish(rerun)
    assert status == 0, output
    assert_same(training_state(tmp_path / "whole"), training_state(out))


@pytest.mark.parametrize("launched", [True, False])
def test_a_replica_ends_with_its_status_and_output_but_without_the_interpreters_teardown(launched):
    """``exit_process``: a process torchrun started (WORLD_SIZE > 1) skips the teardown in which
    gloo's threads can abort it, its output flushed; any other exits as ``sys.exit`` does."""
    code = (
        "import atexit; atexit.register(print, ' torn down'); print('printed', end='');"
        "from bpfree.parallel.replicas import exit_process; exit_process(3)"
    )
    env = {**os.environ, "WORLD_SIZE": "2" if launched else "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert done.stdout == ("printed" if launched else "printed torn down\n")
