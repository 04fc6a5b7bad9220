"""Rules by name: ``build("pepita", model, ...)``."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from bpfree.rules.base import Rule

RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator adding a rule to ``RULES`` under its ``name``."""
    if cls.name in RULES:
        raise ValueError(f"a rule named {cls.name!r} is already registered")
    RULES[cls.name] = cls
    return cls


def rule_options(name: str) -> dict[str, Any]:
    """The keyword options of rule ``name`` with their defaults."""
    signature = inspect.signature(get_rule(name).__init__)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def get_rule(name: str) -> type[Rule]:
    """The rule class registered as ``name``, or a ``ValueError`` listing the valid names."""
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(
            f"unknown rule {name!r}; valid rules: {', '.join(sorted(RULES))}"
        ) from None


def build(name: str, model: nn.Module, **options: Any) -> Rule:
    """Construct rule ``name`` on ``model``; an unknown option is an error that names it."""
    valid = rule_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"rule {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(sorted(valid)) or '(none)'}"
        )
    return get_rule(name)(model, **options)
