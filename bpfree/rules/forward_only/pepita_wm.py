"""PEPITA with weight mirroring: a factorised F whose factors mirror the forward weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from bpfree.rules.base import BufferList, StepResult, feedback_generator
from bpfree.rules.forward_only.pepita import PEPITA
from bpfree.rules.registry import register


@register
class PEPITAWeightMirror(PEPITA):
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
    output layer's through its bare linear map.

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
    """

    name = "pepita-wm"
    walks_conv_nets = False  # F_l is shaped like a dense W_lᵀ

    def __init__(
        self,
        model: nn.Module,
        *,
        sign: int = -1,
        presynaptic: str = "modulated",
        output_error: str = "clean",
        f_scale: float = 0.05,
        mirror_lr: float = 0.1,
        mirror_decay: float = 0.5,
        mirror_noise: float = 0.1,
        mirror_batch: int = 64,
        mirror_every: int = 1,
        pre_mirror_steps: int = 0,
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        checks = {
            "mirror_lr": (mirror_lr, mirror_lr > 0.0, "positive"),
            "mirror_decay": (mirror_decay, mirror_decay >= 0.0, "non-negative"),
            "mirror_noise": (mirror_noise, mirror_noise > 0.0, "positive"),
            "mirror_batch": (mirror_batch, mirror_batch >= 1, "at least 1"),
            "mirror_every": (mirror_every, mirror_every >= 0, "non-negative (0: never)"),
            "pre_mirror_steps": (pre_mirror_steps, pre_mirror_steps >= 0, "non-negative"),
        }
        for key, (value, ok, valid) in checks.items():
            if not ok:
                raise ValueError(f"{key} must be {valid}, got {value!r}")
        super().__init__(
            model,
            sign=sign,
            presynaptic=presynaptic,
            output_error=output_error,
            f_scale=f_scale,
            seed=seed,
            num_classes=num_classes,
        )
        self.mirror_lr, self.mirror_decay, self.mirror_noise = mirror_lr, mirror_decay, mirror_noise
        self.mirror_batch, self.mirror_every = mirror_batch, mirror_every
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("pending_pre_mirror", torch.tensor(pre_mirror_steps))

    def init_feedback(self, n_inputs: int, f_scale: float, seed: int, like: torch.Tensor) -> None:
        """F_l ~ N(0, σ²) shaped like W_lᵀ, σ chosen so that std(F_1 ⋯ F_L) = σ_F."""
        shapes = [tuple(layer.linear.weight.T.shape) for layer in self.stack.layers]
        hidden_widths = math.prod(shape[1] for shape in shapes[:-1])
        self.target_std = f_scale * math.sqrt(2.0 / n_inputs)
        std = (self.target_std / math.sqrt(hidden_widths)) ** (1.0 / len(shapes))
        generator = feedback_generator(seed, self.name)
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

    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        while self.pending_pre_mirror > 0:
            self.mirror()
            self.pending_pre_mirror -= 1
        result = super().step(x, y)
        self.steps += 1
        if self.mirror_every and int(self.steps) % self.mirror_every == 0:
            self.mirror()
        return result

    @torch.no_grad()
    def mirror(self) -> None:
        """One mirror step on every F_l, then the product's std reset to σ_F."""
        for layer, factor in zip(self.stack.layers, self.factors, strict=True):
            weight = layer.linear.weight
            xi = torch.randn(self.mirror_batch, weight.shape[1], dtype=weight.dtype)
            xi = xi.to(weight.device).mul_(self.mirror_noise)
            xi -= xi.mean()
            r = layer.forward(xi, None)  # N(σ_l(W_l ξ)), no dropout
            factor.mul_(1.0 - self.mirror_lr * self.mirror_decay)
            factor.addmm_(xi.T, r, alpha=self.mirror_lr / self.mirror_batch)  # + η ξᵀ r / B
        scale = (self.target_std / self.F.std().item()) ** (1.0 / len(self.factors))
        for factor in self.factors:
            factor.mul_(scale)

    def alignment(self) -> dict[str, dict[str, float]]:
        """PEPITA's angle of F to (W_L ⋯ W_1)ᵀ, and each factor's angle to W_lᵀ."""
        from bpfree.diagnostics import angle_degrees, norm_ratio

        angles = super().alignment()
        with torch.no_grad():
            for l, (layer, factor) in enumerate(zip(self.stack.layers, self.factors, strict=True)):
                W_T = layer.linear.weight.T
                angles[f"F_{l + 1}"] = {
                    "angle": angle_degrees(factor, W_T),
                    "norm_ratio": norm_ratio(factor, W_T),
                }
        return angles

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, mirror_lr={self.mirror_lr}, "
            f"mirror_decay={self.mirror_decay}, mirror_every={self.mirror_every}"
        )
