"""The ``bpfree`` command: each subcommand is owned by its package (``add_arguments``, ``run``);
this module only dispatches to them and turns their errors into messages and exit statuses."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from bpfree.bench import command as bench
from bpfree.cluster import ClusterError
from bpfree.core.extras import MissingExtra
from bpfree.data import DataError
from bpfree.parallel import leave
from bpfree.parallel.replicas import exit_process
from bpfree.reproduce import command as reproduce
from bpfree.sweep import SpecError
from bpfree.sweep import command as sweep
from bpfree.theory import command as theory
from bpfree.training import ConfigError, RunFolderError, TrainingDiverged
from bpfree.training import command as train

SUBCOMMANDS: dict[str, tuple[ModuleType, str]] = {
    "train": (train, "train a network with a learning rule and print its test accuracy"),
    "theory": (theory, "teacher-student simulations and ODEs of two-layer learning (ICLR 2024 §3)"),
    "reproduce": (
        reproduce,
        "run a paper table's suite (resumable) and report it beside the paper",
    ),
    "sweep": (sweep, "search a rule's settings with Optuna on a validation split"),
    "bench": (bench, "step time against BP, samples per second, and peak memory against depth"),
}


def parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    top = argparse.ArgumentParser(
        prog="bpfree", description="Train neural networks without backpropagation."
    )
    commands = top.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=module.__doc__.split("\n")[0])
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bpfree`` command; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    finished = False
    try:
        status = args.handler(args)
        finished = True
        return status
    except (
        ClusterError,
        ConfigError,
        DataError,
        MissingExtra,
        RunFolderError,
        SpecError,
        TrainingDiverged,
    ) as error:
        print(f"bpfree: error: {error}", file=sys.stderr)
        return 2
    finally:
        leave(finished)  # the process group torchrun's run joined, if any


def run() -> None:
    """The ``bpfree`` and ``python -m bpfree`` commands: ``main``, then exit with its status."""
    exit_process(main())


if __name__ == "__main__":
    run()
