"""The Forward-Forward family's mechanism: layer-local goodness losses, walked layer by layer.

Every hidden layer l of a ``bpfree.models.MLP`` is trained on its own objective, in closed form,
with no autograd graph (Hinton 2022, Sec. 2):

    G_l = Σ_o h_{l,o}²                                  goodness, h_l = σ(a_l) ⊙ m_l
    s = +1 for a positive sample, −1 for a negative one
    loss_l = (1/n) Σ_samples softplus(−s (G_l − θ_l))      i.e. p(positive) = σ(G_l − θ_l)
    ∂loss/∂G = −s σ(−s (G − θ))      (−σ(θ − G) for positives, σ(G − θ) for negatives)
    δ_l = ∂loss/∂G · 2 h_l ⊙ σ′(a_l) ⊙ m_l               ∂G/∂a through the activation and dropout
    ΔW_l = δ_lᵀ ĥ_{l−1} / n,   Δb_l = Σ_samples δ_l / n  (positive and negative rows summed)

Between layers only the direction of the activity is passed on: the input of layer l+1 is
ĥ_l = √o · h_l / (‖h_l‖₂ + ε) per sample (o the layer's units: a root-mean-square of 1, so that the
next layer's activities, and its goodness against θ = its units, start at the scale of a raw
input's; with unit length instead, every layer after the first starts with a goodness far below
its threshold and pushes positives and negatives up together, and a 40-64-64-10 net trained by
SGD on a 10-class task stayed at chance), and no gradient crosses it, so each layer learns from
its own normalised input. The walk below (``walk``) is the one network that both training and
prediction run.

Index letters: n batch, i inputs of a layer, o outputs of a layer, c classes; stacked positive
and negative passes carry a leading axis of 2 (row 0 positive, row 1 negative).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bpfree.core.checks import POSITIVE, optional
from bpfree.rules.base import Rule
from bpfree.rules.common.activations import activation_of
from bpfree.rules.common.buffers import addmm_into
from bpfree.rules.common.losses import cross_entropy_error, one_hot
from bpfree.rules.common.walk import DenseLayer, LayerStack

NORM_EPS = 1e-8
"""ε of the layer normalisation ĥ = √o h / (‖h‖₂ + ε): keeps an all-zero activity at zero."""


class ForwardForwardRule(Rule):
    """A rule of the family: it walks the layers the model describes (``self.stack``,
    ``common.walk``) with autograd off, each hidden layer on its own goodness."""

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        stack = LayerStack(model, self.name, self.grads)
        object.__setattr__(self, "stack", stack)
        check_activations(stack.hidden, self.name)


SIGNS = (1.0, -1.0)
"""s of the positive and the negative pass, in the order they are stacked."""


def check_activations(layers: Sequence[DenseLayer], rule_name: str) -> None:
    """Refuse a hidden layer whose derivative the goodness gradient does not know: an unknown
    activation, or an activity normalisation after it (FF normalises between layers itself)."""
    for l, layer in enumerate(layers):
        if layer.normalize is not None:
            raise ValueError(
                f"{rule_name} cannot train hidden layer {l}: it ends in "
                f"{type(layer.normalize).__name__}, and Forward-Forward's goodness is the activity "
                "before any normalisation (it normalises between layers itself); build the model "
                "without it"
            )
        activation_of(layer.activation, rule_name, f"hidden layer {l}")


THRESHOLD = optional(POSITIVE)
"""θ: a positive number, or None for each layer's number of units."""


def thresholds(layers: Sequence[DenseLayer], threshold: float | None) -> list[float]:
    """θ_l per hidden layer: ``threshold``, or the layer's number of units (Hinton's choice for
    sum-of-squares goodness: a mean square activity of 1)."""
    return [threshold or float(layer.linear.out_features) for layer in layers]


def goodness(h: torch.Tensor) -> torch.Tensor:
    """G = Σ_o h_o² (..., o) -> (...)."""
    return h.square().sum(dim=-1)


def normalise(h: torch.Tensor) -> torch.Tensor:
    """ĥ = √o h / (‖h‖₂ + ε) along the last axis (o units): the direction of the activity at a
    root-mean-square of 1, its length removed."""
    norm = torch.linalg.vector_norm(h, dim=-1, keepdim=True).add_(NORM_EPS)
    return h / norm.div_(h.shape[-1] ** 0.5)  # one temporary of h's size, not two


