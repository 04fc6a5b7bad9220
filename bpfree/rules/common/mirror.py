"""Weight mirroring (Akrout et al. 2019): feedback learns a layer's transpose from its response
to noise, on a schedule of mirror steps before and between training steps.

Mirror step, for noise ξ driven into a layer and its response r:
    B ← (1 − η λ) B + α ξᵀ r        (η the mirror rate, λ the mirror decay; α = η / (samples · …))
For a linear layer E[ξᵀ r] = σ² Wᵀ, so B tends to Wᵀ / λ (up to α's normalisation).
"""

from __future__ import annotations

import torch

from bpfree.core.checks import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT
from bpfree.rules.common.buffers import HostState, add_scaled_
from bpfree.rules.common.options import Option


def mirror_step_(
    feedback: torch.Tensor, correlation: torch.Tensor, *, lr: float, decay: float, alpha: float
) -> torch.Tensor:
    """B ← (1 − η λ) B + α ξᵀ r, in place, for ``correlation`` = ξᵀ r (shaped like B)."""
    return add_scaled_(feedback.mul_(1.0 - lr * decay), correlation, alpha=alpha)


class MirrorOptions:
    """The options of a mirroring rule (a mixin of ``Option`` declarations)."""

    mirror_lr = Option(0.1, POSITIVE)
    mirror_decay = Option(1.0, NON_NEGATIVE)
    mirror_noise = Option(1.0, POSITIVE)
    mirror_batch = Option(64, POSITIVE_INT)
    mirror_every = Option(1, NON_NEGATIVE_INT)
    pre_mirror_steps = Option(0, NON_NEGATIVE_INT)


class MirrorSchedule(HostState):
    """When to mirror: ``pre_steps`` mirror steps before the first training step, then one
    after every ``every``-th training step (0: never). Its counters are buffers, so a resumed
    run neither repeats the pre-mirroring nor shifts the schedule; they stay on the host
    (``HostState``), where the schedule is decided.

    State: ``steps`` training steps taken, ``pending`` pre-mirror steps not yet run.
    """

    def __init__(self, every: int, pre_steps: int) -> None:
        super().__init__()
        self.every = every
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("pending", torch.tensor(pre_steps, dtype=torch.long))

    def take_pending(self) -> int:
        """The pre-mirror steps still to run, now marked as run."""
        pending = int(self.pending)
        self.pending.zero_()
        return pending

    def count_step(self) -> bool:
        """Count one training step; whether a mirror step follows it."""
        self.steps += 1
        return bool(self.every) and int(self.steps) % self.every == 0
