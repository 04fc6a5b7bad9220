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

from bpfree import bench, theory
from bpfree.data import DATASETS, DataError
from bpfree.models import MODELS
from bpfree.reproduce import available_suites, load_suite, reproduce
from bpfree.rules import RULES
from bpfree.training import ConfigError, TrainConfig, TrainingDiverged, train
from bpfree.training.trainer import default_run_folder

# Flags of `bpfree train` that map one to one onto TrainConfig keys.
TRAIN_FLAGS: dict[str, dict[str, Any]] = {
    "rule": {"help": f"learning rule: {', '.join(sorted(RULES))}"},
    "dataset": {"help": f"dataset: {', '.join(DATASETS)}"},
    "model": {"help": f"network: {', '.join(MODELS)} (default mlp)"},
    "hidden": {"type": int, "nargs": "*", "help": "hidden layer widths (default: 1024)"},
    "activation": {"help": "hidden non-linearity (default: the paper's choice for the rule)"},
    "dropout": {"type": float, "help": "drop probability after each hidden layer (0.1)"},
    "epochs": {"type": int, "help": "number of epochs (100)"},
    "batch_size": {"type": int, "help": "mini-batch size (64)"},
    "optimizer": {"help": "sgd (with momentum, the default) or adam"},
    "lr": {"type": float, "help": "learning rate (default: ICML 2022 Table 2 for rule, dataset)"},
    "momentum": {"type": float, "help": "SGD momentum (0.9)"},
    "weight_decay": {"type": float, "help": "SGD weight decay (0)"},
    "warmup_weight_decay": {"type": float, "help": "weight decay of the first epoch only"},
    "lr_schedule": {
        "help": "step (x lr-decay at decay epochs, default) or exponential (every epoch)"
    },
    "lr_decay": {"type": float, "help": "factor applied to the learning rate at each decay (0.1)"},
    "decay_epochs": {"type": int, "nargs": "*", "help": "epochs of the decays (Table 2's)"},
    "seed": {"type": int, "help": "seed of weights, feedback, dropout and batch order (0)"},
    "device": {"help": "cpu or cuda"},
    "data_dir": {"help": "folder holding the datasets (else $BPFREE_DATA, else ~/.cache/bpfree)"},
    "out": {"help": "run folder (default: runs/<dataset>-<rule>-<hidden>-seed<seed>)"},
}

