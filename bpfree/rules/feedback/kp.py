"""Kolen-Pollack: the feedback learns the transpose of every forward update."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bpfree.rules.common.init import he_uniform_like_transposed
from bpfree.rules.feedback.mechanism import FeedbackRule
from bpfree.rules.registry import register


@register
class KP(FeedbackRule):
    """Kolen-Pollack learning (Kolen & Pollack 1994; Akrout et al. 2019).

    Symbols: W_l the forward weight, B_l a plastic feedback shaped like W_lᵀ, λ the weight decay.

    Update: δ_l = (B_{l+1} δ_{l+1}) ⊙ σ′(a_l) as in FA, and B_l receives the transpose of W_l's
    update: ∇B_l = (∇W_l)ᵀ. B_l is a parameter of the rule, trained by the optimizer that
    ``bpfree.optimizer(rule, ...)`` builds, with weight decay λ > 0; then
        W_l(t+1) − B_l(t+1)ᵀ = (1 − ηλ) (W_l(t) − B_l(t)ᵀ)
    so B_l converges to W_lᵀ from any random start.

    Args:
        model: any ``nn.Module`` whose weighted layers are Linear or Conv2d.
        seed: seed of the generator drawing the initial B_l (like FA's).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = KP(model)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01, momentum=0.9,
        ...                        weight_decay=1e-4)   # the model's parameters and B
        >>> rule.step(x, y); opt.step()

    References: Kolen, Pollack, "Backpropagation without weight transport", IEEE ICNN 1994;
    Akrout, Wilson, Humphreys, Lillicrap, Tweed, "Deep Learning without Weight Transport",
    NeurIPS 2019 (Sec. 3).
    """

    name = "kp"

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        with self.stream.generator() as generator:
            initial = [he_uniform_like_transposed(layer.weight, generator) for layer in self.layers]
        self.B = nn.ParameterList(nn.Parameter(b) for b in initial)

    def feedback(self, index: int) -> torch.Tensor:
        return self.B[index].detach()

    def after_backward(self) -> None:
        for index in self.feedback_inputs:  # the layers whose feedback carries errors
            grad = self.layers[index].weight.grad
            self.B[index].grad = grad.transpose(0, 1).clone()  # ∇B = (∇W)ᵀ
