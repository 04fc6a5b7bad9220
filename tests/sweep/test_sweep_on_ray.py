"""``bpfree sweep --ray local`` runs a sweep end to end through a local Ray instance: the same
trials, values and final runs as through the local process pool (``--jobs 2``), for the same
seeds and threads."""

import pytest
import torch

from bpfree import cli
from bpfree.testing import assert_same
from tests.sweep.conftest import load_study

ray = pytest.importorskip("ray")
pytest.importorskip("optuna")


@pytest.fixture
def stop_ray():
    yield
    ray.shutdown()


def test_a_sweep_through_ray_gives_the_same_trials_as_the_local_pool(
    stop_ray, write_spec, data_dir, tmp_path
):
    spec = write_spec(trials=3, final={"seeds": [0], "epochs": 2})
    for name, flags in (("ray", ["--ray", "local"]), ("pool", ["--jobs", "2"])):
        status = cli.main(["sweep", str(spec), "--out", str(tmp_path / name), "--threads", "1",
                           "--data-dir", str(data_dir), *flags])  # fmt: skip
        assert status == 0
    ray_trials, pool_trials = (load_study(tmp_path / name).trials for name in ("ray", "pool"))
    assert [t.params for t in ray_trials] == [t.params for t in pool_trials]
    assert [t.value for t in ray_trials] == [t.value for t in pool_trials]
    assert [t.user_attrs["test_acc"] for t in ray_trials] == [
        t.user_attrs["test_acc"] for t in pool_trials
    ]
    best = load_study(tmp_path / "ray").best_trial.number
    final = [
        torch.load(tmp_path / name / "tiny" / "final" / f"trial-{best:04d}" / "seed-0" /
                   "checkpoint.pt", weights_only=True)
        for name in ("ray", "pool")
    ]  # fmt: skip
    assert_same(final[0]["training"]["model"], final[1]["training"]["model"])
