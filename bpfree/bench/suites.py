"""The named benchmark suites (rules × models and batches to time) and the memory setting.

Rules are named, not imported: a suite may name a rule bpfree does not have yet, and the tables
report it as "not in bpfree" instead of failing. An entry may carry rule options after the
name, ``"dfa points=micro"`` (values read as YAML), timed as a row of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from bpfree.core.registry import Registry
from bpfree.models import MODELS
from bpfree.rules import RULES


@dataclass(frozen=True)
class Setting:
    """A model and a batch size: ``model`` is a ``bpfree.models`` name; ``input_shape`` one
    input's shape, (d,) for an MLP (its first width), (C, H, W) for an image model, (L,) token
    ids for a language model; ``hidden`` the MLP's hidden widths (None for other models);
    ``batch`` the samples per step; ``num_classes`` the classes (a language model: its
    vocabulary); ``model_options`` the model's own, as (key, value) pairs."""

    model: str
    input_shape: tuple[int, ...]
    batch: int
    hidden: tuple[int, ...] | None = None
    num_classes: int = 10
    model_options: tuple[tuple[str, Any], ...] = ()

    @property
    def tokens(self) -> bool:
        """Whether the model reads token ids (and predicts every next token)."""
        return MODELS.lookup(self.model).inputs == "tokens"

    @property
    def model_input_shape(self) -> tuple[int, ...]:
        """The shape a model is built for: (L,) token ids, or (C, H, W), a flat input (d,)
        seen as (1, 1, d)."""
        shape = tuple(self.input_shape)
        return shape if len(shape) == 3 or self.tokens else (1, 1, *shape)

    @property
    def network(self) -> str:
        """``784-1024-10`` for an MLP, ``resnet20 3x32x32`` for an image model,
        ``transformer-lm d_model=128 ..., 64 tokens, vocabulary 2048`` for a language model."""
        if self.hidden is not None:
            return "-".join(map(str, (*self.input_shape, *(self.hidden or ()), self.num_classes)))
        if self.tokens:
            sizes = " ".join(f"{key}={value}" for key, value in self.model_options)
            return (
                f"{self.model} {sizes}, {self.input_shape[0]} tokens, vocabulary {self.num_classes}"
            )
        return f"{self.model} {'x'.join(map(str, self.input_shape))}"

    @property
    def label(self) -> str:
        """The network and the batch, e.g. ``784-1024-10, batch 64``."""
        return f"{self.network}, batch {self.batch}"


@dataclass(frozen=True)
class BenchSuite:
    """Rules timed against each other on each setting; BP is always timed, as the reference."""

    name: str
    rules: tuple[str, ...]
    settings: tuple[Setting, ...]


@dataclass(frozen=True)
class MemorySetting:
    """Peak memory against depth: MLPs of ``input_size``, ``depth`` hidden layers of ``width``
    for each depth in ``depths``, and 10 outputs, trained ``steps`` steps on batches of
    ``batch``."""

    rules: tuple[str, ...] = ("bp", "pepita", "pepita-time-local", "ff")
    depths: tuple[int, ...] = (2, 4, 8)
    width: int = 1024
    input_size: int = 3072
    batch: int = 1024
    steps: int = 3

    def setting(self, depth: int) -> Setting:
        """The MLP with ``depth`` hidden layers."""
        return Setting("mlp", (self.input_size,), self.batch, (self.width,) * depth)


def rule_entry(entry: str) -> tuple[str, dict[str, Any]]:
    """A suite's rule entry as (rule, options): ``"dfa points=micro"`` → ("dfa", {"points":
    "micro"}); a ``ValueError`` for an option not written KEY=VALUE."""
    rule, *pairs = entry.split()
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"rule entry {entry!r}: options are KEY=VALUE, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return rule, options


def _mlp(*widths: int, batch: int) -> Setting:
    return Setting("mlp", (widths[0],), batch, tuple(widths[1:]))


SUITES: Registry[BenchSuite] = Registry("suite")
for _suite in (
    BenchSuite(
        "foundation",
        ("bp", "fa", "dfa", "drtp", "pepita"),
        (
            _mlp(784, 1024, batch=64),
            _mlp(784, 1024, batch=256),
            _mlp(3072, 1024, 1024, batch=64),
        ),
    ),
    BenchSuite(
        "feedback",
        ("bp", "fa", "usf", "frsf", "brsf", "kp", "wm", "pfa", "pfa-o"),
        (
            _mlp(784, 1024, batch=64),
            _mlp(784, 1024, batch=256),
            Setting("resnet20", (3, 32, 32), 128),
        ),
    ),
    BenchSuite(
        "projection",
        ("bp", "dfa", "drtp", "grape", "fg-weight", "fg-activity"),
        (
            _mlp(3072, 1024, 1024, 1024, batch=256),
            Setting("lenet4", (3, 32, 32), 256),
        ),
    ),
    BenchSuite(
        "forward-only",
        (
            "bp",
            "pepita",
            "pepita-wm",
            "pepita-hebbian",
            "pepita-time-local",
            "afa",
            "ff",
            "ff-topdown",
        ),
        (
            _mlp(784, 1024, batch=64),
            _mlp(784, 1024, batch=256),
            _mlp(3072, 1024, 1024, batch=64),
        ),
    ),
    BenchSuite(  # GrAPE Table 3's rules and settings on the CPU-sized language model
        "language-model",
        ("bp", "dfa points=macro", "grape points=macro", "dfa points=micro", "grape points=micro"),
        (
            Setting(
                "transformer-lm",
                (64,),
                64,
                num_classes=2048,
                model_options=(("d_model", 128), ("n_heads", 4), ("n_layers", 2), ("d_ff", 512)),
            ),
        ),
    ),
    BenchSuite(
        "conv",  # the ICML 2022 conv column's network and batch (Table 2)
        ("bp", "fa", "pepita"),
        (Setting("pepita-conv", (3, 32, 32), 100), Setting("pepita-conv", (1, 28, 28), 100)),
    ),
):
    SUITES.add(_suite.name, _suite)

MEMORY = MemorySetting()


def get_suite(name: str) -> BenchSuite:
    """The suite called ``name``, or a ``ValueError`` naming it and the valid names."""
    return SUITES.lookup(name)


def partition_rules(names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Rule entries ``names`` split into (registered in bpfree, not in bpfree), each in order,
    BP first."""
    ordered = tuple(dict.fromkeys(("bp", *names)))
    return (
        tuple(name for name in ordered if rule_entry(name)[0] in RULES),
        tuple(name for name in ordered if rule_entry(name)[0] not in RULES),
    )
