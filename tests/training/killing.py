"""The child process of the kill tests: runs a bpfree command and SIGKILLs itself at a chosen
moment. Started by a forkserver that has imported bpfree once (``start_killed``), so that each
child costs a fork, not a Python start."""

import multiprocessing
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the forkserver finds this module by name


def run_and_kill(moment: str, k: int, argv: list[str]) -> None:
    """Run ``bpfree argv``, killed with SIGKILL: ``"step"``, as the k-th training step starts;
    ``"between"``, after the checkpoint of the epoch with k rows is written, before its metrics."""
    from bpfree.cli import main
    from bpfree.parallel import step as parallel_step
    from bpfree.training import run_folder

    def kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if moment == "step":
        real_step, seen = parallel_step.DataParallel.step, []

        def step(self, x, y, **options):
            seen.append(1)
            if len(seen) == k:
                kill()
            return real_step(self, x, y, **options)

        parallel_step.DataParallel.step = step
    else:
        real_write = run_folder.RunFolder.write_metrics

        def write_metrics(self, rows):
            if len(rows) == k:
                kill()
            return real_write(self, rows)

        run_folder.RunFolder.write_metrics = write_metrics
    sys.exit(main(argv))


def start_killed(moment: str, k: int, argv: list[str]) -> int:
    """Run ``run_and_kill`` in a child process; its exit code (−9 when it killed itself)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bpfree.cli", "torch._dynamo", "killing"])
    child = context.Process(target=run_and_kill, args=(moment, k, argv))
    child.start()
    child.join()
    return child.exitcode
