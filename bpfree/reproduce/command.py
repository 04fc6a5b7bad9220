"""``bpfree reproduce``: train a paper table's suite (resumably) and report it beside the paper.

bpfree reproduce --list                                  # the shipped suites
bpfree reproduce icml-table1-fc --jobs 2                 # every row and seed, two at a time
bpfree reproduce icml-table1-fc --ray auto --gpus-per-run 1   # each run a task on a Ray cluster
bpfree reproduce icml-table1-fc --rows 'mnist-*' --seeds 0 --budget 2   # a quick look
"""

from __future__ import annotations

import argparse
import sys

from tqdm.auto import tqdm

from bpfree.cluster import choice as cluster_choice
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
    cluster_choice.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """List the suites, or train and report one; the exit status."""
    if args.list or args.suite is None:
        for name in available_suites():
            suite = load_suite(name)
            print(f"{name:24s} {suite.title} ({len(suite.rows)} rows x {len(suite.seeds)} seeds)")
        return 0 if args.list else 2
    try:
        cluster_choice.check(args)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    suite = load_suite(args.suite)
    threads = cluster_choice.threads_per_run(args)
    out, data_dir = cluster_choice.shared_paths(args, args.out, args.data_dir)
    command = f"bpfree reproduce {args.suite} --out {args.out}"
    command += f" --budget {args.budget}" if args.budget else ""
    try:
        with sigterm_as_interrupt():
            executor = (
                None
                if args.report_only
                else cluster_choice.executor_from(args, args.device, log=tqdm.write)
            )
            results, written = reproduce(
                suite,
                out,
                executor=executor,
                budget=args.budget,
                data_dir=data_dir,
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
