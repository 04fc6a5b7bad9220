"""``bpfree theory``: teacher-student simulations and ODEs of two-layer learning (ICLR 2024 §3).

bpfree theory --rule pepita afa --D 500 --lr 0.05      # ICLR 2024 Fig. 2b-c
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm.auto import tqdm

from bpfree.theory.files import save
from bpfree.theory.model import RULES
from bpfree.theory.run import run as run_theory

# Flags that map one to one onto `bpfree.theory.run` arguments; the defaults are the ICLR 2024
# Fig. 2b setting.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bpfree theory`` to ``parser``."""
    parser.add_argument(
        "--rule", nargs="+", default=["pepita", "afa"], choices=RULES, help="rules to run"
    )
    for key, spec in THEORY_FLAGS.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, **spec)
    parser.add_argument(
        "--out", default="runs/theory", help="folder of the plots, curves.csv and curves.json"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Simulate and integrate, write the files, print the summary; the exit status."""
    options = {key: getattr(args, key) for key in THEORY_FLAGS}
    steps = len(set(args.rule)) * max(0, round(args.t_max * args.D))
    with tqdm(total=steps, unit="step", disable=args.no_progress) as bar:
        try:
            result = run_theory(args.rule, **options, progress=bar.update)
        except ValueError as error:
            print(f"bpfree theory: error: {error}", file=sys.stderr)
            return 2
    for path in save(result, args.out):
        print(f"wrote {path}")
    for label, row in result.summary().items():
        print(f"{label:12s} " + "  ".join(f"{key} {value:.4g}" for key, value in row.items()))
    return 0
