"""Kolen-Pollack: the feedback learns the transpose of every forward update."""

from __future__ import annotations

import torch
from torch import nn

from bpfree.rules.base import feedback_generator
from bpfree.rules.feedback.mechanism import FeedbackRule, he_uniform_like_transposed
from bpfree.rules.registry import register


@register
class KP(FeedbackRule):
    """Kolen-Pollack learning (Kolen & Pollack 1994; Akrout et al. 2019).

    Symbols: W_l the forward weight, B_l a plastic feedback shaped like W_lᵀ, λ the weight decay.

    Update: δ_l = (B_{l+1} δ_{l+1}) ⊙ σ′(a_l) as in FA, and B_l receives the transpose of W_l's
    update: ∇B_l = (∇W_l)ᵀ. B_l is a parameter of the rule: give ``rule.parameters()`` to the
    same optimizer as the model's, with weight decay λ > 0, and then
        W_l(t+1) − B_l(t+1)ᵀ = (1 − ηλ) (W_l(t) − B_l(t)ᵀ)
    so B_l converges to W_lᵀ from any random start.

    Args:
        model: any ``nn.Module`` whose weighted layers are Linear or Conv2d.
        seed: seed of the generator drawing the initial B_l (like FA's).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = KP(model)
        >>> opt = torch.optim.SGD([*model.parameters(), *rule.parameters()], lr=0.01,
        ...                       momentum=0.9, weight_decay=1e-4)
        >>> rule.step(x, y); opt.step()

    Reference: Akrout, Wilson, Humphreys, Lillicrap, Tweed, "Deep Learning without Weight
    Transport", NeurIPS 2019.
    """

    name = "kp"

    def __init__(self, model: nn.Module, *, seed: int = 0, num_classes: int | None = None) -> None:
        super().__init__(model, num_classes=num_classes)
        generator = feedback_generator(seed, self.name)
        self.B = nn.ParameterList(
            [
                nn.Parameter(he_uniform_like_transposed(layer.weight, generator))
                for layer in self.layers
            ]
        )

    def feedback(self, index: int) -> torch.Tensor:
        return self.B[index].detach()

    def after_backward(self) -> None:
        for index in self.feedback_inputs:  # the layers whose feedback carries errors
            grad = self.layers[index].weight.grad
            self.B[index].grad = grad.transpose(0, 1).clone()  # ∇B = (∇W)ᵀ
