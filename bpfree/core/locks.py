"""Exclusive locks on files, held by one process at a time and freed when it ends (even by a
kill): ``flock`` on a lock file that names the process holding it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: nothing is locked there
    fcntl = None


class Locked(RuntimeError):
    """Another process holds the lock; ``holder`` is its process id as it wrote it."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by process {holder}")
        self.holder = holder


@contextmanager
def exclusive_lock(path: str | Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the lock file ``path`` (created if missing) for the block, writing this process's id
    into it. Without ``wait``, raise ``Locked`` when another process holds it; with ``wait``,
    block until it is free. ``OSError`` when the file cannot be created."""
    handle = open(path, "a+")  # noqa: SIM115 (held for the whole block)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                handle.seek(0)
                raise Locked(Path(path), handle.read().strip() or "unknown") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def is_locked(path: str | Path) -> bool:
    """Whether another process holds the lock file ``path`` now (a missing file is free)."""
    if not Path(path).exists():
        return False
    try:
        with exclusive_lock(path):
            return False
    except Locked:
        return True
