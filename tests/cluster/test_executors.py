"""The executors: local processes each on GPUs of their own, and the resources a Ray run asks
for checked against the cluster's."""

import os

import pytest

from bpfree.cluster import ClusterError, GpuPlacement, LocalPool, Task, run_all
from bpfree.cluster.ray_cluster import _slots
from bpfree.core.extras import MissingExtra, require


def visible_gpus() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def quiet(_message):
    pass


def test_runs_on_a_machine_with_several_gpus_get_distinct_ones(tmp_path):
    pool = LocalPool(4, GpuPlacement(count=4, per_task=2), log=quiet)
    tasks = [Task(f"task {i}", visible_gpus, (), tmp_path) for i in range(4)]
    seen = {}
    pool.submit(tasks[0])
    pool.submit(tasks[1])
    assert not pool.has_room()  # 4 GPUs, 2 per run: the third waits though slots are free
    while pool.running:
        seen.update((task.label, result) for task, result in pool.wait())
    assert sorted(seen.values()) == ["0,1", "2,3"]
    results = []
    run_all(pool, tasks[2:], lambda task, result: results.append(result))
    assert sorted(results) == ["0,1", "2,3"]


def test_a_placement_asking_more_gpus_than_the_machine_has_is_refused():
    with pytest.raises(ValueError, match="asks for 3 GPUs but this machine has 2"):
        GpuPlacement(count=2, per_task=3)


def test_a_run_larger_than_the_ray_cluster_is_refused():
    assert _slots({"CPU": 8.0, "GPU": 2.0}, 2.0, 1.0, "auto") == 2
    assert _slots({"CPU": 8.0}, 3.0, 0.0, "auto") == 2
    with pytest.raises(ClusterError, match="not enough for one run of 1 CPUs and 1 GPUs"):
        _slots({"CPU": 8.0}, 1.0, 1.0, "auto")


def test_a_missing_optional_package_names_the_extra_that_installs_it():
    expected = r'--ray needs the package .*pip install "bpfree\[cluster\]"'
    with pytest.raises(MissingExtra, match=expected):
        require("bpfree_no_such_package", extra="cluster", needed_for="--ray")
