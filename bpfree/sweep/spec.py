"""A sweep's spec, read from YAML: the base run, the search space, the objective, the budget,
the pruner, and the seeds that re-run the best settings.

    name: cifar10-fc-pepita         # default: the file's name
    base: {rule: pepita, dataset: cifar10, epochs: 30, val_fraction: 0.1}   # any train key
    space: {lr: {type: float, low: 1.0e-3, high: 0.1, log: true}}          # see space.py
    objective: best_val_acc         # or last_val_acc
    trials: 40
    timeout_hours: 10               # start no trial after this long (optional)
    pruner: {type: median, warmup_epochs: 5, startup_trials: 5}
            # or {type: successive-halving, min_epochs: 2, reduction_factor: 3}, or none
    sampler_seed: 0                 # Optuna's TPE sampler
    enqueue: [{lr: 0.01, momentum: 0.9}]       # settings tried first (e.g. the paper's), in
                                               # order; a parameter left out is sampled
    final: {seeds: [0, 1, 2], epochs: 100}    # the best settings, trained on the whole
                                               # training set (val_fraction 0 unless given)
           # decay_epochs: [60, 90] in final: the final runs' decays, where the trials take a
           # schedule shortened to their own epochs in base (e.g. decay_epochs: [18, 27])
    references: {"PEPITA (ICML 2022 Table 1)": "52.57 ± 0.36"}   # printed beside the result
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bpfree.core.registry import reject_unknown
from bpfree.data import DATASETS
from bpfree.data.text import TEXT_DATASETS
from bpfree.sweep.space import OPTION_GROUPS, Parameter, SpecError, parse_parameter
from bpfree.training import ConfigError, TrainConfig, TrainingState

SPEC_KEYS = (
    "name",
    "base",
    "space",
    "objective",
    "trials",
    "timeout_hours",
    "pruner",
    "sampler_seed",
    "enqueue",
    "final",
    "references",
)
OBJECTIVES = ("best_val_acc", "last_val_acc")
PRUNERS = ("median", "successive-halving", "none")


@dataclass(frozen=True)
class Pruning:
    """When a trial stops early, judged on its validation accuracy after each epoch: below the
    median of earlier trials at the same epoch (after ``warmup_epochs``, once
    ``startup_trials`` have finished), or by successive halving from ``min_epochs`` on."""

    kind: str = "median"
    warmup_epochs: int = 3
    startup_trials: int = 5
    min_epochs: int = 1
    reduction_factor: int = 3

    def build(self, optuna: Any) -> Any:
        if self.kind == "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=self.startup_trials, n_warmup_steps=self.warmup_epochs
            )
        if self.kind == "successive-halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.min_epochs, reduction_factor=self.reduction_factor
            )
        return optuna.pruners.NopPruner()


@dataclass(frozen=True)
class Final:
    """The best settings re-trained over ``seeds`` for ``epochs`` with the learning rate decayed
    at ``decay_epochs`` (None: the base's)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int | None = None
    val_fraction: float = 0.0
    decay_epochs: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: dict[str, Any]
    space: tuple[Parameter, ...]
    objective: str = "best_val_acc"
    trials: int = 20
    timeout_hours: float | None = None
    pruning: Pruning = field(default_factory=Pruning)
    sampler_seed: int = 0
    enqueue: tuple[dict[str, Any], ...] = ()
    final: Final = field(default_factory=Final)
    references: dict[str, str] = field(default_factory=dict)
    source: str = ""  # the spec's YAML text, copied into the sweep folder

    @property
    def fingerprint(self) -> str:
        """A digest of what defines the study's trials (base, space, objective, pruner): a
        study made from another spec is never continued."""
        what = [
            self.base,
            [dataclasses.asdict(p) for p in self.space],
            self.objective,
            dataclasses.asdict(self.pruning),
        ]
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def final_epochs(self) -> int:
        """The epochs of the final runs: ``final.epochs``, else the base run's."""
        return self.final.epochs or self.base.get("epochs", TrainConfig.epochs)

    def final_config(self, params: dict[str, Any], seed: int, **overrides: Any) -> TrainConfig:
        """The run config of a final seed of settings ``params``: ``final``'s epochs, validation
        fraction and decay epochs over the trials' (then ``overrides``)."""
        schedule = {}
        if self.final.decay_epochs is not None:
            schedule["decay_epochs"] = list(self.final.decay_epochs)
        return self.config_for(
            params,
            seed=seed,
            val_fraction=self.final.val_fraction,
            epochs=self.final_epochs,
            **schedule,
            **overrides,
        )

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The trial's settings: the rule first (when searched), then what applies to it."""
        params = {}
        rule = self.base.get("rule", TrainConfig.rule)
        for parameter in sorted(self.space, key=lambda p: p.name != "rule"):
            if parameter.applies_to(rule):
                params[parameter.name] = parameter.suggest(trial)
                rule = params.get("rule", rule)
        return params

    def config_for(self, params: dict[str, Any], **overrides: Any) -> TrainConfig:
        """The run config of settings ``params`` over the base (then ``overrides``)."""
        values = {**self.base, **{k: dict(self.base.get(k, {})) for k in OPTION_GROUPS}}
        for name, value in params.items():
            group, _, option = name.partition(".")
            if option:
                values[group][option] = value
            else:
                values[name] = value
        values.update(overrides)
        return TrainConfig.from_dict(values, source=f"sweep {self.name}")

    def objective_value(self, metrics: list[dict[str, Any]]) -> float:
        accuracies = [row["val_acc"] for row in metrics]
        return max(accuracies) if self.objective == "best_val_acc" else accuracies[-1]


SHIPPED = Path(__file__).parent / "specs"


def shipped_specs() -> list[str]:
    """The names of the specs that come with bpfree (``bpfree sweep NAME``)."""
    return sorted(path.stem for path in SHIPPED.glob("*.yaml"))


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a spec (a YAML file, or the name of a shipped one): every key, range and
    setting, at both ends of every range, before any trial starts; a ``SpecError`` names what
    is wrong."""
    path = Path(path)
    if not path.is_file() and (SHIPPED / f"{path}.yaml").is_file():
        path = SHIPPED / f"{path}.yaml"
    if not path.is_file():
        raise SpecError(
            f"sweep spec {path} does not exist or is not a file; give a YAML file or one of "
            f"the shipped specs: {', '.join(shipped_specs())}"
        )
    try:
        text = path.read_text()
        values = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise SpecError(f"sweep spec {path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise SpecError(f"sweep spec {path} must be a mapping of keys ({', '.join(SPEC_KEYS)})")
    spec = dataclasses.replace(parse_spec(values, default_name=path.stem), source=text)
    check_settings(spec)
    return spec


def parse_spec(values: dict[str, Any], default_name: str) -> SweepSpec:
    try:
        reject_unknown(sorted(values), SPEC_KEYS, what="key", where="in the sweep spec")
    except ValueError as error:
        raise SpecError(str(error)) from None
    base = values.get("base") or {}
    if not isinstance(base, dict):
        raise SpecError("base must be a mapping of train config keys")
    space = values.get("space") or {}
    if not isinstance(space, dict) or not space:
        raise SpecError("space must name at least one parameter to search")
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    spec = SweepSpec(
        name=str(values.get("name", default_name)),
        base=base,
        space=tuple(parse_parameter(name, v, keys) for name, v in space.items()),
        objective=_one_of(values.get("objective", "best_val_acc"), OBJECTIVES, "objective"),
        trials=_positive_int(values.get("trials", 20), "trials"),
        timeout_hours=_optional_positive(values.get("timeout_hours"), "timeout_hours"),
        pruning=_pruning(values.get("pruner", {"type": "median"})),
        sampler_seed=_positive_int(values.get("sampler_seed", 0), "sampler_seed", minimum=0),
        final=_final(values.get("final") or {}),
        references={str(k): str(v) for k, v in (values.get("references") or {}).items()},
    )
    spec = dataclasses.replace(spec, enqueue=_enqueue(values.get("enqueue") or [], spec.space))
    if spec.base.get("dataset") in TEXT_DATASETS:
        raise SpecError(
            f"base.dataset {spec.base['dataset']!r} is a text: a sweep selects on the validation "
            "accuracy of a split held out of an image training set, and does not yet minimise a "
            "text's validation perplexity; sweep an image dataset, or run the text's settings "
            "as a suite (bpfree reproduce)"
        )
    if not spec.base.get("val_fraction"):
        raise SpecError(
            "base.val_fraction must hold out a validation split (e.g. 0.1): a sweep selects on "
            "validation accuracy, never on the test set"
        )
    return spec


def check_settings(spec: SweepSpec) -> None:
    """Build the run (model, rule, optimizer) at both ends of every range and with every
    choice, for every rule the parameter applies to: a value out of range fails here."""
    rules = [spec.base.get("rule", TrainConfig.rule)]
    rule_choices = [p.choices for p in spec.space if p.name == "rule"]
    if rule_choices:
        rules = list(rule_choices[0])
    for parameter in spec.space:
        for rule in rules:
            if not parameter.applies_to(rule):
                continue
            for value in parameter.extremes():
                params = {"rule": rule, parameter.name: value}
                try:
                    config = spec.config_for(params).resolved()
                    dataset = DATASETS.lookup(config.dataset)
                    TrainingState.from_config(
                        config,
                        input_shape=dataset.input_shape,
                        num_classes=dataset.num_classes,
                        device="cpu",
                    )
                except (ConfigError, ValueError) as error:
                    raise SpecError(
                        f"space.{parameter.name} = {value!r} (rule {rule}): {error}"
                    ) from None
    try:
        spec.final_config({}, seed=spec.final.seeds[0] if spec.final.seeds else 0).resolved()
    except (ConfigError, ValueError) as error:
        raise SpecError(f"final: {error}") from None


def _one_of(value: Any, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise SpecError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _positive_int(value: Any, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _optional_positive(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SpecError(f"{key} must be a positive number of hours, got {value!r}")
    return float(value)


def _pruning(values: Any) -> Pruning:
    if isinstance(values, str):
        values = {"type": values}
    if not isinstance(values, dict):
        raise SpecError(f"pruner must be a mapping such as {{type: median}}, got {values!r}")
    fields = [f.name for f in dataclasses.fields(Pruning) if f.name != "kind"]
    try:
        reject_unknown(sorted(values), ["type", *fields], what="key", where="in pruner")
    except ValueError as error:
        raise SpecError(str(error)) from None
    kind = _one_of(values.get("type", "median"), PRUNERS, "pruner.type")
    numbers = {k: _positive_int(values[k], f"pruner.{k}", minimum=0) for k in fields if k in values}
    return Pruning(kind=kind, **numbers)


def _enqueue(entries: Any, space: tuple[Parameter, ...]) -> tuple[dict[str, Any], ...]:
    """The settings to try first: each a mapping of searched parameters to values they can take."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e for e in entries):
        raise SpecError(
            "enqueue must be a list of settings such as [{lr: 0.01, momentum: 0.9}], got "
            f"{entries!r}"
        )
    parameters = {p.name: p for p in space}
    for i, entry in enumerate(entries):
        for name, value in entry.items():
            if name not in parameters:
                raise SpecError(
                    f"enqueue[{i}].{name} is not a searched parameter; name one of "
                    f"{', '.join(parameters)}"
                )
            parameters[name].check_value(value, f"enqueue[{i}].{name}")
    return tuple(dict(entry) for entry in entries)


def _final(values: Any) -> Final:
    if not isinstance(values, dict):
        raise SpecError(f"final must be a mapping such as {{seeds: [0, 1, 2]}}, got {values!r}")
    try:
        reject_unknown(
            sorted(values),
            ("seeds", "epochs", "val_fraction", "decay_epochs"),
            what="key",
            where="in final",
        )
    except ValueError as error:
        raise SpecError(str(error)) from None
    seeds = values.get("seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise SpecError(f"final.seeds must be a list of seeds (integers >= 0), got {seeds!r}")
    epochs = values.get("epochs")
    if epochs is not None:
        _positive_int(epochs, "final.epochs")
    fraction = values.get("val_fraction", 0.0)
    if not isinstance(fraction, int | float) or not 0 <= fraction < 1:
        raise SpecError(f"final.val_fraction must be in [0, 1), got {fraction!r}")
    decay_epochs = values.get("decay_epochs")
    if decay_epochs is not None:
        if not isinstance(decay_epochs, list) or not all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in decay_epochs
        ):
            raise SpecError(
                f"final.decay_epochs must be a list of epochs (integers >= 1), got {decay_epochs!r}"
            )
        decay_epochs = tuple(decay_epochs)
    return Final(
        seeds=tuple(seeds),
        epochs=epochs,
        val_fraction=float(fraction),
        decay_epochs=decay_epochs,
    )
