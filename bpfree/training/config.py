"""A training run's settings: a typed dataclass, read from YAML or flags, validated by name."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bpfree.core import checks
from bpfree.core.checks import Check
from bpfree.core.registry import reject_unknown
from bpfree.training import paper_defaults

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("step", "exponential")

# Keys that may change when a run is resumed; any other difference is a different run.
RESUMABLE_CHANGES = frozenset({"epochs", "device", "data_dir", "out", "threads", "compile"})


class ConfigError(ValueError):
    """A config key or value that is wrong; the message names it and says what is valid."""


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``None`` means "the paper's setting".

    ``lr``, ``decay_epochs`` and ``activation`` default to the PEPITA paper's Table 2 choice for
    the dataset and rule (see ``paper_defaults``); ``resolved()`` fills them in. ``hidden``,
    ``activation``, ``dropout`` and ``bias`` shape the ``mlp`` model; other models take
    ``model_options``. ``warmup_weight_decay`` replaces ``weight_decay`` in the first epoch (the
    PFA paper's schedule). ``optimizer`` is ``sgd`` (with ``momentum``, Nesterov's with
    ``nesterov``) or ``adam`` (torch's defaults for its betas); ``lr_schedule`` ``step``
    multiplies the rate by ``lr_decay`` at each of ``decay_epochs``, ``exponential`` after
    every epoch (GrAPE's ×0.95). ``diagnostics`` logs
    alignment and update cosines each epoch. ``threads`` is the number of CPU threads the run
    computes with (None: torch's default): a run's weights are bitwise reproducible for a fixed
    number, which may differ between two runs of the same settings (and between the two parts
    of a resumed run) without making them different runs. ``sync_batchnorm`` (CUDA only) makes
    BatchNorm layers normalise with the statistics of the whole global batch in a data-parallel
    run (``torch.nn.SyncBatchNorm``); by default each replica uses its own rows' statistics.
    ``val_fraction`` holds out that fraction of every class of the training set (seeded by
    ``seed``, ``bpfree.data.split``) and logs ``val_acc`` each epoch; ``test_every_epoch: false``
    reads the test set once, after the last epoch (a sweep's trials: the test set never takes
    part in selection). ``compile`` runs the rule's step through ``torch.compile``
    (``bpfree.rules.compiled``; CUDA graphs on a GPU); a rule that cannot be captured says why
    and runs eagerly. Like ``threads``, it changes the rounding, not the run: a run may resume
    with or without it. ``data_options`` cut a text dataset into training data
    (``bpfree.data.text.TextOptions``: ``tokens``, ``tokenizer``, ``vocab_size``,
    ``train_tokens``); a text trains a model of token inputs (``transformer-lm``) and keeps
    its published validation split. ``standardize`` shifts and scales every image channel by
    the mean and std of the training images' values in it (Frenkel et al.'s CIFAR-10
    preprocessing; by default images stay in [0, 1], as in the papers' Table 2).
    """

    rule: str = "pepita"
    dataset: str = "mnist"
    data_options: dict[str, Any] = field(default_factory=dict)
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
    nesterov: bool = False
    weight_decay: float = 0.0
    warmup_weight_decay: float | None = None
    lr_schedule: str = "step"
    lr_decay: float = 0.1
    decay_epochs: list[int] | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    sync_batchnorm: bool = False
    data_dir: str | None = None
    standardize: bool = False
    out: str | None = None
    rule_options: dict[str, Any] = field(default_factory=dict)
    diagnostics: bool = True
    val_fraction: float = 0.0
    test_every_epoch: bool = True
    compile: bool = False

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
        """Raise ``ConfigError`` naming the first value out of its range (of a resolved config:
        every paper default filled in)."""
        from bpfree.models import MODELS
        from bpfree.rules import RULES

        try:
            for registry, name in ((RULES, self.rule), (MODELS, self.model)):
                registry.lookup(name)
            for key, check in _value_checks().items():
                check(getattr(self, key), repr(key))
            self._validate_data()
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.nesterov and (self.optimizer != "sgd" or not self.momentum):
            raise ConfigError(
                f"'nesterov' is a kind of SGD momentum; it needs optimizer sgd and a momentum "
                f"above 0, got optimizer {self.optimizer} with momentum {self.momentum}"
            )
        if self.sync_batchnorm and not self.device.startswith("cuda"):
            raise ConfigError(
                "'sync_batchnorm' needs device cuda: torch's SyncBatchNorm runs on GPUs only; on "
                "the CPU each replica normalises with its own batch statistics"
            )

    def _validate_data(self) -> None:
        """The dataset exists, its options are valid, and model and rule can train on it."""
        from bpfree.data import DATASETS
        from bpfree.data.text import TEXT_DATASETS, TextOptions
        from bpfree.models import MODELS
        from bpfree.rules import RULES

        text = self.dataset in TEXT_DATASETS
        if not text:
            known = ", ".join([*DATASETS, *TEXT_DATASETS])
            if self.dataset not in DATASETS:
                raise ValueError(f"unknown dataset {self.dataset!r}; known: {known}")
            if self.data_options:
                raise ValueError(
                    f"'data_options' are options of text datasets; {self.dataset} takes none"
                )
            return
        TextOptions.from_dict(self.data_options)
        if self.standardize:
            raise ValueError(
                f"'standardize' scales image channels; {self.dataset} is text, so leave it off"
            )
        if self.val_fraction:
            raise ValueError(
                f"'val_fraction' holds out part of an image training set; {self.dataset} has "
                "its own validation split, so leave it at 0"
            )
        if MODELS.lookup(self.model).inputs != "tokens":
            token_models = [name for name in MODELS if MODELS[name].inputs == "tokens"]
            raise ValueError(
                f"model {self.model} reads images, {self.dataset} is text; use a model of "
                f"token inputs: {', '.join(token_models)}"
            )
        if not RULES.lookup(self.rule).trains_sequences:
            able = sorted(name for name in RULES if RULES[name].trains_sequences)
            raise ValueError(
                f"rule {self.rule} does not train a language model (one prediction per "
                f"token); rules that do: {', '.join(able)}"
            )

    def default_out(self) -> Path:
        """``runs/<dataset>-<rule>-<model>-seed<seed>``: the same run lands in the same folder.

        The MLP is named by its hidden widths, e.g. ``runs/mnist-pepita-1024-seed0``; a named
        setting of injection points follows the rule, e.g. ``shakespeare-dfa-micro-lm6x512``.
        """
        from bpfree.models import MODELS

        spec = MODELS.lookup(self.model)
        label = spec.describe({"hidden": self.hidden, **self.model_options})
        points = self.rule_options.get("points")
        rule = f"{self.rule}-{points}" if isinstance(points, str) else self.rule
        return Path("runs") / f"{self.dataset}-{rule}-{label}-seed{self.seed}"

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Keys on which this config is a different run from the ``saved`` one (keys that may
        change on resume, such as ``epochs``, aside). A key the saved config lacks (written
        before the key existed) counts as its default."""
        defaults = TrainConfig().to_dict()
        return sorted(
            key
            for key, value in self.to_dict().items()
            if key not in RESUMABLE_CHANGES and saved.get(key, defaults[key]) != value
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a mapping; an unknown key or a value of the wrong type names itself."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source} must be a mapping of keys to values, got {values!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        try:
            reject_unknown(sorted(values), fields, what="key", where=f"in {source}")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        return cls(
            **{key: _coerce(key, value, hints[key], source) for key, value in values.items()}
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a YAML file of config keys."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        if not path.is_file():
            raise ConfigError(f"config file {path} is not a file; give the path of a YAML file")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not text; give a YAML file") from None
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


def _device(value: Any) -> bool:
    """``cpu``, ``cuda`` or ``cuda:<index>``."""
    kind, _, index = value.partition(":")
    return (kind == "cpu" and not index) or (kind == "cuda" and (not index or index.isdigit()))


def _value_checks() -> dict[str, Check]:
    """The check of every config value but the names looked up in registries."""
    from bpfree.models import ACTIVATIONS

    epochs = Check("a list of epochs >= 1", lambda v: all(checks.is_int(e) and e >= 1 for e in v))
    return {
        "hidden": Check("a list of positive widths", lambda v: all(h >= 1 for h in v)),
        "activation": checks.one_of(*ACTIVATIONS),
        "dropout": checks.FRACTION,
        "epochs": checks.POSITIVE_INT,
        "batch_size": checks.POSITIVE_INT,
        "optimizer": checks.one_of(*OPTIMIZERS),
        "lr_schedule": checks.one_of(*LR_SCHEDULES),
        "lr": checks.POSITIVE,
        "momentum": checks.FRACTION,
        "nesterov": checks.BOOLEAN,
        "standardize": checks.BOOLEAN,
        "weight_decay": checks.NON_NEGATIVE,
        "warmup_weight_decay": checks.optional(checks.NON_NEGATIVE),
        "lr_decay": checks.UNIT_INTERVAL,
        "decay_epochs": epochs,
        "seed": checks.SEED,
        "threads": checks.optional(checks.POSITIVE_INT),
        "sync_batchnorm": checks.BOOLEAN,
        "val_fraction": checks.FRACTION,
        "test_every_epoch": checks.BOOLEAN,
        "device": Check("cpu, cuda or cuda:<index>", _device),
    }
