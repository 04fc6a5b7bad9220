"""The ``bpfree`` command: one subcommand per job, each a ``handler(args) -> exit status``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from tqdm.auto import tqdm

from bpfree.data import DataError
from bpfree.training import ConfigError, TrainConfig, TrainingDiverged, train
from bpfree.training.trainer import default_run_folder

# Flags of `bpfree train` that map one to one onto TrainConfig keys.
TRAIN_FLAGS: dict[str, dict[str, Any]] = {
    "rule": {"help": "learning rule: bp, fa, dfa, drtp, pepita"},
    "dataset": {"help": "mnist, fashion-mnist, cifar10 or cifar100"},
    "hidden": {"type": int, "nargs": "*", "help": "hidden layer widths (default: 1024)"},
    "activation": {"help": "hidden non-linearity (default: the paper's choice for the rule)"},
    "dropout": {"type": float, "help": "drop probability after each hidden layer (0.1)"},
    "epochs": {"type": int, "help": "number of epochs (100)"},
    "batch_size": {"type": int, "help": "mini-batch size (64)"},
    "lr": {"type": float, "help": "learning rate (default: ICML 2022 Table 2 for rule, dataset)"},
    "momentum": {"type": float, "help": "SGD momentum (0.9)"},
    "weight_decay": {"type": float, "help": "SGD weight decay (0)"},
    "lr_decay": {"type": float, "help": "factor applied to the learning rate at each decay (0.1)"},
    "decay_epochs": {"type": int, "nargs": "*", "help": "epochs of the decays (Table 2's)"},
    "seed": {"type": int, "help": "seed of weights, feedback, dropout and batch order (0)"},
    "device": {"help": "cpu or cuda"},
    "data_dir": {"help": "folder holding the datasets (else $BPFREE_DATA, else ~/.cache/bpfree)"},
    "out": {"help": "run folder (default: runs/<dataset>-<rule>-<hidden>-seed<seed>)"},
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpfree", description="Train neural networks without backpropagation."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser(
        "train", help="train a network with a learning rule and print its test accuracy"
    )
    for key, spec in TRAIN_FLAGS.items():
        train_parser.add_argument("--" + key.replace("_", "-"), dest=key, default=None, **spec)
    train_parser.add_argument("--config", help="YAML file of config keys (flags override it)")
    train_parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a rule option, e.g. --option sign=-1 (repeatable)",
    )
    train_parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train_parser.set_defaults(handler=_run_train)
    return parser


def _train_config(args: argparse.Namespace) -> TrainConfig:
    values = TrainConfig.from_yaml(args.config).to_dict() if args.config else {}
    values.update(
        {key: getattr(args, key) for key in TRAIN_FLAGS if getattr(args, key) is not None}
    )
    options = dict(values.get("rule_options") or {})
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option takes KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value)
    values["rule_options"] = options
    return TrainConfig.from_dict(values, source="the command line")


def _run_train(args: argparse.Namespace) -> int:
    config = _train_config(args).resolved()
    folder = config.out or default_run_folder(config)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "data_dir")}
    tqdm.write(f"run folder: {folder}\nsettings: {settings}")

    def report(row: dict[str, Any]) -> None:
        tqdm.write(
            f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f}  "
            f"train acc {row['train_acc']:6.2f}%  test acc {row['test_acc']:6.2f}%  "
            f"{row['seconds']:5.1f}s  lr {row['lr']:.3g}"
        )

    try:
        result = train(config, progress=not args.no_progress, on_epoch=report)
    except KeyboardInterrupt:
        print(
            f"interrupted: the checkpoint of the last finished epoch is kept in {folder}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    print(f"test accuracy: {result.test_acc:.2f}%")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bpfree`` command; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, DataError, TrainingDiverged) as error:
        print(f"bpfree: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
