"""Things looked up by name (rules, models, datasets, suites), and the one error for a name
that is not there."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Generic, TypeVar

T = TypeVar("T")


def reject_unknown(
    given: Iterable[str], valid: Iterable[str], *, what: str, where: str = ""
) -> None:
    """Raise ``ValueError`` naming every name of ``given`` that is not in ``valid``.

    ``what`` is the kind of name in the singular ("key", "option", "rule") and ``where`` says
    where it was given ("in config.yaml", "of rule 'fa'"); the message lists the valid names,
    so that a typo can be fixed from the message alone:
    ``unknown option 'sing' of rule 'pepita'; valid options: sign, f_scale, ...``
    """
    valid = list(valid)
    unknown = [name for name in given if name not in valid]
    if unknown:
        place = f" {where}" if where else ""
        raise ValueError(
            f"unknown {what} {', '.join(map(repr, unknown))}{place}; "
            f"valid {what}s: {', '.join(map(str, valid)) or '(none)'}"
        )


class Registry(MutableMapping[str, T], Generic[T]):
    """A mapping of names to things of one kind, filled by ``add`` or ``register`` (which refuse
    a name given twice); ``registry[name] = item`` replaces an entry on purpose.

    ``lookup(name)`` is the one place an unknown name becomes an error: a ``ValueError`` that
    lists the valid names.

    Example:
        >>> MODELS = Registry("model")
        >>> MODELS.add("mlp", spec)
        >>> MODELS.lookup("mpl")   # ValueError: unknown model 'mpl'; valid: mlp
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name``; a name given twice is an error."""
        if name in self._items:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._items[name] = item
        return item

    def register(self, item: T) -> T:
        """Class decorator: register a class under its ``name`` attribute."""
        return self.add(item.name, item)

    def lookup(self, name: str) -> T:
        """The item called ``name``, or a ``ValueError`` listing the valid names."""
        if name not in self._items:
            reject_unknown([name], self._items, what=self.kind)
        return self._items[name]

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __setitem__(self, name: str, item: T) -> None:
        self._items[name] = item

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"
