"""The ground floor every other package stands on: named registries, value checks with one
wording, files written whole or not at all, and figures drawn when matplotlib is there."""

from bpfree.core.checks import Check, CheckError, checked
from bpfree.core.figures import pyplot, save_figure
from bpfree.core.files import atomic_write, write_text
from bpfree.core.registry import Registry, reject_unknown

__all__ = [
    "Check",
    "CheckError",
    "Registry",
    "atomic_write",
    "checked",
    "pyplot",
    "reject_unknown",
    "save_figure",
    "write_text",
]
