"""``bpfree train``: train one network with a learning rule and print its test accuracy.

bpfree train --rule pepita --dataset mnist             # the PEPITA paper's MNIST run
bpfree train --config run.yaml --lr 0.05               # YAML keys, flags override them
bpfree train --rule dfa --model lenet --option seed=3  # rule options as KEY=VALUE (YAML values)
bpfree train --rule grape --dataset shakespeare --model transformer-lm --option points=micro
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml
from tqdm.auto import tqdm

from bpfree.core.signals import sigterm_as_interrupt
from bpfree.data import DATASETS
from bpfree.data.text import TEXT_DATASETS
from bpfree.models import MODELS
from bpfree.parallel.replicas import launched_rank
from bpfree.rules import RULES
from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.run_folder import RunFolder
from bpfree.training.trainer import train

# Flags of `bpfree train` that map one to one onto TrainConfig keys.
TRAIN_FLAGS: dict[str, dict[str, Any]] = {
    "rule": {"help": f"learning rule: {', '.join(sorted(RULES))}"},
    "dataset": {"help": f"dataset: {', '.join([*DATASETS, *TEXT_DATASETS])}"},
    "model": {"help": f"network: {', '.join(MODELS)} (default mlp)"},
    "hidden": {"type": int, "nargs": "*", "help": "hidden layer widths (default: 1024)"},
    "activation": {"help": "hidden non-linearity (default: the paper's choice for the rule)"},
    "dropout": {"type": float, "help": "drop probability after each hidden layer (0.1)"},
    "epochs": {"type": int, "help": "number of epochs (100)"},
    "batch_size": {"type": int, "help": "mini-batch size (64)"},
    "optimizer": {"help": "sgd (with momentum, the default) or adam"},
    "lr": {"type": float, "help": "learning rate (default: ICML 2022 Table 2 for rule, dataset)"},
    "momentum": {"type": float, "help": "SGD momentum (0.9)"},
    "nesterov": {"action": "store_const", "const": True, "help": "Nesterov's SGD momentum"},
    "weight_decay": {"type": float, "help": "SGD weight decay (0)"},
    "warmup_weight_decay": {"type": float, "help": "weight decay of the first epoch only"},
    "lr_schedule": {
        "help": "step (x lr-decay at decay epochs, default) or exponential (every epoch)"
    },
    "lr_decay": {"type": float, "help": "factor applied to the learning rate at each decay (0.1)"},
    "decay_epochs": {"type": int, "nargs": "*", "help": "epochs of the decays (Table 2's)"},
    "seed": {"type": int, "help": "seed of weights, feedback, dropout and batch order (0)"},
    "device": {"help": "cpu, cuda or cuda:<index>"},
    "threads": {"type": int, "help": "CPU threads to compute with (default: torch's)"},
    "sync_batchnorm": {
        "action": "store_const",
        "const": True,
        "help": "data parallel on CUDA: BatchNorm statistics over the global batch",
    },
    "compile": {
        "action": "store_const",
        "const": True,
        "help": "run the rule's step through torch.compile (CUDA graphs on a GPU)",
    },
    "val_fraction": {
        "type": float,
        "help": "hold out this fraction of every class of the training set; log val_acc (0)",
    },
    "standardize": {
        "action": "store_const",
        "const": True,
        "help": "shift and scale each image channel by the training images' mean and std",
    },
    "data_dir": {"help": "folder holding the datasets (else $BPFREE_DATA, else ~/.cache/bpfree)"},
    "out": {"help": "run folder (default: runs/<dataset>-<rule>-<hidden>-seed<seed>)"},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bpfree train`` to ``parser``."""
    for key, spec in TRAIN_FLAGS.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, default=None, **spec)
    parser.add_argument("--config", help="YAML file of config keys (flags override it)")
    parser.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option, e.g. --model-option stem=imagenet (repeatable)",
    )
    parser.add_argument(
        "--data-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a text dataset's option: tokens, tokenizer, vocab_size, train_tokens (repeatable)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a rule option, e.g. --option sign=-1 (repeatable)",
    )
    parser.add_argument(
        "--no-diagnostics", action="store_true", help="skip the per-epoch alignment metrics"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The run's config: ``--config``'s keys, then the flags over them."""
    values = TrainConfig.from_yaml(args.config).to_dict() if args.config else {}
    values.update(
        {key: getattr(args, key) for key in TRAIN_FLAGS if getattr(args, key) is not None}
    )
    values["rule_options"] = key_values(values.get("rule_options"), args.option, "--option")
    values["model_options"] = key_values(
        values.get("model_options"), args.model_option, "--model-option"
    )
    values["data_options"] = key_values(
        values.get("data_options"), args.data_option, "--data-option"
    )
    if args.no_diagnostics:
        values["diagnostics"] = False
    return TrainConfig.from_dict(values, source="the command line")


def key_values(base: dict[str, Any] | None, items: list[str], flag: str) -> dict[str, Any]:
    """``base`` updated with KEY=VALUE items, each value read as YAML (numbers, lists, ...)."""
    options = dict(base or {})
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE, got {item!r}")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            first = str(error).splitlines()[0]
            raise ConfigError(f"{flag} {item!r}: the value is not valid YAML ({first})") from None
    return options


def run(args: argparse.Namespace) -> int:
    """Train as the flags say and print each epoch and the final test accuracy."""
    config = config_from(args).resolved()
    folder = config.out or config.default_out()
    main = launched_rank() == 0  # under torchrun, rank 0 alone speaks
    text = config.dataset in TEXT_DATASETS
    settings = {k: v for k, v in config.to_dict().items() if k not in ("out", "data_dir")}
    if main:
        tqdm.write(f"run folder: {folder}\nsettings: {settings}")

    def score(split: str, row: dict[str, Any]) -> str:
        if text:
            return f"  {split} ppl {row[f'{split}_ppl']:.1f}"
        return f"  {split} acc {row[f'{split}_acc']:6.2f}%"

    def report(row: dict[str, Any]) -> None:
        metric = "ppl" if text else "acc"
        scores = "".join(
            score(split, row) for split in ("train", "val", "test") if f"{split}_{metric}" in row
        )
        tqdm.write(
            f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f}{scores}  "
            f"{row['seconds']:5.1f}s  lr {row['lr']:.3g}"
        )

    try:
        with sigterm_as_interrupt():
            result = train(config, progress=not args.no_progress, on_epoch=report)
    except KeyboardInterrupt:
        saved = RunFolder(folder)
        if saved.checkpoint.exists() or saved.previous_checkpoint.exists():
            message = f"every finished epoch is kept in {folder}; run the same command to resume"
        else:
            message = "no epoch had finished, so nothing was saved"
        print(f"interrupted: {message}", file=sys.stderr)
        return 130
    if main and text:
        print(f"test perplexity: {result.metrics[-1]['test_ppl']:.2f}")
    elif main:
        print(f"test accuracy: {result.test_acc:.2f}%")
    return 0
