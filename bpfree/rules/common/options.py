"""Rule options declared on the class, checked with one wording, read on the instance.

A rule lists its options as class attributes::

    class FA(FeedbackRule):
        seed = Option(0, SEED)
        sparsity = Option(0.0, FRACTION)

and ``Rule.__init__(model, **options)`` checks every given value (``fa option sparsity must be
a number in [0, 1), got 1.5``), refuses an unknown name, and sets each option on the instance,
where ``rule.sparsity`` reads it. ``declared_options(FA)`` gives them with their defaults: the
registry, the CLI and the docs read them from there.
"""

from __future__ import annotations

from typing import Any

from bpfree.core.checks import Check


class Option:
    """One option of a rule: its ``default`` and the ``check`` of a given value (None: the
    rule checks it itself, for values such as modules or tensors)."""

    def __init__(self, default: Any, check: Check | None = None) -> None:
        self.default = default
        self.check = check
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        return self if instance is None else self.default

    def value(self, given: Any, owner: str) -> Any:
        """``given`` as the option's value, or a ``CheckError`` naming ``owner`` and the option
        (defaults are not checked: None may stand for "derived from the model")."""
        if self.check is None or given is self.default:
            return given
        return self.check(given, f"{owner} option {self.name}")

    def __repr__(self) -> str:
        return f"Option({self.default!r}, {self.check.must if self.check else 'unchecked'})"


def declared_options(cls: type) -> dict[str, Option]:
    """The options of ``cls`` by name: its own in the order declared, then inherited ones."""
    options: dict[str, Option] = {}
    for klass in cls.__mro__:
        for name, attribute in vars(klass).items():
            if isinstance(attribute, Option) and name not in options:
                options[name] = attribute
    return options
