"""Feedback alignment: the error travels down through fixed random matrices."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bpfree.core.checks import FRACTION, NON_NEGATIVE, one_of
from bpfree.rules.common.buffers import BufferList
from bpfree.rules.common.init import glorot_uniform_, he_uniform_like_transposed
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import sparse_mask
from bpfree.rules.feedback.mechanism import FeedbackRule
from bpfree.rules.registry import register


@register
class FA(FeedbackRule):
    """Feedback alignment (Lillicrap et al. 2016): fixed random B_l in place of W_lᵀ.

    Symbols: a_l = W_l h_{l−1} pre-activations, h_l = σ(a_l), e = softmax(a_L) − t the output
    error, B_l a fixed random tensor shaped like W_lᵀ (for a Conv2d, a kernel with its channel
    axes swapped).

    Update (GrAPE paper Sec. 2.1):
        δ_L = e
        δ_l = (B_{l+1} δ_{l+1}) ⊙ σ′(a_l)      (for a Conv2d: a transposed convolution with B)
        ΔW_l = δ_l h_{l−1}ᵀ                     (averaged over the batch)
    Only the Linear and Conv2d backward changes; every other op keeps its exact derivative.
    B_l is drawn uniform in ±√(6 / fan_in) (``feedback_init="he-uniform"``: the distribution of
    the paper's W_l, and the U(±√(6 / n_in)) of the ICML numpy code, functions.py l.206-216),
    or in ±√(6 / (fan_in + fan_out)) (``"xavier-uniform"``, BioTorch's default; for a
    convolution fan = channels × kernel area, so its B is √(in / (in + out)) of the He bound's
    width, about 0.29 for 3 → 32 channels); fans are W_l's. With ``sparsity`` a
    fixed random fraction of its entries is zero (PFA paper Sec. 7); ``scale`` multiplies every
    B_l (0 leaves only the last layer learning, on frozen layers below). The first layer's B is
    kept for uniformity but unused when that layer's input is data.

    Args:
        model: any ``nn.Module`` whose weighted layers are Linear or Conv2d (norm layers exact).
        seed: seed of the generator drawing the B_l.
        sparsity: fraction of feedback weights held at zero, in [0, 1).
        scale: factor on every B_l, non-negative (1: W_l's distribution).
        feedback_init: ``"he-uniform"`` (default) or ``"xavier-uniform"``, see above.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = FA(model, seed=0)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01)
        >>> rule.step(x, y); opt.step()

    Reference: Lillicrap, Cownden, Tweed, Akerman, "Random synaptic feedback weights support
    error backpropagation for deep learning", Nature Communications 7, 2016.
    """

    name = "fa"
    sparsity = Option(0.0, FRACTION)
    scale = Option(1.0, NON_NEGATIVE)
    feedback_init = Option("he-uniform", one_of("he-uniform", "xavier-uniform"))

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        with self.stream.generator() as generator:
            self.B = BufferList([self.draw(layer.weight, generator) for layer in self.layers])

    def draw(self, weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """B_l: as ``feedback_init`` says, times ``scale``, with a fraction ``sparsity`` of it
        held at zero."""
        if self.feedback_init == "he-uniform":
            b = he_uniform_like_transposed(weight, generator)
        else:
            b = glorot_uniform_(torch.empty(weight.shape, dtype=weight.dtype), generator)
            b = b.transpose(0, 1).contiguous().to(weight.device)
        b.mul_(self.scale)
        if self.sparsity:
            b.mul_(sparse_mask(b.shape, self.sparsity, generator, b))
        return b

    def feedback(self, index: int) -> torch.Tensor:
        return self.B[index]
