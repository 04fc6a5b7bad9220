"""``bpfree reproduce``: train a paper table's suite (resumably) and report it beside the paper.

bpfree reproduce --list                                  # the shipped suites
bpfree reproduce icml-table1-fc --jobs 2                 # every row and seed, two at a time
bpfree reproduce icml-table1-fc --rows 'mnist-*' --seeds 0 --budget 2   # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys

from tqdm.auto import tqdm

from bpfree.core.signals import sigterm_as_interrupt
from bpfree.reproduce import reproduce
from bpfree.reproduce.suite import available_suites, load_suite
from bpfree.training import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bpfree reproduce`` to ``parser``."""
    parser.add_argument(
        "suite", nargs="?", help=f"a suite name ({', '.join(available_suites())}) or YAML file"
    )
    parser.add_argument(
        "--out", default="runs/reproduce", help="folder of the runs and reports (runs/reproduce)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once, as processes (1)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads per run, recorded in its config (default: the cores divided by --jobs); "
        "with the same number a suite gives the same weights whatever --jobs is",
    )
    parser.add_argument(
        "--budget", type=int, help="stop every run after this many epochs (a quick look)"
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="PATTERN",
        help="train only these rows (names or shell patterns such as 'cifar10-*'); "
        "the report still covers the whole suite",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="train only these of the suite's seeds"
    )
    parser.add_argument("--data-dir", help="folder holding the datasets")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing; report the finished runs"
    )
    parser.add_argument("--list", action="store_true", help="list the shipped suites")


def run(args: argparse.Namespace) -> int:
    """List the suites, or train and report one; the exit status."""
    if args.list or args.suite is None:
        for name in available_suites():
            suite = load_suite(name)
            print(f"{name:24s} {suite.title} ({len(suite.rows)} rows x {len(suite.seeds)} seeds)")
        return 0 if args.list else 2
    for flag in ("jobs", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be at least 1, got {value}")
    suite = load_suite(args.suite)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    command = f"bpfree reproduce {args.suite} --out {args.out}"
    command += f" --budget {args.budget}" if args.budget else ""
    try:
        with sigterm_as_interrupt():
            results, written = reproduce(
                suite,
                args.out,
                workers=args.jobs,
                budget=args.budget,
                data_dir=args.data_dir,
                device=args.device,
                threads=threads,
                train=not args.report_only,
                rows=args.rows,
                seeds=args.seeds,
                command=command,
                log=tqdm.write,
            )
    except KeyboardInterrupt:
        print(
            f"interrupted: every finished epoch is kept under {args.out}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    print(written[0].read_text())
    for path in written:
        print(f"wrote {path}")
    failed = sum(len(result.failures) for result in results)
    if failed:
        print(f"bpfree reproduce: {failed} runs failed (see report.md)", file=sys.stderr)
    return 1 if failed else 0
