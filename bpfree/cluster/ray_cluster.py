"""Tasks sent to a Ray cluster, each with the CPUs and GPUs it asks for.

``address`` is what ``ray.init`` takes (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``), or
``local`` to start a Ray instance on this machine for the command's lifetime. Each task runs on
whichever node has its resources free; Ray gives it ``gpus_per_task`` GPUs of its own (as
``CUDA_VISIBLE_DEVICES``). Paths in a task must name places every node sees: the run folders
and the data (``--out`` and ``--data-dir`` on a shared file system). A task that is cancelled or
whose node dies keeps its run folder's finished epochs; the same command resumes it.
"""

from __future__ import annotations

import socket
from typing import Any

from bpfree.cluster.tasks import Task
from bpfree.core.extras import require


class ClusterError(RuntimeError):
    """The Ray cluster cannot be used as asked; the message says why and what to do."""


def _call(function, arguments: tuple[Any, ...]) -> str | None:
    return function(*arguments)


class RayCluster:
    """An ``Executor`` on a Ray cluster: as many tasks at once as its resources allow."""

    def __init__(
        self, address: str, *, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0, log=print
    ) -> None:
        self.ray = require("ray", extra="cluster", needed_for="--ray")
        self.log = log
        if address != "local":
            _check_reachable(address)
        try:
            if address == "local":
                self.ray.init(
                    include_dashboard=False, log_to_driver=False, ignore_reinit_error=True
                )
            else:
                self.ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ClusterError(
                f"cannot connect to the Ray cluster at {address!r} ({error}); start it with "
                "`ray start --head` and pass the address it prints, or --ray local"
            ) from None
        resources = self.ray.cluster_resources()
        self.slots = _slots(resources, cpus_per_task, gpus_per_task, address)
        self._remote = self.ray.remote(_call).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0
        )
        self._running: dict[Any, Task] = {}
        log(
            f"Ray cluster at {address}: {resources.get('CPU', 0):g} CPUs, "
            f"{resources.get('GPU', 0):g} GPUs, {self.slots} runs at once"
        )

    @property
    def running(self) -> int:
        return len(self._running)

    def has_room(self) -> bool:
        return self.running < self.slots

    def submit(self, task: Task) -> None:
        self._running[self._remote.remote(task.function, task.arguments)] = task
        self.log(f"{task.label} -> {task.folder} (Ray task)")

    def wait(self) -> list[tuple[Task, str | None]]:
        ready, _ = self.ray.wait(list(self._running), num_returns=1)
        ended = []
        for reference in ready:
            task = self._running.pop(reference)
            try:
                ended.append((task, self.ray.get(reference)))
            except self.ray.exceptions.RayError as error:
                ended.append((task, f"the Ray task failed: {type(error).__name__}: {error}"))
        return ended

    def close(self) -> None:
        """Cancel the running tasks. A Ray instance started here (``local``) stays up until
        this process exits (Ray shuts it down then), so that the executor can be used again."""
        for reference in self._running:
            self.ray.cancel(reference, force=True)
        self._running.clear()


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """A ``ClusterError`` at once when nothing answers at a ``HOST:PORT`` address (``ray.init``
    would wait a minute or more before giving up)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and the like: Ray finds (or misses) the cluster itself, quickly
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        raise ClusterError(
            f"nothing answers at the Ray address {address!r} ({error.strerror or error}); "
            "check the head node's address and port (`ray status` on it), or use --ray local"
        ) from None


def _slots(resources: dict[str, float], cpus: float, gpus: float, address: str) -> int:
    """How many tasks of ``cpus`` and ``gpus`` fit the cluster at once (an error if none)."""
    fits = [resources.get("CPU", 0.0) / cpus] if cpus > 0 else []
    fits += [resources.get("GPU", 0.0) / gpus] if gpus > 0 else []
    slots = int(min(fits)) if fits else 1
    if slots < 1:
        raise ClusterError(
            f"the Ray cluster at {address} has {resources.get('CPU', 0):g} CPUs and "
            f"{resources.get('GPU', 0):g} GPUs: not enough for one run of {cpus:g} CPUs and "
            f"{gpus:g} GPUs; lower --cpus-per-run or --gpus-per-run"
        )
    return slots
