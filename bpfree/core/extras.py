"""Optional dependencies, imported when a command needs them, with the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """A command needs a package that is not installed; the message says which extra has it."""


def require(module: str, *, extra: str, needed_for: str) -> ModuleType:
    """Import ``module``, or raise ``MissingExtra`` saying ``pip install "bpfree[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(
            f"{needed_for} needs the package {module!r}, which is not installed ({error}); "
            f'install it with: pip install "bpfree[{extra}]"'
        ) from None
