"""``python -m bpfree``: the ``bpfree`` command."""

import sys

from bpfree.cli import main

sys.exit(main())
