"""Units of work that an executor runs somewhere else: a local process or a Ray worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Task:
    """``function(*arguments)`` run by an executor; ``function`` is a module-level function (it
    travels by reference to the worker) that returns ``None`` on success, else the reason it
    failed. ``folder`` is where the task writes (its run folder), shown in the log."""

    label: str
    function: Callable[..., str | None]
    arguments: tuple[Any, ...]
    folder: Path


class Executor(Protocol):
    """Runs tasks while it ``has_room``; ``wait`` blocks until at least one has ended and
    returns each ended task with its result (``None``, or the reason it failed); ``close``
    stops every task still running (their run folders keep every finished epoch)."""

    @property
    def running(self) -> int: ...

    def has_room(self) -> bool: ...

    def submit(self, task: Task) -> None: ...

    def wait(self) -> list[tuple[Task, str | None]]: ...

    def close(self) -> None: ...


def run_all(
    executor: Executor,
    tasks: list[Task],
    on_done: Callable[[Task, str | None], None],
) -> None:
    """Run ``tasks`` on ``executor`` as it has room, calling ``on_done`` as each ends; an
    interrupt stops the running ones (``close``)."""
    queue = list(tasks)
    try:
        while queue or executor.running:
            while queue and executor.has_room():
                executor.submit(queue.pop(0))
            for task, result in executor.wait():
                on_done(task, result)
    finally:
        executor.close()


class InProcess:
    """An ``Executor`` that runs each task in this process, one at a time, when waited on."""

    def __init__(self, log=print) -> None:
        self.log = log
        self._queued: list[Task] = []

    @property
    def running(self) -> int:
        return len(self._queued)

    def has_room(self) -> bool:
        return not self._queued

    def submit(self, task: Task) -> None:
        self._queued.append(task)

    def wait(self) -> list[tuple[Task, str | None]]:
        task = self._queued.pop(0)
        self.log(f"{task.label} -> {task.folder}")
        return [(task, task.function(*task.arguments))]

    def close(self) -> None:
        self._queued.clear()
