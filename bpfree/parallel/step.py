"""One training step of a rule across replicas, the same as one step on the whole batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bpfree.parallel.averaging import AveragedOptimizer
from bpfree.parallel.replicas import Replicas
from bpfree.rules import CompiledStep, Rule, StepResult


@dataclass(frozen=True)
class ParallelStep:
    """What a step gives the training loop, on the device so that nothing waits for it:
    ``stats`` (float64, shape (3,)) holds the loss summed over the global batch, the number of
    its samples predicted right, and the number of replicas whose loss was not finite (then
    the step's update is not finite either: the loop stops at its next read, before anything
    of the epoch is saved); ``samples`` is the number of the global batch's predictions (its
    samples, or a sequence model's tokens)."""

    stats: torch.Tensor
    samples: int


def step_stats(loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[loss × n, correct predictions, 1 if the loss is not finite] of one batch, as float64;
    n counts the predictions: the samples, or a sequence model's tokens."""
    return torch.stack(
        [
            loss.detach().double() * y.numel(),
            (output.argmax(dim=-1) == y).sum().double(),
            (~torch.isfinite(loss.detach())).double(),
        ]
    )


class DataParallel:
    """Train ``rule`` with ``optimizer`` on the replicas of ``replicas`` (None: this process
    alone, where a step is ``rule.step`` then ``optimizer.step``).

    ``step(x, y)`` takes the *global* batch, the same on every replica: each replica trains on
    its rows of it (``Replicas.rows``) with the rule told where they lie (``Rule.replicated``),
    the gradients are averaged (``AveragedOptimizer``, which also becomes the rule's attached
    optimizer, for a rule that applies its updates during its step) together with the step's
    loss and accuracy in one collective call, and the model's buffers (BatchNorm's running
    statistics) are broadcast from rank 0, as DDP does by default: every replica holds the same
    state after every step. With ``compiled`` (a ``CompiledStep`` of the rule), the rule's step
    runs compiled; the averaging and the optimizer's step stay eager. Each replica draws its
    dropout masks from its own generator (the run seeds them apart), so with dropout a step
    differs from the one-process step; without it, the two agree to rounding.
    """

    def __init__(
        self,
        rule: Rule,
        optimizer: torch.optim.Optimizer,
        replicas: Replicas | None,
        *,
        compiled: CompiledStep | None = None,
    ) -> None:
        self.rule, self.replicas, self.compiled = rule, replicas, compiled
        if replicas is not None and not isinstance(optimizer, AveragedOptimizer):
            optimizer = AveragedOptimizer(optimizer, rule, replicas)
            object.__setattr__(rule, "_optimizer", optimizer)
        self.optimizer = optimizer
        self.buffers = [b for b in rule.model.buffers()]

    def step(self, x: torch.Tensor, y: torch.Tensor, *, check: bool = True) -> ParallelStep:
        """One step on the global batch (x, y), checked first unless ``check`` is False (see
        ``Rule.step``); nothing in it is read back to the host."""
        if self.replicas is None:
            result = self._rule_step(x, y, check)
            self.optimizer.step()
            return ParallelStep(step_stats(result.loss, result.output, y), y.numel())
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
            result = self._rule_step(x, y, check)
            stats = step_stats(result.loss, result.output, y)
            self.optimizer.reduce(extra=[stats])
        self.optimizer.optimizer.step()
        if self.buffers:
            self.replicas.broadcast_tensors_(self.buffers)
        return ParallelStep(stats, total * y[0].numel())

    def _rule_step(self, x: torch.Tensor, y: torch.Tensor, check: bool) -> StepResult:
        if self.compiled is not None:  # compiled steps take checked data
            return self.compiled.rule_step(x, y)
        return self.rule.step(x, y, check=check)

    def start_epoch(self) -> None:
        """An epoch begins: a compiled step takes its first step eagerly (``eager_next``)."""
        if self.compiled is not None:
            self.compiled.eager_next()
