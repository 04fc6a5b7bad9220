"""Where runs execute: in this process, in local worker processes (one GPU each where there
are several), or as tasks on a Ray cluster. ``reproduce`` and ``sweep`` hand their runs to one
of these executors."""

from bpfree.cluster.pool import GpuPlacement, LocalPool
from bpfree.cluster.ray_cluster import ClusterError, RayCluster
from bpfree.cluster.tasks import Executor, InProcess, Task, run_all

__all__ = [
    "ClusterError",
    "Executor",
    "GpuPlacement",
    "InProcess",
    "LocalPool",
    "RayCluster",
    "Task",
    "run_all",
]
