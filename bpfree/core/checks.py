"""Checks of single values, each with the words for what a valid value is.

Every option, config key and flag in bpfree is checked by one of these, so that every bad
value gets the same kind of message: ``<name> must be <what>, got <value>``.

Example:
    >>> POSITIVE(0.0, "lr")
    CheckError: lr must be a positive number, got 0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class CheckError(ValueError):
    """A value out of its range or of the wrong type; the message names it."""


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Check:
    """What a valid value is (``must``, in words), how to test it, and how to convert it."""

    must: str
    test: Callable[[Any], bool]
    convert: Callable[[Any], Any] = _same

    def __call__(self, value: Any, name: str) -> Any:
        """``value`` converted, or a ``CheckError`` naming ``name``."""
        try:
            ok = bool(self.test(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise CheckError(f"{name} must be {self.must}, got {value!r}")
        return self.convert(value)


def is_real(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def number(must: str, test: Callable[[float], bool]) -> Check:
    """A finite real number passing ``test``, converted to float."""
    return Check(must, lambda v: is_real(v) and test(v), float)


def integer(must: str, test: Callable[[int], bool]) -> Check:
    """An int passing ``test``."""
    return Check(must, lambda v: is_int(v) and test(v), int)


def one_of(*choices: Any) -> Check:
    """One of ``choices`` (compared with ==; a bool never stands for 1 or 0)."""
    shown = ", ".join(map(str, choices))
    return Check(
        f"one of {shown}",
        lambda v: not isinstance(v, bool) and any(v == c and type(v) is type(c) for c in choices),
    )


def optional(check: Check) -> Check:
    """None, or a value passing ``check``."""
    return Check(
        f"None or {check.must}",
        lambda v: v is None or check.test(v),
        lambda v: None if v is None else check.convert(v),
    )


def at_least(bound: float) -> Check:
    """A finite number ≥ ``bound``."""
    return number(f"a number at least {bound:g}", lambda v: v >= bound)


POSITIVE = number("a positive number", lambda v: v > 0)
NON_NEGATIVE = number("a non-negative number", lambda v: v >= 0)
FRACTION = number("a number in [0, 1)", lambda v: 0 <= v < 1)
UNIT_INTERVAL = number("a number in (0, 1]", lambda v: 0 < v <= 1)
POSITIVE_INT = integer("a positive integer", lambda v: v >= 1)
NON_NEGATIVE_INT = integer("a non-negative integer", lambda v: v >= 0)
SEED = integer("an integer in [0, 2**63)", lambda v: 0 <= v < 2**63)
SIGN = Check("+1 or -1", lambda v: is_int(v) and v in (1, -1), int)
BOOLEAN = Check("true or false", lambda v: isinstance(v, bool))
TEXT = Check("a string", lambda v: isinstance(v, str))


def checked(values: dict[str, Any], checks: dict[str, Check], *, owner: str = "") -> dict[str, Any]:
    """``values`` converted by their checks; a ``CheckError`` names the first bad one (as
    ``<owner> option <name>`` when ``owner`` is given)."""
    prefix = f"{owner} option " if owner else ""
    return {key: checks[key](value, prefix + key) for key, value in values.items()}
