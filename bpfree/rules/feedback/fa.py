"""Feedback alignment: the error travels down through fixed random matrices."""

from __future__ import annotations

import math

import torch
from torch import nn

from bpfree.rules.feedback.mechanism import FeedbackRule
from bpfree.rules.registry import register


@register
class FA(FeedbackRule):
    """Feedback alignment (Lillicrap et al. 2016): fixed random B_l in place of W_lᵀ.

    Symbols: a_l = W_l h_{l−1} pre-activations, h_l = σ(a_l), e = softmax(a_L) − t the output
    error, B_l a fixed random matrix shaped like W_lᵀ.

    Update (GrAPE paper Sec. 2.1):
        δ_L = e
        δ_l = (B_{l+1} δ_{l+1}) ⊙ σ′(a_l)
        ΔW_l = δ_l h_{l−1}ᵀ   (averaged over the batch)
    Only the Linear's backward changes; every other op keeps its exact derivative. B_l is drawn
    from the distribution of W_l (He-uniform, bound √(6 / fan_in)); the first layer's B is kept
    for uniformity but unused when that layer's input is data.

    Args:
        model: any ``nn.Module`` whose weighted layers are ``nn.Linear`` (norm layers kept exact).
        seed: seed of the generator drawing the B_l.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = FA(model, seed=0)
        >>> rule.step(x, y); opt.step()

    Reference: Lillicrap, Cownden, Tweed, Akerman, "Random synaptic feedback weights support
    error backpropagation for deep learning", Nature Communications 7, 2016.
    """

    name = "fa"

    def __init__(self, model: nn.Module, *, seed: int = 0, num_classes: int | None = None) -> None:
        super().__init__(model, seed=seed, num_classes=num_classes)

    def init_feedback(self, layer: nn.Module, generator: torch.Generator) -> torch.Tensor:
        weight = layer.weight
        bound = math.sqrt(6.0 / weight[0].numel())
        b = torch.empty(weight.shape, dtype=weight.dtype).uniform_(
            -bound, bound, generator=generator
        )
        return b.T.contiguous().to(weight.device)
