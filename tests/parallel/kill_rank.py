"""Run ``bpfree ARGS`` as one rank of a torchrun job; the rank named by the first argument
SIGKILLs itself as its k-th training step (the second argument) starts."""

import os
import signal
import sys

from bpfree.cli import main
from bpfree.parallel import step

victim, k, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
if int(os.environ["RANK"]) == victim:
    real_step, seen = step.DataParallel.step, []

    def dying_step(self, x, y, **options):
        seen.append(1)
        if len(seen) == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_step(self, x, y, **options)

    step.DataParallel.step = dying_step
sys.exit(main(argv))