def ff_loss(
    G: torch.Tensor, sign: torch.Tensor, threshold: float, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's FF loss and its derivative per sample, for goodness G (...) of samples of sign s.

    loss = Σ softplus(−s (G − θ)) / n;   ∂(n·loss)/∂G = −s σ(−s (G − θ)) per sample (the 1/n of
    the batch mean is applied when the weight gradient is written).
    """
    z = sign * (G - threshold)
    return F.softplus(-z).sum() / n, torch.sigmoid(-z).mul_(-sign)


def goodness_delta(
    layer: DenseLayer,
    a: torch.Tensor,
    h: torch.Tensor,
    dG: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """δ = ∂loss/∂a = dG · 2h ⊙ σ′(a) ⊙ m, for h = σ(a) ⊙ m of shape (..., o) and dG of (...)."""
    delta = h * (2.0 * dG).unsqueeze(-1)
    activation = activation_of(layer.activation, "Forward-Forward", "a layer")
    if not activation.slope_is_indicator:  # ReLU, identity: h ⊙ σ′(a) = h
        delta.mul_(activation.slope(a))
    if mask is not None:
        delta.mul_(mask)
    return delta


def walk(
    layers: Sequence[DenseLayer], h: torch.Tensor, masks: Iterable[torch.Tensor | None]
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The FF network: yields (input, a, h) of each layer, the next layer's input being ĥ.

    Any leading axes ride along (a stacked (2, n, i) positive/negative batch, or (n, c, i) for
    one pass per label); each mask must broadcast against its layer's output. Only one layer's
    tensors are alive at a time, so memory does not grow with depth, provided the consumer drops
    a layer's tuple before asking for the next: take the layers with ``next(...)`` or a plain
    ``for`` and ``del`` the names, not through ``zip`` or ``enumerate``, whose cached result
    tuple would hold the previous layer while the next one is computed.
    """
    for layer, mask in zip(layers, masks, strict=True):
        a = F.linear(h, layer.linear.weight, layer.linear.bias)
        out = layer.activate(a, mask)
        yield h, a, out
        del a  # freed before the next layer's are made; the input goes as ĥ replaces it
        h = normalise(out)
        del out


def write_summed_grad(layer: DenseLayer, n: int, *pairs: tuple[torch.Tensor, torch.Tensor]) -> None:
    """ΔW = Σ_k δ_kᵀ pre_k / n and Δb = Σ_k Σ_rows δ_k / n into the layer's ``.grad`` buffers.

    Each pair is (δ (r, o), pre (r, i)) with any number of rows r: the positive and negative
    rows of a batch of n samples are summed, then divided by n (not by 2n).
    """
    weight = layer.grads(layer.linear.weight)
    for k, (delta, pre) in enumerate(pairs):
        # 'ro,ri->oi', the first pair overwriting what the last step left
        addmm_into(weight, delta.T, pre, beta=float(k > 0), alpha=1.0 / n)
    if layer.linear.bias is not None:
        bias = layer.grads(layer.linear.bias)
        torch.sum(pairs[0][0], dim=0, out=bias)
        for delta, _ in pairs[1:]:
            bias.add_(delta.sum(dim=0))
        bias.div_(n)


def head_error(
    logits: torch.Tensor, y: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax cross-entropy of the head and its error e = softmax(logits) − t (n, c)."""
    loss, _, e = cross_entropy_error(logits, one_hot(y, num_classes, logits.dtype), y)
    return loss, e


def zero_grad(layer: DenseLayer) -> None:
    """Write a zero update for the layer: the rule does not train it, and the optimizer leaves
    it where it is (plain SGD and Adam; weight decay still shrinks it)."""
    for param in layer.linear.parameters():
        layer.grads.zeros(param)


def head_logits(
    hidden: Sequence[DenseLayer],
    head: DenseLayer,
    x: torch.Tensor,
    masks: Iterable[torch.Tensor | None],
) -> torch.Tensor:
    """The head's logits (n, c) on ĥ_{L−1}, the normalised activity of the last hidden layer."""
    walked = walk(hidden, x, masks)
    for _ in hidden[:-1]:
        next(walked)  # each layer's tensors dropped as soon as they are made
    _, _, h = next(walked)
    return head.forward(normalise(h), None)
