"""Tasks run side by side as local processes that the command starts and stops.

One process per task, at most ``slots`` at once. An interrupt of the command (Ctrl-C, or
SIGTERM as ``kill``, ``scancel`` and ``docker stop`` send) terminates every worker before the
command returns (``close``); a worker whose parent dies stops itself. On a machine with several
GPUs, each task can be given its own (``gpus_per_task``): the worker sees only those, as
``CUDA_VISIBLE_DEVICES`` says, so that ``device: cuda`` is the task's own GPU.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import wait

from bpfree.cluster.tasks import Task

# How long a terminated worker may take to exit before it is killed.
GRACE_SECONDS = 10.0


class GpuPlacement:
    """Which of a machine's ``count`` GPUs each running task holds: ``per_task`` distinct ones,
    never shared while the task runs."""

    def __init__(self, count: int, per_task: int) -> None:
        if per_task > count:
            raise ValueError(
                f"a task asks for {per_task} GPUs but this machine has {count}; lower "
                "--gpus-per-run"
            )
        self.per_task = per_task
        self.free = list(range(count))

    def can_take(self) -> bool:
        return len(self.free) >= self.per_task

    def take(self) -> list[int]:
        taken, self.free = self.free[: self.per_task], self.free[self.per_task :]
        return taken

    def give_back(self, gpus: list[int]) -> None:
        self.free = sorted(self.free + gpus)


class LocalPool:
    """An ``Executor`` of ``slots`` worker processes on this machine."""

    def __init__(self, slots: int, gpus: GpuPlacement | None = None, log=print) -> None:
        self.slots = slots
        self.gpus = gpus
        self.log = log
        self._context = multiprocessing.get_context("spawn")
        self._running: dict[int, tuple[multiprocessing.Process, object, Task, list[int]]] = {}

    @property
    def running(self) -> int:
        return len(self._running)

    def has_room(self) -> bool:
        """Whether another task can start now (a free slot, and free GPUs when placing them)."""
        return self.running < self.slots and (self.gpus is None or self.gpus.can_take())

    def submit(self, task: Task) -> None:
        gpus = self.gpus.take() if self.gpus is not None else []
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker, args=(task, send, os.getpid(), gpus), daemon=True
        )
        process.start()
        send.close()
        self._running[process.sentinel] = (process, receive, task, gpus)
        on_gpus = f", GPUs {gpus}" if gpus else ""
        self.log(f"{task.label} -> {task.folder} (process {process.pid}{on_gpus})")

    def wait(self) -> list[tuple[Task, str | None]]:
        ended = []
        for sentinel in wait(list(self._running)):
            process, receive, task, gpus = self._running.pop(sentinel)
            result = receive.recv() if receive.poll() else _died(process)
            process.join()
            receive.close()
            if self.gpus is not None:
                self.gpus.give_back(gpus)
            ended.append((task, result))
        return ended

    def close(self) -> None:
        """Terminate the workers, then kill those that do not end within the grace period."""
        processes = [process for process, _, _, _ in self._running.values()]
        self._running.clear()
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + GRACE_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def _died(process: multiprocessing.Process) -> str:
    process.join()
    status = process.exitcode
    return f"the worker process {process.pid} ended without a result (exit status {status})"


def _worker(task: Task, connection, parent: int, gpus: list[int]) -> None:
    """Run one task in a worker process and send back its result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command stops its workers itself
    if gpus:  # read by CUDA when torch first uses it, which no import does
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    threading.Thread(target=_stop_with_parent, args=(parent,), daemon=True).start()
    connection.send(task.function(*task.arguments))
    connection.close()


def _stop_with_parent(parent: int) -> None:
    """End this process as soon as its parent is gone (killed without a chance to stop it)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
