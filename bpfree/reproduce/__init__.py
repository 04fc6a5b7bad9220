"""One command per paper table: suites of runs, resumed and aggregated beside the paper's numbers.

from bpfree.cluster import LocalPool
from bpfree.reproduce import load_suite, reproduce
results = reproduce(load_suite("icml-table1-fc"), "runs/reproduce", executor=LocalPool(2))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bpfree.cluster import Executor
from bpfree.reproduce.aggregate import RowResult, collect
from bpfree.reproduce.report import write_report
from bpfree.reproduce.runner import plan, report_folder, run_jobs, runs_folder, select
from bpfree.reproduce.slowness import PlateauFit, plateau_fit, slowness_protocol
from bpfree.reproduce.suite import Suite, SuiteError, available_suites, load_suite


def reproduce(
    suite: Suite,
    out: str | Path,
    *,
    executor: Executor | None = None,
    budget: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    train: bool = True,
    rows: list[str] | None = None,
    seeds: list[int] | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[RowResult], list[Path]]:
    """Run the suite's missing runs (unless ``train`` is false), then aggregate and report.

    ``rows`` (names or shell patterns) and ``seeds`` narrow what is trained; the report always
    covers the whole suite, a row judged only once all the suite's seeds have finished. Each run
    computes with ``threads`` CPU threads (None: torch's default), recorded in its config.
    The runs go to ``executor`` (default: one after the other in this process).
    Returns the row results and the report files written into ``report_folder(suite, out)``.
    """
    jobs = plan(suite, out, budget=budget, data_dir=data_dir, device=device, threads=threads)
    chosen = select(jobs, suite, rows=rows, seeds=seeds)
    if train:
        run_jobs(chosen, executor=executor, log=log)
    results = collect(suite, jobs)
    command = command or f"bpfree reproduce {suite.name} --out {out}" + (
        f" --budget {budget}" if budget else ""
    )
    written = write_report(
        suite, results, report_folder(suite, out, budget), budget=budget, command=command
    )
    return results, written


__all__ = [
    "PlateauFit",
    "RowResult",
    "Suite",
    "SuiteError",
    "available_suites",
    "load_suite",
    "plan",
    "plateau_fit",
    "report_folder",
    "reproduce",
    "runs_folder",
    "select",
    "slowness_protocol",
]
