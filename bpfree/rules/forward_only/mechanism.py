"""The forward-only family's mechanism: layers walked by hand, no autograd graph ever built.

A forward-only rule sees the model as a stack of dense layers h_l = σ_l(W_l h_{l−1} + b_l), each
hidden one followed by dropout whose mask the rule draws once per batch so that every pass of the
batch shares it. Gradients are written straight into ``.grad`` buffers kept between steps.

Supported models follow ``bpfree.models.MLP``'s convention: ``flatten(x)``, ``blocks`` of
``Sequential(Linear, activation, Dropout)`` and a ``head`` ``Linear``.

Index letters: n batch, i inputs of a layer, o outputs of a layer, c classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bpfree.rules.base import Rule


@dataclass(frozen=True)
class DenseLayer:
    """One layer as a forward-only rule walks it: h = dropout(σ(W h_prev + b))."""

    linear: nn.Linear
    activation: nn.Module
    dropout: float

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """h_l = σ(W_l h_{l−1} + b_l) ⊙ mask."""
        return self.activate(
            torch.nn.functional.linear(h, self.linear.weight, self.linear.bias), mask
        )

    def activate(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """σ(a) ⊙ mask, from a pre-activation (never written in place)."""
        h = self.activation(a)
        if mask is None:
            return h
        return h * mask if h is a else h.mul_(mask)


class LayerStack:
    """A model seen as its dense layers, input side first; the last one gives the logits."""

    def __init__(self, model: nn.Module, rule_name: str) -> None:
        blocks, head = getattr(model, "blocks", None), getattr(model, "head", None)
        if not (
            isinstance(blocks, nn.ModuleList)
            and isinstance(head, nn.Linear)
            and callable(getattr(model, "flatten", None))
            and all(_is_dense_block(block) for block in blocks)
        ):
            raise ValueError(
                f"{rule_name} cannot walk {type(model).__name__}: forward-only rules need a model "
                "shaped like bpfree.models.MLP (flatten(x), blocks of Sequential(Linear, "
                "activation, Dropout), and a Linear head)"
            )
        self.model = model
        self.hidden = [DenseLayer(block[0], block[1], block[2].p) for block in blocks]
        self.output = DenseLayer(head, nn.Identity(), 0.0)

    @property
    def layers(self) -> list[DenseLayer]:
        return [*self.hidden, self.output]

    def dropout_masks(self, n: int, like: torch.Tensor) -> list[torch.Tensor | None]:
        """One mask (n, o) per hidden layer, scaled by 1 / keep, shared by all passes of a batch."""
        masks: list[torch.Tensor | None] = []
        for layer in self.hidden:
            if not self.model.training or layer.dropout == 0.0:
                masks.append(None)
                continue
            keep = 1.0 - layer.dropout
            shape = (n, layer.linear.out_features)
            mask = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(keep)
            masks.append(mask.div_(keep))
        return masks


def _is_dense_block(block: nn.Module) -> bool:
    return (
        isinstance(block, nn.Sequential)
        and len(block) == 3
        and isinstance(block[0], nn.Linear)
        and isinstance(block[2], nn.Dropout)
    )


def grad_buffer(param: nn.Parameter) -> torch.Tensor:
    """The parameter's ``.grad``, allocated once and then overwritten in place at every step."""
    if param.grad is None:
        param.grad = torch.empty_like(param)
    return param.grad


def write_outer_grad(layer: DenseLayer, post: torch.Tensor, pre: torch.Tensor, n: int) -> None:
    """ΔW = postᵀ pre / n and Δb = mean(post), written into the layer's ``.grad`` buffers."""
    weight = grad_buffer(layer.linear.weight)
    torch.addmm(weight, post.T, pre, beta=0.0, alpha=1.0 / n, out=weight)  # 'no,ni->oi'
    if layer.linear.bias is not None:
        torch.mean(post, dim=0, out=grad_buffer(layer.linear.bias))


class ForwardOnlyRule(Rule):
    """A rule made of forward passes only: its ``step`` runs with autograd off."""

    def __init__(self, model: nn.Module, *, num_classes: int | None = None) -> None:
        super().__init__(model, num_classes=num_classes)
        object.__setattr__(self, "stack", LayerStack(model, type(self).__name__))
