"""Weight mirror: the feedback learns W's transpose from the layer's response to noise."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from bpfree.rules.base import BufferList, StepResult, feedback_generator
from bpfree.rules.feedback.layers import ConvConfig
from bpfree.rules.feedback.mechanism import FeedbackRule, he_uniform_like_transposed
from bpfree.rules.registry import register


@register
class WM(FeedbackRule):
    """Weight mirror (Akrout et al. 2019): FA whose feedback is trained in a mirror phase.

    Symbols: ξ zero-mean noise of std σ driven into a layer's input, y = W_l ξ the layer's
    response (no bias), η the mirror rate, λ the mirror decay.

    Mirror step, per layer (correlations averaged over samples and output positions):
        B_l ← (1 − ηλ) B_l + η E[ξ yᵀ] / σ²,   E[ξ yᵀ] = σ² W_lᵀ
    so B_l tends to W_lᵀ / λ. Learning runs as FA with the current B_l. Schedule: a mirror step
    after every ``mirror_every``-th training step, and ``pre_mirror_steps`` mirror steps before
    the first training step (mirror-only epochs: pass epochs × batches per epoch). Only layers
    whose feedback carries errors (those seen in a backward pass) are mirrored.

    Args:
        model: any ``nn.Module`` whose weighted layers are Linear or Conv2d.
        seed: seed of the generator drawing the initial B_l and the noise.
        mirror_lr: η.  mirror_decay: λ.  mirror_noise: σ.  mirror_batch: noise samples per step.
        mirror_every: training steps per mirror step (0: never after the pre-mirroring).
        pre_mirror_steps: mirror steps before training.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = WM(model, mirror_every=1)
        >>> rule.step(x, y); opt.step()

    Reference: Akrout, Wilson, Humphreys, Lillicrap, Tweed, "Deep Learning without Weight
    Transport", NeurIPS 2019.
    """

    name = "wm"

    def __init__(
        self,
        model: nn.Module,
        *,
        seed: int = 0,
        mirror_lr: float = 0.1,
        mirror_decay: float = 1.0,
        mirror_noise: float = 1.0,
        mirror_batch: int = 64,
        mirror_every: int = 1,
        pre_mirror_steps: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(model, num_classes=num_classes)
        checks = {
            "mirror_lr": mirror_lr > 0,
            "mirror_decay": mirror_decay >= 0,
            "mirror_noise": mirror_noise > 0,
            "mirror_batch": mirror_batch >= 1,
            "mirror_every": mirror_every >= 0,
            "pre_mirror_steps": pre_mirror_steps >= 0,
        }
        for option, ok in checks.items():
            if not ok:
                raise ValueError(f"WM option {option} is out of range: {locals()[option]!r}")
        self.mirror_lr, self.mirror_decay, self.mirror_noise = mirror_lr, mirror_decay, mirror_noise
        self.mirror_batch, self.mirror_every = mirror_batch, mirror_every
        self.pending_pre_mirror = pre_mirror_steps
        self.generator = feedback_generator(seed, self.name)
        self.B = BufferList(
            [he_uniform_like_transposed(l.weight, self.generator) for l in self.layers]
        )
        self.steps = 0

    def feedback(self, index: int) -> torch.Tensor:
        return self.B[index]

    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        if self.pending_pre_mirror and not self.feedback_inputs:
            super().step(x, y)  # one pass to learn which layers carry errors, and their shapes
        for _ in range(self.pending_pre_mirror):
            self.mirror()
        self.pending_pre_mirror = 0
        result = super().step(x, y)
        self.steps += 1
        if self.mirror_every and self.steps % self.mirror_every == 0:
            self.mirror()
        return result

    @torch.no_grad()
    def mirror(self) -> None:
        """One mirror step on every layer whose feedback carries errors."""
        for index, (x_shape, config) in self.feedback_inputs.items():
            layer, ops, b = self.layers[index], self.ops[index], self.B[index]
            weight = layer.weight
            noise = (
                torch.randn(
                    (self.mirror_batch, *x_shape[1:]), generator=self.generator, dtype=weight.dtype
                )
                .to(weight.device)
                .mul_(self.mirror_noise)
            )
            response = ops.forward(noise, weight, None, config)
            positions = response.numel() // (response.shape[0] * weight.shape[0])
            correlation = ops.weight_grad(noise, response, weight, config).transpose(0, 1)
            scale = self.mirror_lr / (self.mirror_batch * positions * self.mirror_noise**2)
            b.mul_(1.0 - self.mirror_lr * self.mirror_decay).add_(correlation, alpha=scale)

    def get_extra_state(self) -> dict:
        inputs = {
            index: (shape, None if config is None else dataclasses.astuple(config))
            for index, (shape, config) in self.feedback_inputs.items()
        }
        return {"generator": self.generator.get_state(), "steps": self.steps, "inputs": inputs}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.steps = state["steps"]
        self.feedback_inputs = {
            index: (shape, None if config is None else ConvConfig(*config))
            for index, (shape, config) in state["inputs"].items()
        }
