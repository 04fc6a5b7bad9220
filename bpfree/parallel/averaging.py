"""Gradients averaged across replicas before an optimizer applies them."""

from __future__ import annotations

import time
from typing import Any

import torch

from bpfree.parallel.replicas import Replicas
from bpfree.rules import Rule


class AveragedOptimizer:
    """An optimizer whose ``step()`` first makes every replica's gradients the run's.

    A replica's ``.grad`` is the rule's update for its n_r rows of a global batch of N; the
    run's is what one process would write for the whole batch. For an update that is a mean
    over the batch (every rule's, but see ``Rule.batch_power``) that is Σ_r (n_r / N) g_r; for
    an update that scales as n^−k, Σ_r (n_r / N)^k g_r. Each replica scales its gradients so,
    then one all-reduce (per dtype) sums them, flattened into one bucket; the wrapped optimizer
    then applies them, identically on every replica.

    It stands in for the wrapped optimizer (``param_groups``, ``state_dict``, ...): a learning
    rate schedule is built on ``optimizer``, the one it wraps. ``seconds_communicating`` adds up
    the time spent in the collective calls.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, rule: Rule, replicas: Replicas) -> None:
        self.optimizer, self.rule, self.replicas = optimizer, rule, replicas
        self.local_rows, self.global_rows = 1, 1
        self.seconds_communicating = 0.0
        self._buckets: dict[torch.dtype, torch.Tensor] = {}

    def set_rows(self, local: int, total: int) -> None:
        """This step's rows: ``local`` on this replica out of ``total``."""
        self.local_rows, self.global_rows = local, total

    def reduce(self, extra: list[torch.Tensor] = ()) -> None:
        """Make the present gradients the run's (see the class), and sum ``extra`` tensors over
        the replicas in the same collective call.

        The gradients are packed, scaled on the way, into one bucket kept from step to step
        (per dtype), summed in place, and each parameter's ``.grad`` becomes a view of its part
        of the bucket: one pass over the gradients besides the collective call."""
        params = [
            param
            for group in self.optimizer.param_groups
            for param in group["params"]
            if param.grad is not None
        ]
        dtypes = {param.grad.dtype for param in params} | {t.dtype for t in extra}
        for dtype in sorted(dtypes, key=str):  # the same order on every replica
            own = [p for p in params if p.grad.dtype == dtype]
            others = [t for t in extra if t.dtype == dtype]
            bucket = self._bucket(dtype, own, others)
            offset = 0
            for param in own:
                weight = (self.local_rows / self.global_rows) ** self.rule.batch_power(param)
                part = bucket[offset : offset + param.numel()]
                torch.mul(param.grad.reshape(-1), weight, out=part)
                offset += param.numel()
            for tensor in others:
                bucket[offset : offset + tensor.numel()].copy_(tensor.reshape(-1))
                offset += tensor.numel()
            start = time.perf_counter()
            self.replicas.all_reduce_sum_([bucket[:offset]])
            self.seconds_communicating += time.perf_counter() - start
            offset = 0
            for param in own:
                param.grad = bucket[offset : offset + param.numel()].view_as(param)
                offset += param.numel()
            for tensor in others:
                tensor.copy_(bucket[offset : offset + tensor.numel()].view_as(tensor))
                offset += tensor.numel()

    def _bucket(
        self, dtype: torch.dtype, params: list[torch.nn.Parameter], extra: list[torch.Tensor]
    ) -> torch.Tensor:
        """The kept bucket of ``dtype``, at least as long as the tensors to pack."""
        size = sum(p.numel() for p in params) + sum(t.numel() for t in extra)
        device = (params[0] if params else extra[0]).device
        kept = self._buckets.get(dtype)
        if kept is None or kept.numel() < size or kept.device != device:
            kept = torch.empty(size, dtype=dtype, device=device)
            self._buckets[dtype] = kept
        return kept

    def step(self, closure: Any = None) -> Any:
        """Average the gradients over the replicas, then apply them."""
        self.reduce()
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
