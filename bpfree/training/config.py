"""A training run's settings: a typed dataclass, read from YAML or flags, validated by name."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bpfree.training import paper_defaults

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("step", "exponential")


class ConfigError(ValueError):
    """A config key or value that is wrong; the message names it and says what is valid."""


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``None`` means "the paper's setting".

    ``lr``, ``decay_epochs`` and ``activation`` default to the PEPITA paper's Table 2 choice for
    the dataset and rule (see ``paper_defaults``); ``resolved()`` fills them in. ``hidden``,
    ``activation``, ``dropout`` and ``bias`` shape the ``mlp`` model; other models take
    ``model_options``. ``warmup_weight_decay`` replaces ``weight_decay`` in the first epoch (the
    PFA paper's schedule). ``optimizer`` is ``sgd`` (with ``momentum``) or ``adam`` (torch's
    defaults for its betas); ``lr_schedule`` ``step`` multiplies the rate by ``lr_decay`` at each
    of ``decay_epochs``, ``exponential`` after every epoch (GrAPE's ×0.95). ``diagnostics`` logs
    alignment and update cosines each epoch.
    """

    rule: str = "pepita"
    dataset: str = "mnist"
    model: str = "mlp"
    model_options: dict[str, Any] = field(default_factory=dict)
    hidden: list[int] = field(default_factory=lambda: [1024])
    activation: str | None = None
    dropout: float = 0.1
    bias: bool = False
    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_weight_decay: float | None = None
    lr_schedule: str = "step"
    lr_decay: float = 0.1
    decay_epochs: list[int] | None = None
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    out: str | None = None
    rule_options: dict[str, Any] = field(default_factory=dict)
    diagnostics: bool = True

    def resolved(self) -> TrainConfig:
        """A copy with every paper default filled in, validated."""
        config = dataclasses.replace(self, hidden=list(self.hidden))
        if config.lr is None:
            config.lr = paper_defaults.default_learning_rate(config.dataset, config.rule)
        if config.decay_epochs is None:
            config.decay_epochs = paper_defaults.default_decay_epochs(config.dataset)
        if config.activation is None:
            config.activation = paper_defaults.default_activation(config.rule)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first value out of its range."""
        from bpfree.data import DATASETS
        from bpfree.models import ACTIVATIONS, MODELS
        from bpfree.rules import RULES

        checks = [
            ("rule", self.rule in RULES, f"one of {', '.join(sorted(RULES))}"),
            ("dataset", self.dataset in DATASETS, f"one of {', '.join(sorted(DATASETS))}"),
            ("model", self.model in MODELS, f"one of {', '.join(sorted(MODELS))}"),
            ("hidden", all(h >= 1 for h in self.hidden), "a list of positive widths"),
            (
                "activation",
                self.activation is None or self.activation in ACTIVATIONS,
                f"one of {', '.join(sorted(ACTIVATIONS))}",
            ),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
            ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {', '.join(LR_SCHEDULES)}"),
            ("lr", self.lr is None or self.lr > 0.0, "positive"),
            ("momentum", 0.0 <= self.momentum < 1.0, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0.0, "non-negative"),
            (
                "warmup_weight_decay",
                self.warmup_weight_decay is None or self.warmup_weight_decay >= 0.0,
                "non-negative",
            ),
            ("lr_decay", 0.0 < self.lr_decay <= 1.0, "in (0, 1]"),
            (
                "decay_epochs",
                self.decay_epochs is None or all(e >= 1 for e in self.decay_epochs),
                "a list of epochs >= 1",
            ),
            ("device", self.device.split(":")[0] in ("cpu", "cuda", "mps"), "cpu, cuda or mps"),
        ]
        for key, ok, valid in checks:
            if not ok:
                raise ConfigError(f"bad value for {key!r}: {getattr(self, key)!r}; must be {valid}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a mapping; an unknown key or a value of the wrong type names itself."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source} must be a mapping of keys to values, got {values!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown key {', '.join(map(repr, unknown))} in {source}; "
                f"valid keys: {', '.join(fields)}"
            )
        return cls(
            **{key: _coerce(key, value, hints[key], source) for key, value in values.items()}
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a YAML file of config keys."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
        return cls.from_dict(values, source=str(path))


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Check ``value`` against the field's type hint (ints accepted for floats)."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key!r} in {source} must be a list, got {value!r}")
        return [_coerce(key, v, item, source) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key!r} in {source} must be a mapping, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    raise ConfigError(f"{key!r} in {source} must be {hint.__name__}, got {value!r}")
