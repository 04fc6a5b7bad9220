"""From a suite's run folders to one result per row: mean and std over seeds (or the slowness fit
of the mean curve), the difference to the paper and whether it lies within the tolerance.

Only finished runs count. A row is judged against the paper only when every seed has finished;
otherwise its verdict says how many have. The std is the sample std over seeds (ddof = 1).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bpfree.data import DATASETS
from bpfree.reproduce.runner import FAILED, Job, finished_epochs
from bpfree.reproduce.slowness import PlateauFit, slowness_protocol
from bpfree.reproduce.suite import Row, Suite
from bpfree.training import RunFolder

NOT_IN_BPFREE = "rule not in bpfree yet"


@dataclass
class RowResult:
    """A row's outcome over its seeds."""

    row: Row
    status: str  # complete, incomplete, failed, not run, or NOT_IN_BPFREE
    seeds: list[int] = field(default_factory=list)  # the seeds whose runs finished
    values: list[float] = field(default_factory=list)  # each seed's number (run_value)
    value: float | None = None  # the row's number: the mean over seeds, or the fitted slowness
    std: float | None = None
    fit: PlateauFit | None = None
    curves: list[list[dict[str, Any]]] = field(default_factory=list)  # metrics rows per seed
    failures: list[str] = field(default_factory=list)
    seeds_planned: int = 0

    @property
    def difference(self) -> float | None:
        if self.value is None or self.row.paper is None:
            return None
        return self.value - self.row.paper.mean

    @property
    def verdict(self) -> str:
        """``within`` or ``outside`` the tolerance once every seed has finished."""
        if self.status != "complete":
            return self.status
        if self.difference is None:
            return "no paper value"
        if self.row.tolerance is None:
            return "for reference"
        return "within" if abs(self.difference) <= self.row.tolerance else "outside"


def collect(suite: Suite, jobs: list[Job]) -> list[RowResult]:
    """Each row's result from the run folders of ``jobs`` (as planned for ``suite``)."""
    results = []
    for row in suite.rows:
        row_jobs = [job for job in jobs if job.row.name == row.name]
        results.append(_row_result(suite, row, row_jobs))
    return results


def _row_result(suite: Suite, row: Row, jobs: list[Job]) -> RowResult:
    result = RowResult(row, status="not run", seeds_planned=len(jobs))
    if any(job.config is None for job in jobs):
        result.status = NOT_IN_BPFREE
        return result
    for job in jobs:
        failed = job.folder / FAILED
        if failed.exists():
            result.failures.append(f"seed {job.seed}: {failed.read_text().splitlines()[0]}")
        if finished_epochs(job) >= job.config.epochs:
            metrics = RunFolder(job.folder).read_metrics()[: job.config.epochs]
            result.seeds.append(job.seed)
            result.curves.append(metrics)
            result.values.append(run_value(suite.metric, metrics))
    if len(result.seeds) == len(jobs):
        result.status = "complete"
    elif result.failures:
        result.status = "failed"
    elif result.seeds or any(finished_epochs(job) for job in jobs):
        result.status = f"incomplete ({len(result.seeds)} of {len(jobs)} seeds)"
    if not result.values:
        return result
    if suite.metric == "slowness":
        config = jobs[0].config
        step = config.lr_schedule == "step" and config.decay_epochs
        result.fit = slowness_protocol(
            mean_curve(result.curves).tolist(),
            first_decay=min(config.decay_epochs) if step else None,
            num_classes=DATASETS[config.dataset].num_classes,
        )
        result.value = result.fit.slowness
    else:
        result.value = statistics.fmean(result.values)
        result.std = statistics.stdev(result.values) if len(result.values) > 1 else None
    return result


def run_value(metric: str, metrics: list[dict[str, Any]]) -> float:
    """One run's number for the suite's metric (slowness: its last test accuracy, the curves
    are fitted later): the last or best test accuracy, or the lowest validation perplexity."""
    if metric == "best_val_ppl":
        return min(row["val_ppl"] for row in metrics)
    accuracies = [row["test_acc"] for row in metrics]
    return max(accuracies) if metric == "best_test_acc" else accuracies[-1]


def mean_curve(curves: list[list[dict[str, Any]]], key: str = "test_acc") -> np.ndarray:
    """The per-epoch mean of ``key`` over runs (all runs have the same number of epochs)."""
    return np.mean([[row[key] for row in curve] for curve in curves], axis=0)
