"""Data-parallel training on ``torch.distributed``: one run across processes, GPUs and machines,
the same as one large batch.

Launched by ``torchrun`` (``torchrun --nproc-per-node N -m bpfree train ...``), every process
(a *replica*) holds the whole model, rule and optimizer; each takes its rows of every global
batch, the rule writes ``.grad`` for them, and the gradients are averaged across replicas in
one collective call before the optimizer applies them (``averaging``). The random draws a rule
makes come from streams identical on every replica, a per-sample draw giving each replica
its rows of the whole global batch's (``Rule.batch_rows``); feedback state a rule learns from
data outside ``.grad`` is summed across replicas by the rule (``Rule.sum_across_replicas``).
Nothing here starts a process or opens a socket: ``torch.distributed`` does, from the
environment ``torchrun`` sets.

For a loop of your own, under ``torchrun``::

    replicas = bpfree.parallel.join()                   # init_process_group from torchrun's env
    parallel = bpfree.parallel.DataParallel(rule, optimizer, replicas)
    for x, y in batches:                                # the same global batches on every rank
        result = parallel.step(x, y)                    # this rank's rows; averaged; applied
"""

from bpfree.parallel.averaging import AveragedOptimizer
from bpfree.parallel.replicas import Replicas, join, leave
from bpfree.parallel.step import DataParallel, ParallelStep

__all__ = ["AveragedOptimizer", "DataParallel", "ParallelStep", "Replicas", "join", "leave"]
