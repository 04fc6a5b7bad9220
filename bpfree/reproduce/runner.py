"""Running a suite: one training run per row and seed, resumable, optionally in parallel.

Runs live in ``OUT/<run_folder>/<row>/seed-<seed>/``, ordinary run folders of ``bpfree train``.
A run whose folder already holds all its epochs is not redone; one that stopped part way resumes
from its checkpoint; a folder holding a run with other settings is an error, never overwritten.
A ``budget`` (fewer epochs, for a quick look) runs into ``OUT/<run_folder>-budget<N>/`` so that
its numbers can never be mistaken for full runs. A run that fails leaves ``failed.txt`` with the
reason in its folder, the suite goes on with the others, and the report names the failure. A
run's weights depend on its thread count, which its config records: with the same
``threads``, a suite gives bitwise the same runs whatever the number of workers.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bpfree.cluster import Executor, InProcess, Task, run_all
from bpfree.core.files import write_text
from bpfree.reproduce.suite import Row, Suite, SuiteError
from bpfree.rules import RULES
from bpfree.training import (
    TRAINED_ELSEWHERE,
    RunFolder,
    RunFolderError,
    TrainConfig,
    train_job,
)

FAILED = "failed.txt"


@dataclass(frozen=True)
class Job:
    """One row at one seed: its resolved config (``None`` if the rule is not in bpfree yet)."""

    row: Row
    seed: int
    folder: Path
    config: TrainConfig | None

    @property
    def label(self) -> str:
        return f"{self.row.name} seed {self.seed}"


def runs_folder(suite: Suite, out: str | Path, budget: int | None = None) -> Path:
    """Where the suite's runs live: ``OUT/<run_folder>``, or ``OUT/<run_folder>-budget<N>``."""
    return Path(out) / (suite.run_folder + (f"-budget{budget}" if budget else ""))


def report_folder(suite: Suite, out: str | Path, budget: int | None = None) -> Path:
    """Where the suite's report goes: ``OUT/<suite>/``, or ``OUT/<suite>-budget<N>/``."""
    return Path(out) / (suite.name + (f"-budget{budget}" if budget else ""))


def plan(
    suite: Suite,
    out: str | Path,
    *,
    budget: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> list[Job]:
    """Every (row, seed) of the suite with the config it trains under (computing with
    ``threads`` CPU threads per run, recorded in each run's config)."""
    if budget is not None and budget < 1:
        raise SuiteError(f"--budget must be at least 1 epoch, got {budget}")
    root = runs_folder(suite, out, budget)
    jobs = []
    for row in suite.rows:
        for seed in suite.seeds:
            folder = root / row.name / f"seed-{seed}"
            config = None
            if row.rule in RULES:
                config = row.train_config(seed)
                epochs = config.epochs if budget is None else min(budget, config.epochs)
                config = dataclasses.replace(
                    config,
                    epochs=epochs,
                    out=str(folder),
                    data_dir=data_dir,
                    device=device,
                    threads=threads,
                )
            jobs.append(Job(row, seed, folder, config))
    return jobs


def select(
    jobs: list[Job],
    suite: Suite,
    *,
    rows: list[str] | None = None,
    seeds: list[int] | None = None,
) -> list[Job]:
    """The jobs of the rows matching any of ``rows`` (names or shell patterns, ``cifar10-*``)
    and of ``seeds``; ``None`` keeps all. A pattern matching no row, or a seed the suite does not
    run, is an error naming what the suite has."""
    names = [row.name for row in suite.rows]
    for pattern in rows or []:
        if not fnmatch.filter(names, pattern):
            raise SuiteError(
                f"--rows {pattern!r} matches no row of {suite.name}; its rows: {', '.join(names)}"
            )
    for seed in seeds or []:
        if seed not in suite.seeds:
            raise SuiteError(
                f"--seeds {seed} is not a seed of {suite.name}; its seeds: "
                f"{', '.join(map(str, suite.seeds))} (the report averages over exactly these)"
            )
    return [
        job
        for job in jobs
        if (rows is None or any(fnmatch.fnmatchcase(job.row.name, p) for p in rows))
        and (seeds is None or job.seed in seeds)
    ]


def finished_epochs(job: Job) -> int:
    """Epochs the job's folder holds; an error if the folder holds a run with other settings."""
    folder = RunFolder(job.folder)
    try:
        saved = folder.saved_config()
    except RunFolderError as error:
        raise SuiteError(str(error)) from None
    if saved is None:
        return 0
    changed = job.config.differences(saved) if job.config is not None else []
    if changed:
        raise SuiteError(
            f"{job.folder} holds a run with other settings than row {job.row.name!r} "
            f"({', '.join(changed)}); move it away or pass another --out"
        )
    return folder.finished_epochs()


def pending(jobs: list[Job]) -> list[Job]:
    """The runnable jobs whose folders do not yet hold all their epochs."""
    return [j for j in jobs if j.config is not None and finished_epochs(j) < j.config.epochs]


def run_jobs(
    jobs: list[Job],
    *,
    executor: Executor | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Train every pending job (resuming partial ones) on ``executor`` (default: one after the
    other in this process); returns {job label: failure reason}. An interrupt stops every run;
    every finished epoch is kept on disk.
    """
    failures: dict[str, str] = {}
    todo = {f"training {job.label}": job for job in pending(jobs)}

    def done(task: Task, reason: str | None) -> None:
        _record(todo[task.label], reason, failures, log)

    tasks = [Task(label, train_job, (job.config,), job.folder) for label, job in todo.items()]
    run_all(executor or InProcess(log=log), tasks, done)
    return failures


def _record(job: Job, reason: str | None, failures: dict[str, str], log) -> None:
    marker = job.folder / FAILED
    if reason is None:
        marker.unlink(missing_ok=True)
        log(f"finished {job.label}")
        return
    if reason == TRAINED_ELSEWHERE:  # not failed: the command that holds it finishes it
        log(f"{job.label}: {reason}")
        return
    failures[job.label] = reason
    write_text(marker, reason)
    log(f"FAILED {job.label}: {reason}")
