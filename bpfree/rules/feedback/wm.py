"""Weight mirror: the feedback learns W's transpose from the layer's response to noise."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bpfree.rules.common.buffers import BufferList
from bpfree.rules.common.init import he_uniform_like_transposed
from bpfree.rules.common.mirror import MirrorOptions, MirrorSchedule, mirror_step_
from bpfree.rules.feedback.mechanism import FeedbackRule
from bpfree.rules.registry import register


@register
class WM(MirrorOptions, FeedbackRule):
    """Weight mirror (Akrout et al. 2019): FA whose feedback is trained in a mirror phase.

    Symbols: ξ zero-mean noise of std σ driven into a layer's input, y = W_l ξ the layer's
    response (no bias), η the mirror rate, λ the mirror decay.

    Mirror step, per layer (correlations averaged over samples and output positions):
        B_l ← (1 − ηλ) B_l + η E[ξ yᵀ] / σ²,   E[ξ yᵀ] = σ² W_lᵀ
    so B_l tends to W_lᵀ / λ. Learning runs as FA with the current B_l. Schedule: a mirror step
    after every ``mirror_every``-th training step, and ``pre_mirror_steps`` mirror steps before
    the first training step (mirror-only epochs: pass epochs × batches per epoch). Only layers
    whose feedback carries errors are mirrored; before the first step they are found by one
    forward pass in eval mode (``probe_feedback_inputs``).

    Args:
        model: any ``nn.Module`` whose weighted layers are Linear or Conv2d.
        seed: seed of the stream drawing the initial B_l and the noise (its position is saved).
        mirror_lr: η.  mirror_decay: λ.  mirror_noise: σ.  mirror_batch: noise samples per step.
        mirror_every: training steps per mirror step (0: never after the pre-mirroring).
        pre_mirror_steps: mirror steps before training.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    State: ``B.l``, ``stream.state``, ``schedule.steps`` and ``schedule.pending``.

    Example:
        >>> rule = WM(model, mirror_every=1)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01)
        >>> rule.step(x, y); opt.step()

    Reference: Akrout, Wilson, Humphreys, Lillicrap, Tweed, "Deep Learning without Weight
    Transport", NeurIPS 2019.
    """

    name = "wm"

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        with self.stream.generator() as generator:
            initial = [he_uniform_like_transposed(l.weight, generator) for l in self.layers]
        self.B = BufferList(initial)
        self.schedule = MirrorSchedule(self.mirror_every, self.pre_mirror_steps)

    def feedback(self, index: int) -> torch.Tensor:
        return self.B[index]

    def before_step(self, x: torch.Tensor) -> None:
        pending = self.schedule.take_pending()
        if pending and not self.feedback_inputs:
            self.probe_feedback_inputs(x)
        for _ in range(pending):
            self.mirror()

    def after_backward(self) -> None:
        if self.schedule.count_step():
            self.mirror()

    @torch.no_grad()
    def mirror(self) -> None:
        """One mirror step on every layer whose feedback carries errors."""
        for index, (x_shape, config) in self.feedback_inputs.items():
            layer, ops = self.layers[index], self.ops[index]
            weight = layer.weight
            (noise,) = self.stream.normal([(self.mirror_batch, *x_shape[1:])], weight)
            noise.mul_(self.mirror_noise)
            response = ops.forward(noise, weight, None, config)
            positions = response.numel() // (response.shape[0] * weight.shape[0])
            correlation = ops.weight_grad(noise, response, weight, config).transpose(0, 1)
            alpha = self.mirror_lr / (self.mirror_batch * positions * self.mirror_noise**2)
            mirror_step_(
                self.B[index], correlation, lr=self.mirror_lr, decay=self.mirror_decay, alpha=alpha
            )
