"""``bpfree reproduce --ray local`` trains a suite end to end through a local Ray instance,
and its runs are the same as through the local process pool (``--jobs 2``), for the same
seeds and threads."""

import pytest
import torch

from bpfree import cli
from bpfree.testing import assert_same

ray = pytest.importorskip("ray")

SUITE = """
title: tiny
seeds: [0]
defaults: {hidden: [8], epochs: 2, batch_size: 16, diagnostics: false, decay_epochs: [1]}
rows:
  - {name: fa, config: {rule: fa, dataset: mnist}}
  - {name: pepita, config: {rule: pepita, dataset: mnist}}
"""


@pytest.fixture
def stop_ray():
    yield
    ray.shutdown()


def test_a_suite_through_ray_trains_the_same_runs_as_the_local_pool(stop_ray, tmp_path, data_dir):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(SUITE)
    for name, flags in (("ray", ["--ray", "local"]), ("pool", ["--jobs", "2"])):
        status = cli.main(["reproduce", str(suite), "--out", str(tmp_path / name),
                           "--threads", "1", "--data-dir", str(data_dir), *flags])  # fmt: skip
        assert status == 0
    for row in ("fa", "pepita"):
        saved = [
            torch.load(tmp_path / where / "tiny" / row / "seed-0" / "checkpoint.pt",
                       weights_only=True)
            for where in ("ray", "pool")
        ]  # fmt: skip
        assert saved[0]["config"]["threads"] == saved[1]["config"]["threads"] == 1
        assert saved[0]["metrics"] == [
            {**row, "seconds": saved[0]["metrics"][i]["seconds"]}
            for i, row in enumerate(saved[1]["metrics"])
        ]
        assert_same(saved[0]["training"]["model"], saved[1]["training"]["model"])
