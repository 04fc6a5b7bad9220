"""A sweep's search space: each parameter a config key or a rule or model option, with its
range or choices, optionally only for some rules.

    lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
    batch_size: {type: categorical, choices: [32, 64, 128]}
    rule_options.f_scale: {type: float, low: 0.01, high: 0.2, log: true, rules: [pepita]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bpfree.core.registry import reject_unknown

KINDS = ("float", "int", "categorical")
# Config keys that say where and how a trial runs, not what it is: never searched.
NOT_SEARCHABLE = frozenset(
    {
        "out",
        "data_dir",
        "device",
        "threads",
        "seed",
        "epochs",
        "rule_options",
        "model_options",
        "test_every_epoch",
        "val_fraction",
        "diagnostics",
    }
)
OPTION_GROUPS = ("rule_options", "model_options")


class SpecError(ValueError):
    """A sweep spec that cannot be run; the message names the key and what is valid."""


@dataclass(frozen=True)
class Parameter:
    """One searched setting. ``name`` is a config key or ``rule_options.NAME`` /
    ``model_options.NAME``; ``rules`` (empty: all) are the rules it is searched for."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    rules: tuple[str, ...] = ()

    def applies_to(self, rule: str) -> bool:
        return not self.rules or rule in self.rules

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna ``trial`` suggests for this parameter."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def check_value(self, value: Any, where: str) -> None:
        """A ``SpecError`` naming ``where`` unless ``value`` is one this parameter can take."""
        if self.kind == "categorical":
            if not any(
                value == c and isinstance(value, bool) == isinstance(c, bool) for c in self.choices
            ):
                raise SpecError(
                    f"{where} = {value!r} is not one of the choices {list(self.choices)}"
                )
            return
        number = not isinstance(value, bool) and isinstance(value, int | float)
        if not number or (self.kind == "int" and not float(value).is_integer()):
            wanted = "an integer" if self.kind == "int" else "a number"
            raise SpecError(f"{where} must be {wanted}, got {value!r}")
        if not self.low <= value <= self.high:
            raise SpecError(f"{where} = {value!r} is outside the range [{self.low}, {self.high}]")

    def extremes(self) -> list[Any]:
        """The values at the ends of the range (every choice of a categorical): the spec is
        checked at these before any trial starts."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


def parse_parameter(name: str, values: Any, config_keys: set[str]) -> Parameter:
    """Read one entry of ``space``; a ``SpecError`` naming it when it is not a valid range."""
    where = f"space.{name}"
    group, _, option = name.partition(".")
    if option and group not in OPTION_GROUPS:
        raise SpecError(f"{where}: a dotted name must start with rule_options. or model_options.")
    if not option and (name not in config_keys or name in NOT_SEARCHABLE):
        searchable = sorted(config_keys - NOT_SEARCHABLE)
        raise SpecError(
            f"{where}: not a searchable config key; search one of {', '.join(searchable)}, or "
            "rule_options.NAME / model_options.NAME"
        )
    if not isinstance(values, dict):
        raise SpecError(f"{where} must be a mapping such as {{type: float, low: 0.01, high: 1}}")
    try:
        reject_unknown(
            sorted(values),
            ("type", "low", "high", "log", "step", "choices", "rules"),
            what="key",
            where=f"in {where}",
        )
    except ValueError as error:
        raise SpecError(str(error)) from None
    kind = values.get("type")
    if kind not in KINDS:
        raise SpecError(f"{where}.type must be one of {', '.join(KINDS)}, got {kind!r}")
    rules = values.get("rules", [])
    if isinstance(rules, str):
        rules = [rules]
    parameter = Parameter(
        name=name,
        kind=kind,
        low=values.get("low"),
        high=values.get("high"),
        log=values.get("log", False),
        step=values.get("step"),
        choices=tuple(values.get("choices") or ()),
        rules=tuple(rules),
    )
    _check_range(parameter, values, where)
    return parameter


def _check_range(parameter: Parameter, values: dict[str, Any], where: str) -> None:
    if parameter.kind == "categorical":
        if "low" in values or "high" in values:
            raise SpecError(f"{where}: a categorical takes choices, not low and high")
        if not parameter.choices:
            raise SpecError(f"{where}: a categorical needs at least one of its choices")
        wrong = [c for c in parameter.choices if not isinstance(c, bool | int | float | str)]
        if wrong or len(set(map(repr, parameter.choices))) != len(parameter.choices):
            raise SpecError(f"{where}: choices must be distinct numbers, strings or booleans")
        return
    for bound in ("low", "high"):
        value = values.get(bound)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise SpecError(f"{where}.{bound} must be a finite number, got {value!r}")
    if parameter.kind == "int" and not all(
        float(v).is_integer() for v in (parameter.low, parameter.high)
    ):
        raise SpecError(f"{where}: an int range needs integer bounds")
    if parameter.low >= parameter.high:
        state = "empty" if parameter.low == parameter.high else "inverted"
        raise SpecError(
            f"{where}: the range [{parameter.low}, {parameter.high}] is {state}; low must be "
            "below high"
        )
    if not isinstance(parameter.log, bool):
        raise SpecError(f"{where}.log must be true or false, got {parameter.log!r}")
    if parameter.log and parameter.low <= 0:
        raise SpecError(
            f"{where}: a log range needs a positive low bound, got {parameter.low}; raise it or "
            "drop log"
        )
    if parameter.step is not None and (parameter.log or parameter.step <= 0):
        raise SpecError(f"{where}.step must be positive, and cannot go with log")
