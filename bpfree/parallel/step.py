"""One training step of a rule across replicas, the same as one step on the whole batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bpfree.parallel.averaging import AveragedOptimizer
from bpfree.parallel.replicas import Replicas
from bpfree.rules import Rule


@dataclass(frozen=True)
class ParallelStep:
    """What a step gives the training loop: the mean loss over the global batch, the number of
    its samples predicted right (a 0-d tensor, read when needed), its size, and whether the
    loss was finite on every replica (when it was not, nothing was applied)."""

    loss: float
    correct: torch.Tensor
    samples: int
    finite: bool


class DataParallel:
    """Train ``rule`` with ``optimizer`` on the replicas of ``replicas`` (None: this process
    alone, where a step is ``rule.step`` then ``optimizer.step``).

    ``step(x, y)`` takes the *global* batch, the same on every replica: each replica trains on
    its rows of it (``Replicas.rows``) with the rule told where they lie (``Rule.replicated``),
    the gradients are averaged (``AveragedOptimizer``, which also becomes the rule's attached
    optimizer, for a rule that applies its updates during its step) together with the step's
    loss and accuracy in one collective call, and the model's buffers (BatchNorm's running
    statistics) are broadcast from rank 0, as DDP does by default: every replica holds the same
    state after every step. Each replica draws its dropout masks from its own generator (the
    run seeds them apart), so with dropout a step differs from the one-process step; without
    it, the two agree to rounding.
    """

    def __init__(
        self, rule: Rule, optimizer: torch.optim.Optimizer, replicas: Replicas | None
    ) -> None:
        self.rule, self.replicas = rule, replicas
        if replicas is not None and not isinstance(optimizer, AveragedOptimizer):
            optimizer = AveragedOptimizer(optimizer, rule, replicas)
            object.__setattr__(rule, "_optimizer", optimizer)
        self.optimizer = optimizer
        self.buffers = [b for b in rule.model.buffers()]

    def step(self, x: torch.Tensor, y: torch.Tensor) -> ParallelStep:
        """One step on the global batch (x, y)."""
        if self.replicas is None:
            result = self.rule.step(x, y)
            if not math.isfinite(result.loss):
                return ParallelStep(result.loss, torch.zeros((), dtype=torch.long), len(y), False)
            self.optimizer.step()
            correct = (result.output.argmax(dim=1) == y).sum()
            return ParallelStep(result.loss, correct, len(y), True)
        total = len(y)
        start, stop = self.replicas.rows(total)
        if stop == start:
            raise ValueError(
                f"a global batch of {total} samples leaves replica {self.replicas.rank} of "
                f"{self.replicas.world_size} none: the batch size (and the last batch of an "
                "epoch) must be at least the number of processes"
            )
        x, y = x[start:stop], y[start:stop]
        self.optimizer.set_rows(stop - start, total)
        with self.rule.replicated(self.replicas, start, total):
            result = self.rule.step(x, y)
            correct = (result.output.argmax(dim=1) == y).sum()
            stats = torch.stack(
                [
                    torch.tensor(result.loss * len(y), dtype=torch.float64, device=y.device),
                    correct.to(torch.float64),
                    torch.tensor(float(not math.isfinite(result.loss)), device=y.device).double(),
                ]
            )
            self.optimizer.reduce(extra=[stats])
        finite = bool(stats[2] == 0)
        if finite:
            self.optimizer.optimizer.step()
            if self.buffers:
                self.replicas.broadcast_tensors_(self.buffers)
        return ParallelStep(float(stats[0]) / total, stats[1].long(), total, finite)