# Flags of `bpfree theory` that map one to one onto `bpfree.theory.run` arguments; the defaults
# are the ICLR 2024 Fig. 2b setting.
THEORY_FLAGS: dict[str, dict[str, Any]] = {
    "D": {"type": int, "default": 500, "help": "input dimension (500)"},
    "K": {"type": int, "default": 2, "help": "student hidden units (2)"},
    "M": {"type": int, "default": 2, "help": "teacher hidden units (2)"},
    "lr": {"type": float, "default": 0.05, "help": "η: η/√D first layer, η/D second (0.05)"},
    "kappa": {"type": float, "default": 1.0, "help": "F has entries of std κ/√D (1)"},
    "seed": {"type": int, "default": 0, "help": "seed of the networks and the data (0)"},
    "t_max": {"type": float, "default": 2000.0, "help": "last time t = steps / D (2000)"},
    "streams": {"type": int, "default": 1, "help": "data streams averaged per rule (1)"},
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
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option, e.g. --model-option stem=imagenet (repeatable)",
    )
    train_parser.add_argument(
        "--no-diagnostics", action="store_true", help="skip the per-epoch alignment metrics"
    )
    train_parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a rule option, e.g. --option sign=-1 (repeatable)",
    )
    train_parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train_parser.set_defaults(handler=_run_train)
    theory_parser = commands.add_parser(
        "theory", help="teacher-student simulations and ODEs of two-layer learning (ICLR 2024 §3)"
    )
    theory_parser.add_argument(
        "--rule", nargs="+", default=["pepita", "afa"], choices=theory.RULES, help="rules to run"
    )
    for key, spec in THEORY_FLAGS.items():
        theory_parser.add_argument("--" + key.replace("_", "-"), dest=key, **spec)
    theory_parser.add_argument(
        "--out", default="runs/theory", help="folder of the plots, curves.csv and curves.json"
    )
    theory_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    theory_parser.set_defaults(handler=_run_theory)
    reproduce_parser = commands.add_parser(
        "reproduce", help="run a paper table's suite (resumable) and report it beside the paper"
    )
    reproduce_parser.add_argument(
        "suite", nargs="?", help=f"a suite name ({', '.join(available_suites())}) or YAML file"
    )
    reproduce_parser.add_argument(
        "--out", default="runs/reproduce", help="folder of the runs and reports (runs/reproduce)"
    )
    reproduce_parser.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once, as processes (1)"
    )
    reproduce_parser.add_argument(
        "--budget", type=int, help="stop every run after this many epochs (a quick look)"
    )
    reproduce_parser.add_argument(
        "--rows",
        nargs="+",
        metavar="PATTERN",
        help="train only these rows (names or shell patterns such as 'cifar10-*'); "
        "the report still covers the whole suite",
    )
    reproduce_parser.add_argument(
        "--seeds", type=int, nargs="+", help="train only these of the suite's seeds"
    )
    reproduce_parser.add_argument("--data-dir", help="folder holding the datasets")
    reproduce_parser.add_argument("--device", default="cpu", help="cpu or cuda")
    reproduce_parser.add_argument(
        "--report-only", action="store_true", help="train nothing; report the finished runs"
    )
    reproduce_parser.add_argument("--list", action="store_true", help="list the shipped suites")
    reproduce_parser.set_defaults(handler=_run_reproduce)
    bench_parser = commands.add_parser(
        "bench", help="step time against BP, samples per second, and peak memory against depth"
    )
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(handler=bench.run)
    return parser


def _train_config(args: argparse.Namespace) -> TrainConfig:
    values = TrainConfig.from_yaml(args.config).to_dict() if args.config else {}
    values.update(
        {key: getattr(args, key) for key in TRAIN_FLAGS if getattr(args, key) is not None}
    )
    values["rule_options"] = _key_values(values.get("rule_options"), args.option, "--option")
    values["model_options"] = _key_values(
        values.get("model_options"), args.model_option, "--model-option"
    )
    if args.no_diagnostics:
        values["diagnostics"] = False
    return TrainConfig.from_dict(values, source="the command line")


def _key_values(base: dict[str, Any] | None, items: list[str], flag: str) -> dict[str, Any]:
    """``base`` updated with KEY=VALUE items, each value read as YAML (numbers, lists, ...)."""
    options = dict(base or {})
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value)
    return options


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


def _run_theory(args: argparse.Namespace) -> int:
    options = {key: getattr(args, key) for key in THEORY_FLAGS}
    steps = len(set(args.rule)) * max(0, round(args.t_max * args.D))
    with tqdm(total=steps, unit="step", disable=args.no_progress) as bar:
        try:
            result = theory.run(args.rule, **options, progress=bar.update)
        except ValueError as error:
            print(f"bpfree theory: error: {error}", file=sys.stderr)
            return 2
    for path in theory.save(result, args.out):
        print(f"wrote {path}")
    for label, row in result.summary().items():
        print(f"{label:12s} " + "  ".join(f"{key} {value:.4g}" for key, value in row.items()))
    return 0


def _run_reproduce(args: argparse.Namespace) -> int:
    if args.list or args.suite is None:
        for name in available_suites():
            suite = load_suite(name)
            print(f"{name:24s} {suite.title} ({len(suite.rows)} rows x {len(suite.seeds)} seeds)")
        return 0 if args.list else 2
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    suite = load_suite(args.suite)
    try:
        _results, written = reproduce(
            suite,
            args.out,
            workers=args.jobs,
            budget=args.budget,
            data_dir=args.data_dir,
            device=args.device,
            train=not args.report_only,
            rows=args.rows,
            seeds=args.seeds,
            log=tqdm.write,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: every finished epoch is kept under {args.out}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    print((written[0]).read_text())
    for path in written:
        print(f"wrote {path}")
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
