"""Sign-concordant feedback: the feedback carries the signs of the forward weights."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bpfree.core.checks import FRACTION
from bpfree.rules.common.buffers import BufferList
from bpfree.rules.common.init import he_uniform_bound, he_uniform_like_transposed
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import sparse_mask
from bpfree.rules.feedback.mechanism import FeedbackRule
from bpfree.rules.registry import register


class SignSymmetry(FeedbackRule):
    """Feedback B_l = sign(W_l)ᵀ ⊙ M_l, with magnitudes M_l chosen by the variant.

    Symbols: W_l the forward weight, M_l a non-negative magnitude shaped like W_lᵀ, S_l an
    optional fixed 0/1 sparsity mask (PFA paper Sec. 7).

    Update: δ_l = (B_{l+1} δ_{l+1}) ⊙ σ′(a_l) with B_l = sign(W_l)ᵀ ⊙ M_l ⊙ S_l, recomputed from
    the current W_l at every step, so the feedback always carries W's signs. The variants:
        uSF:  M_l = m_l, one constant per layer: the mean |B| of FA's feedback, (1/2)√(6 / fan_in)
        frSF: M_l = |R_l|, R_l drawn once like FA's B and kept
        brSF: M_l = |R_l|, R_l redrawn at every batch (for the layers whose feedback carries
              errors)
    The constant of uSF (Liao et al. write B = sign(W)) keeps the three variants' feedback on
    FA's scale, as BioTorch's scaling option does.

    Args:
        model: any ``nn.Module`` whose weighted layers are Linear or Conv2d.
        seed: seed of the stream drawing magnitudes and masks (its position is saved).
        sparsity: fraction of feedback weights held at zero, in [0, 1).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = bpfree.build("usf", model)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01)
        >>> rule.step(x, y); opt.step()

    Reference: Liao, Leibo, Poggio, "How Important Is Weight Symmetry in Backpropagation?",
    AAAI 2016; Moskovitz, Litwin-Kumar, Abbott 2018; Sanfiz, Akrout, "Benchmarking the Accuracy
    and Robustness of Feedback Alignment Algorithms" (BioTorch), 2021.
    """

    sparsity = Option(0.0, FRACTION)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        with self.stream.generator() as generator:
            self.magnitudes = BufferList(
                [self.init_magnitude(layer, generator) for layer in self.layers]
            )
            if self.sparsity:
                self.masks = BufferList(
                    [
                        sparse_mask(w.transpose(0, 1).shape, self.sparsity, generator, w)
                        for w in (layer.weight for layer in self.layers)
                    ]
                )

    def init_magnitude(self, layer: nn.Module, generator: torch.Generator) -> torch.Tensor:
        """M_l at construction."""
        return he_uniform_like_transposed(layer.weight, generator).abs_()

    def feedback(self, index: int) -> torch.Tensor:
        b = torch.sign(self.layers[index].weight.detach().transpose(0, 1)) * self.magnitudes[index]
        return b.mul_(self.masks[index]) if self.sparsity else b


@register
class USF(SignSymmetry):
    __doc__ = SignSymmetry.__doc__
    name = "usf"

    def init_magnitude(self, layer: nn.Module, generator: torch.Generator) -> torch.Tensor:
        weight = layer.weight
        constant = 0.5 * math.sqrt(6.0 / weight[0].numel())
        return torch.full((), constant, dtype=weight.dtype, device=weight.device)


@register
class FRSF(SignSymmetry):
    __doc__ = SignSymmetry.__doc__
    name = "frsf"


@register
class BRSF(SignSymmetry):
    __doc__ = SignSymmetry.__doc__
    name = "brsf"

    def before_step(self, x: torch.Tensor) -> None:
        # Only the layers whose feedback carries errors (all of them before the first step).
        for index in self.feedback_inputs or range(len(self.layers)):
            weight = self.layers[index].weight  # R_l drawn like W_l, then transposed, as at init
            drawn = self.stream.uniform(weight.shape, he_uniform_bound(weight), weight)
            self.magnitudes[index].copy_(drawn.transpose(0, 1).abs_())
