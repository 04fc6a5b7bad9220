"""Product feedback alignment: errors travel through a fixed expansion B and a plastic R."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bpfree.core.checks import BOOLEAN, FRACTION, at_least
from bpfree.rules.common.buffers import BufferList
from bpfree.rules.common.init import glorot_uniform_
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import sparse_mask
from bpfree.rules.feedback.mechanism import FeedbackRule
from bpfree.rules.registry import register


@register
class PFA(FeedbackRule):
    """Product feedback alignment (Li & Benna 2024), and PFA-o with a semi-orthogonal B.

    Symbols, per converted layer with i inputs and o outputs (channels for a Conv2d): e = δy the
    error at its output, ē the error of an intermediate population of k = ⌈ρ·o⌉ units (ρ the
    expansion ratio), B (k, o) fixed, R (i, k) plastic (for a Conv2d an (i, k, kh, kw) kernel and
    B a 1×1 kernel), x the layer's input.

    Update (PFA paper eqs. 4-6; convolutional form eqs. 11-12):
        ē = B e                                  (4)
        δx = R ē, then ⊙ σ′ by the layer below  (5)   — the feedback R B stands in for Wᵀ
        ΔR = x ēᵀ  (∇R = x ēᵀ as a descent direction, averaged over the batch)   (6)
    R is a parameter of the rule, trained by the optimizer ``bpfree.optimizer(rule, ...)``
    builds over the model's parameters and R, whose weight decay then acts on W and R alike
    (the paper's App. A: 0.03 in the first epoch, then 1e-4 on MNIST). B is Glorot-uniform with
    gain √((1 + 1/ρ) / 2), so that E[BᵀB] = I (the paper quotes the gain factor (1 + λ)/2,
    λ = 1/ρ, for BᵀB ≈ I), or semi-orthogonal (BᵀB = I) for PFA-o; R is Glorot-uniform. With
    B = I (ρ = 1), PFA is Kolen-Pollack.

    Args:
        model: any ``nn.Module`` whose weighted layers are Linear or ungrouped Conv2d.
        expansion: ρ = k / o, at least 1 (default 10, as in the paper).
        orthogonal: semi-orthogonal B (PFA-o).
        sparsity: fraction of the entries of B and R held at zero, in [0, 1).
        seed: seed of the generator drawing B, R and the masks.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = PFA(model)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01, momentum=0.9,
        ...                        weight_decay=1e-4)
        >>> rule.step(x, y); opt.step()

    Reference: Li, Benna, "Deep Learning without Weight Symmetry", 2024.
    """

    name = "pfa"
    uncapturable = (
        "it writes R's gradient from inside the backward pass, a side effect that a captured "
        "autograd.Function cannot hold"
    )
    expansion = Option(10.0, at_least(1))
    orthogonal = Option(False, BOOLEAN)
    sparsity = Option(0.0, FRACTION)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        with self.stream.generator() as generator:
            self._draw_feedback(generator)

    def _draw_feedback(self, generator: torch.Generator) -> None:
        """B (k, o) and R (i, k) of every layer, and their sparsity masks."""
        projections, plastic, masks = [], [], []
        for path, layer in zip(self.converted, self.layers, strict=True):
            if getattr(layer, "groups", 1) != 1:
                raise ValueError(f"PFA cannot convert grouped convolution {path!r}")
            weight = layer.weight
            o, k = weight.shape[0], math.ceil(self.expansion * weight.shape[0])
            b = self._draw_b(k, o, generator)
            r = glorot_uniform_(torch.empty((k, *weight.shape[1:])), generator).transpose(0, 1)
            if self.sparsity:
                b.mul_(sparse_mask(b.shape, self.sparsity, generator, b))
                masks.append(sparse_mask(r.shape, self.sparsity, generator, r))
                r.mul_(masks[-1])
            projections.append(b.to(weight))
            plastic.append(nn.Parameter(r.contiguous().to(weight)))
        self.B = BufferList(projections)
        self.R = nn.ParameterList(plastic)
        if self.sparsity:
            self.R_masks = BufferList([m.to(r) for m, r in zip(masks, self.R, strict=True)])

    def _draw_b(self, k: int, o: int, generator: torch.Generator) -> torch.Tensor:
        b = torch.empty(k, o)
        if self.orthogonal:
            return nn.init.orthogonal_(b, generator=generator)
        return glorot_uniform_(b, generator, gain=math.sqrt((1.0 + 1.0 / self.expansion) / 2.0))

    def feedback(self, index: int) -> torch.Tensor:
        """The product R B, shaped like Wᵀ: the path the error takes instead of Wᵀ.

        ``alignment()`` compares it with Wᵀ: the PFA paper's path alignment and norm ratio.
        """
        r, b = self.R[index].detach(), self.B[index]
        return torch.einsum("ik...,ko->io...", r, b)

    def backward_through(self, index, grad_y, x, config, weight_grad):
        """Eqs. 4-6, through ē when the batch is small, else through the product R B.

        Both orders give the same numbers. ē = B e costs (positions × k) per input unit, the
        product R B costs (o × k): when the batch holds more positions than the layer has
        outputs (always, for a convolution), δx = (R B) e and ∇R = x ēᵀ = (B ∇W)ᵀ are cheaper.
        """
        ops, r, b = self.ops[index], self.R[index], self.B[index]
        weight = self.layers[index].weight
        r_forward = ops.transpose(r.detach())  # R as the kernel of an i → k layer
        positions = grad_y.numel() // grad_y.shape[1 if grad_y.dim() > 2 else -1]
        if positions >= b.shape[1]:
            kernel = ops.transpose(self.feedback(index))
            grad_x, grad_w = ops.input_and_weight_grads(grad_y, kernel, x, weight, config)
            grad_r = torch.einsum("ko,oi...->ik...", b, grad_w)  # x ēᵀ = (B ∇W)ᵀ (eq. 6)
        else:
            e_bar = ops.mix(grad_y, b)  # ē = B e (eq. 4)
            grad_r = ops.transpose(ops.weight_grad(x, e_bar, r_forward, config))  # x ēᵀ (eq. 6)
            grad_x = ops.input_grad(e_bar, r_forward, x, config)  # R ē (eq. 5)
            grad_w = ops.weight_grad(x, grad_y, weight, config) if weight_grad else None
        if self.sparsity:
            grad_r = grad_r * self.R_masks[index]
        r.grad = grad_r if r.grad is None else r.grad.add_(grad_r)
        return grad_x, grad_w if weight_grad else None


@register
class PFAOrthogonal(PFA):
    __doc__ = PFA.__doc__
    name = "pfa-o"
    orthogonal = Option(True, BOOLEAN)
