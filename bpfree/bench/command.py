"""``bpfree bench``: the speed and memory benchmarks, printed as Markdown tables.

bpfree bench                                   # the foundation rules on three MLPs
bpfree bench --suite feedback projection       # more suites, one table per model and batch
bpfree bench --epoch --data-dir DIR            # also one real MNIST epoch per rule
bpfree bench --memory --out bench.md           # also peak memory against depth; save it
bpfree bench --compile --epoch                 # also each rule's step compiled
bpfree bench --device cuda                     # the same on a GPU
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from bpfree.bench import report
from bpfree.bench.epoch import epoch_seconds
from bpfree.bench.machine import machine
from bpfree.bench.memory import memory_against_depth
from bpfree.bench.parallel import parallel_tables
from bpfree.bench.step_time import check_positive, time_setting
from bpfree.bench.suites import (
    MEMORY,
    SUITES,
    BenchSuite,
    get_suite,
    partition_rules,
    rule_entry,
)
from bpfree.bench.training_step import cannot_train
from bpfree.core.files import atomic_write, write_text
from bpfree.data import DataError, Dataset, load_dataset
from bpfree.parallel import join
from bpfree.parallel.replicas import launched
from bpfree.rules import RULES


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bpfree bench`` to ``parser``."""
    parser.add_argument(
        "--suite",
        nargs="+",
        default=["foundation"],
        choices=list(SUITES),
        help=f"benchmark suites to time: {', '.join(SUITES)} (default: foundation)",
    )
    parser.add_argument(
        "--rules",
        nargs="+",
        choices=sorted(RULES),
        metavar="RULE",
        help="time these rules instead of each suite's (BP is always timed); "
        f"valid: {', '.join(sorted(RULES))}",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--rounds", type=_positive_int, default=15, help="round-robin bursts per rule (15)"
    )
    parser.add_argument("--steps", type=_positive_int, default=20, help="steps per burst (20)")
    parser.add_argument(
        "--epoch", action="store_true", help="also time one real MNIST epoch per rule"
    )
    parser.add_argument(
        "--data-dir", help="folder holding mnist/ (else $BPFREE_DATA, else ~/.cache/bpfree)"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="also measure peak memory against depth "
        f"(MLPs {MEMORY.input_size}-{MEMORY.width}x{{{','.join(map(str, MEMORY.depths))}}}-10, "
        f"batch {MEMORY.batch})",
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="data-parallel throughput of each rule against one process (run it under torchrun: "
        "torchrun --standalone --nproc-per-node 2 -m bpfree bench --parallel)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time each rule's step compiled (torch.compile; CUDA graphs on a GPU), "
        "against eager and compiled BP",
    )
    parser.add_argument("--out", help="also write the printed Markdown to this file")


def _error(message: str) -> int:
    print(f"bpfree bench: error: {message}", file=sys.stderr)
    return 2


def _check_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device cuda: no CUDA GPU is available (torch {torch.__version__}); use --device cpu"
        )
    return device


def _check_each_trains_a_setting(
    entries: list[str], suites: list[BenchSuite], device: torch.device
) -> None:
    """A ``ValueError`` for a rule entry that can train none of the suites' models (an option
    the rule does not take, or a rule for models no suite has); one that trains some is left
    out of the others' tables with a notice."""
    settings = [setting for suite in suites for setting in suite.settings]
    for entry in partition_rules(entries)[0]:
        reasons = [cannot_train(entry, setting, device) for setting in settings]
        if all(reasons):
            raise ValueError(
                f"--rules {entry!r} trains no model of the suites asked: {reasons[-1]}"
            )


def _mnist(data_dir: str | None, device: torch.device) -> Dataset:
    """MNIST on ``device``, never downloaded: a missing file is a ``DataError`` naming it."""
    return load_dataset("mnist", data_dir, device=device, download=False)


def _tables(
    args: argparse.Namespace, suites: list[BenchSuite], device: torch.device, data: Dataset | None
) -> Iterator[str]:
    """Each Markdown block of the report, in order, computed when asked for."""
    yield machine(device).describe()
    for suite in suites:
        rules = args.rules or suite.rules
        for setting in suite.settings:
            times = time_setting(rules, setting, device, args.rounds, args.steps, args.compile)
            for rule, why in times.untrainable.items():
                print(f"bpfree bench: {rule} left out of {setting.label}: {why}", file=sys.stderr)
            yield f"suite {suite.name}, " + report.step_time_table(times, args.rounds, args.steps)
    if data is not None:
        entries = args.rules or [r for suite in suites for r in suite.rules]
        plain = [entry for entry in entries if not rule_entry(entry)[1]]  # MNIST takes no points
        rules = partition_rules(plain)[0]
        eager = epoch_seconds(rules, data, device)
        compiled = epoch_seconds(rules, data, device, compile=True) if args.compile else None
        yield report.epoch_table(eager, compiled)
    if args.memory:
        yield report.memory_table(memory_against_depth(device, MEMORY, args.rules))


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks ``args`` ask for, print the tables; returns the exit status (2 for
    bad input or a missing dataset, with the message on stderr)."""
    try:
        suites = [get_suite(name) for name in args.suite]
        check_positive(rounds=args.rounds, steps=args.steps)
        device = _check_device(args.device)
        data = _mnist(args.data_dir, device) if args.epoch else None
        if args.rules and not args.parallel:
            _check_each_trains_a_setting(args.rules, suites, device)
    except (ValueError, DataError) as error:
        return _error(str(error))
    if args.parallel:
        return _run_parallel(args)
    blocks = []
    for block in _tables(args, suites, device, data):
        print(block + "\n", flush=True)
        blocks.append(block)
    if args.out:
        text = "\n\n".join(blocks) + "\n"
        atomic_write(Path(args.out), lambda file: file.write(text.encode()))
    return 0


def _run_parallel(args: argparse.Namespace) -> int:
    """The data-parallel benchmark, on the replicas torchrun started; rank 0 prints."""
    if not launched():
        return _error(
            "--parallel measures replicas that torchrun starts: run "
            "torchrun --standalone --nproc-per-node 2 -m bpfree bench --parallel"
        )
    replicas = join(args.device)
    rules = partition_rules(args.rules or sorted(RULES))[0]
    tables = parallel_tables(rules, replicas, args.rounds, args.steps)
    blocks = [machine(replicas.device).describe(), *tables]
    if replicas.is_main:
        for block in blocks:
            print(block + "\n", flush=True)
        if args.out:
            write_text(args.out, "\n\n".join(blocks) + "\n")
    return 0
