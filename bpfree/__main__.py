"""``python -m bpfree``: the ``bpfree`` command."""

from bpfree.cli import run

run()
