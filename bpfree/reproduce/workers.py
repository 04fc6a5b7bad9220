"""Runs trained side by side as processes that this command starts and stops.

One process per run, at most ``workers`` at once, each computing with the thread count its
config records. An interrupt of the command (Ctrl-C, or SIGTERM as ``kill``, ``scancel`` and
``docker stop`` send) terminates every worker before the command returns; a worker whose
parent dies stops itself. Killed workers lose no finished epoch: a run folder's files are
replaced atomically, and a rerun resumes each run from its checkpoint.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any

import bpfree.training
from bpfree.data import DataError
from bpfree.training import ConfigError, RunFolderError, TrainConfig, TrainingDiverged

# How long a terminated worker may take to exit before it is killed.
GRACE_SECONDS = 10.0


def train_job(config: TrainConfig) -> str | None:
    """Train one run to its last epoch; ``None`` on success, else the reason it failed."""
    try:
        bpfree.training.train(config, progress=False)
    except (ConfigError, DataError, RunFolderError, TrainingDiverged) as error:
        return f"{type(error).__name__}: {error}"
    except Exception as error:  # one broken row must not stop the others; the report names it
        return f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
    return None


def run_parallel(
    jobs: Sequence[Any],
    workers: int,
    on_done: Callable[[Any, str | None], None],
    log: Callable[[str], None],
) -> None:
    """Train ``jobs`` (each with ``config``, ``label`` and ``folder``) in at most ``workers``
    processes; ``on_done(job, reason)`` is called in this process as each one ends."""
    context = multiprocessing.get_context("spawn")
    queue, running = list(jobs), {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                job = queue.pop(0)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(
                    target=_worker, args=(job.config, send, os.getpid()), daemon=True
                )
                process.start()
                send.close()
                running[process.sentinel] = (process, receive, job)
                log(f"training {job.label} -> {job.folder} (process {process.pid})")
            for sentinel in wait(list(running)):
                process, receive, job = running.pop(sentinel)
                reason = receive.recv() if receive.poll() else _died(process)
                process.join()
                receive.close()
                on_done(job, reason)
    finally:
        _stop([process for process, _, _ in running.values()])


def _died(process: multiprocessing.Process) -> str:
    process.join()
    status = process.exitcode
    return f"the worker process {process.pid} ended without a result (exit status {status})"


def _stop(processes: list[multiprocessing.Process]) -> None:
    """Terminate the workers, then kill those that do not end within the grace period."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _worker(config: TrainConfig, connection, parent: int) -> None:
    """Train one run in a worker process and send back the reason it failed (or None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command stops its workers itself
    threading.Thread(target=_stop_with_parent, args=(parent,), daemon=True).start()
    connection.send(train_job(config))
    connection.close()


def _stop_with_parent(parent: int) -> None:
    """End this process as soon as its parent is gone (killed without a chance to stop it)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
