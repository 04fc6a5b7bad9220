"""Rules by name: ``build("pepita", model, ...)``."""

from __future__ import annotations

from typing import Any

from torch import nn

from bpfree.core.registry import Registry
from bpfree.rules.base import Rule

RULES: Registry[type[Rule]] = Registry("rule")
register = RULES.register


def get_rule(name: str) -> type[Rule]:
    """The rule class registered as ``name``, or a ``ValueError`` listing the valid names."""
    return RULES.lookup(name)


def rule_options(name: str) -> dict[str, Any]:
    """The options of rule ``name`` with their defaults."""
    return get_rule(name).options()


def build(name: str, model: nn.Module, **options: Any) -> Rule:
    """Construct rule ``name`` on ``model``; an unknown option is an error that names it."""
    return get_rule(name)(model, **options)
