"""PEPITA with weight mirroring: a factorised F whose factors mirror the forward weights."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bpfree.core.checks import NON_NEGATIVE, POSITIVE, SIGN
from bpfree.rules.common.alignment import alignment_of
from bpfree.rules.common.buffers import BufferList
from bpfree.rules.common.mirror import MirrorOptions, MirrorSchedule, mirror_step_
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import RandomStream
from bpfree.rules.forward_only.pepita import PEPITA
from bpfree.rules.registry import register


@register
class PEPITAWeightMirror(MirrorOptions, PEPITA):
    """PEPITA + weight mirroring (ICLR 2024 Sec. 4.1; Akrout et al. 2019 for the mirror step).

    F is factorised as F = F_1 F_2 ⋯ F_L, each F_l shaped like W_lᵀ (d_{l−1}, d_l), drawn
    N(0, σ²) with σ = (σ_F / √(d_1 ⋯ d_{L−1}))^{1/L} so that the product has the target std
    σ_F = f_scale·√(2 / d_0), the std of PEPITA's uniform F. A mirror step, for each layer l:
        ξ = noise·N(0, 1) of shape (B, d_{l−1}), minus its mean;  r = N(σ_l(W_l ξ))
        F_l ← F_l + η_m ξᵀ r / B − η_m λ_m F_l
    then every F_l is multiplied by (σ_F / std(F_1 ⋯ F_L))^{1/L}, which holds the product's std
    at σ_F. For a linear layer E[ξᵀ r] ∝ W_lᵀ, so F_l turns toward W_lᵀ and F toward
    (W_L ⋯ W_1)ᵀ: the alignment that x − F e (sign −1, the default here) learns with.
    The noise goes through each layer's activation (and normalisation) without dropout; the
    output layer's through its bare linear map. The factors and the noise come from one seeded
    stream, whose position is saved.

    Schedule: ``pre_mirror_steps`` mirror steps run before the first training step (the
    reference code's pre-mirroring epochs are that many batches each); then a mirror step
    follows every ``mirror_every``-th training step (0: never). The mirror step runs after the
    PEPITA update is written and before the optimizer applies it.

    Args: as ``PEPITA``'s (``sign`` defaults to −1), plus
        mirror_lr: η_m (the reference code's CLI default 0.1).
        mirror_decay: λ_m (CLI default 0.5).
        mirror_noise: std of ξ (0.1).
        mirror_batch: B, noise samples per mirror step (64).
        mirror_every: training steps between mirror steps (1; 0 never mirrors).
        pre_mirror_steps: mirror steps before training (0).

    State: ``factors.l``, ``stream.state``, ``schedule.steps`` and ``schedule.pending``.
    """

    name = "pepita-wm"
    walks_conv_nets = False  # F_l is shaped like a dense W_lᵀ

    sign = Option(-1, SIGN)
    mirror_decay = Option(0.5, NON_NEGATIVE)
    mirror_noise = Option(0.1, POSITIVE)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        self.schedule = MirrorSchedule(self.mirror_every, self.pre_mirror_steps)

    def init_feedback(self) -> None:
        """F_l ~ N(0, σ²) shaped like W_lᵀ, σ chosen so that std(F_1 ⋯ F_L) = σ_F."""
        like = self.stack.layers[0].weight
        shapes = [tuple(layer.weight.T.shape) for layer in self.stack.layers]
        hidden_widths = math.prod(shape[1] for shape in shapes[:-1])
        self.target_std = self.f_scale * math.sqrt(2.0 / self.stack.input_features)
        std = (self.target_std / math.sqrt(hidden_widths)) ** (1.0 / len(shapes))
        self.stream = RandomStream(self.seed, self.name)
        with self.stream.generator() as generator:
            factors = [
                torch.randn(shape, generator=generator, dtype=like.dtype) * std for shape in shapes
            ]
        self.factors = BufferList([f.to(like.device) for f in factors])

    @property
    def F(self) -> torch.Tensor:
        """F = F_1 F_2 ⋯ F_L, (i, c), multiplied from the class side (the cheap order)."""
        product = self.factors[-1]
        for factor in reversed(list(self.factors)[:-1]):
            product = factor @ product
        return product

    def _step(self, x: torch.Tensor, y: torch.Tensor):
        for _ in range(self.schedule.take_pending()):
            self.mirror()
        result = super()._step(x, y)
        if self.schedule.count_step():
            self.mirror()
        return result

    @torch.no_grad()
    def mirror(self) -> None:
        """One mirror step on every F_l, then the product's std reset to σ_F."""
        for layer, factor in zip(self.stack.layers, self.factors, strict=True):
            weight = layer.weight
            (xi,) = self.stream.normal([(self.mirror_batch, weight.shape[1])], weight)
            xi.mul_(self.mirror_noise)
            xi -= xi.mean()
            r = layer.forward(xi, None)  # N(σ_l(W_l ξ)), no dropout
            correlation = xi.T @ r
            alpha = self.mirror_lr / self.mirror_batch
            mirror_step_(
                factor, correlation, lr=self.mirror_lr, decay=self.mirror_decay, alpha=alpha
            )
        scale = (self.target_std / self.F.std().double()) ** (1.0 / len(self.factors))  # on device
        for factor in self.factors:
            factor.mul_(scale)

    def alignment(self) -> dict[str, dict[str, float]]:
        """PEPITA's angle of F to (W_L ⋯ W_1)ᵀ, and each factor's angle to W_lᵀ."""
        angles = super().alignment()
        with torch.no_grad():
            for l, (layer, factor) in enumerate(zip(self.stack.layers, self.factors, strict=True)):
                angles[f"F_{l + 1}"] = alignment_of(factor, layer.weight.T)
        return angles
