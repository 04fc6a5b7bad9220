"""The layers of a walked model: each computes its activity and writes its own update.

A layer is built from the model's ``LayerSpec`` (``bpfree.models.spec``):
h = N(σ(W P(h_prev) + b) ⊙ m). Updates are written straight into ``.grad`` buffers kept
between steps (``GradBuffers``).

Index letters: n batch, i inputs of a layer, o outputs of a layer, c classes, p positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bpfree.rules.common.activations import ACTIVATIONS
from bpfree.rules.common.buffers import GradBuffers, addmm_into
from bpfree.rules.common.walk.pooling import pooled


@dataclass(frozen=True)
class DenseLayer:
    """A ``Linear`` as a walk computes it: h = N(σ(W P(h_prev) + b) ⊙ m)."""

    linear: nn.Linear
    activation: nn.Module
    grads: GradBuffers
    dropout: float = 0.0
    normalize: nn.Module | None = None
    pooling: nn.Module | None = None  # P: the previous layer's pooling, then flattening
    flatten: bool = False

    @property
    def weight(self) -> nn.Parameter:
        return self.linear.weight

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def inputs(self, h: torch.Tensor) -> torch.Tensor:
        """P(h_{l−1}), what the weights multiply."""
        if self.pooling is not None:
            h = pooled(self.pooling, h)
        return h.flatten(1) if self.flatten else h

    def linear_map(self, h: torch.Tensor) -> torch.Tensor:
        """W_l P(h_{l−1}), without the bias."""
        return F.linear(self.inputs(h), self.linear.weight)

    def add_bias(self, a: torch.Tensor) -> torch.Tensor:
        return a if self.linear.bias is None else a + self.linear.bias

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """h_l = N(σ(W_l P(h_{l−1}) + b_l) ⊙ mask)."""
        a = F.linear(self.inputs(h), self.linear.weight, self.linear.bias)
        return self.activate_(a, mask)

    def divisor(self, n: int, positions: int) -> float:
        """What the summed products are divided by: ± n·p, as ``average`` and ``sign`` say."""
        return CONV_AVERAGES[self.average](n, positions) * CONV_SIGNS[self.sign]

    def write_grad(self, post: torch.Tensor, pre: torch.Tensor, n: int) -> None:
        """ΔW = postᵀ P(pre) / n and Δb = Σ post / n into the ``.grad`` buffers ('no,ni->oi').

        ``post`` and ``pre`` may stack several terms along the batch axis (a sum of outer
        products); ``n`` is the batch size they are averaged over."""
        weight = self.grads(self.linear.weight)
        addmm_into(weight, post.T, self.inputs(pre), beta=0.0, alpha=1.0 / n)
        if self.linear.bias is not None:
            torch.sum(post, dim=0, out=self.grads(self.linear.bias)).div_(n)

    def activate(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """N(σ(a) ⊙ mask), from a pre-activation (never written in place)."""
        h = self.activation(a)
        if mask is not None:
            h = h * mask if h is a else h.mul_(mask)
        return h if self.normalize is None else self.normalize(h)

    def activate_(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``activate``, written over the pre-activation ``a`` where σ has an in-place form:
        for a pre-activation nobody reads again, it saves an activity's worth of memory."""
        known = ACTIVATIONS.get(type(self.activation))
        if known is None:
            return self.activate(a, mask)
        h = known.forward_(a)
        if mask is not None:
            h.mul_(mask)
        return h if self.normalize is None else self.normalize(h)


# What a filter's summed products are divided by, from the batch size n and the number p of
# output positions: ICML 2022 Sec. 3.3 step 3 ("divided by the number of summed products", n·p),
# or what the ICML code (GiorgiaD/PEPITA, main_pytorch.py) divides by: `compute_delta_w_conv`
# averages over the batch and the positions (or √p with its --sqrt_conv), then the weight change
# is divided by the batch size once more.
CONV_AVERAGES: dict[str, Callable[[int, int], float]] = {
    "products": lambda n, p: n * p,
    "reference-code": lambda n, p: n * n * p,
    "reference-code-sqrt": lambda n, p: n * n * math.sqrt(p),
}

# The sign a filter update is written with. The optimizer descends what a rule writes, W ← W −
# η ΔW. "paper": ΔW as Sec. 3.3 and eqs. 3-4 give it, the same sign as the dense layers.
# "reference-code": −ΔW, as the ICML code (main_pytorch.py) applies it: its dense layers set
# delta_w = −(...) (l.443, l.463) but its convolution delta_w = compute_delta_w_conv(...)
# without the minus (l.481-487), and all are applied as w += eta · delta_w / batch_size
# (l.500-503), so its filters move by +η ΔW.
CONV_SIGNS: dict[str, float] = {"paper": 1.0, "reference-code": -1.0}


@dataclass(frozen=True)
class ConvLayer:
    """A ``Conv2d`` as a walk computes it: h = σ(W ⋆ P(h_prev) + b), no dropout.

    Its update for a post-synaptic map δ (n, o, p) and presynaptic maps (ICML 2022 Sec. 3.3):
    for every output element, δ times the input patch the filter saw there; all these products
    summed, then divided by their number n·p (``average="products"``; the other entries of
    ``CONV_AVERAGES`` divide as the paper's code does), and written with the ``sign`` of
    ``CONV_SIGNS``. The sum is one correlation of the input with δ, ``conv2d_weight``, the same
    one a convolution's weight gradient is.
    """

    conv: nn.Conv2d
    activation: nn.Module
    grads: GradBuffers
    pooling: nn.Module | None = None
    average: str = "products"
    sign: str = "paper"
    dropout: float = 0.0
    normalize: None = None

    @property
    def weight(self) -> nn.Parameter:
        return self.conv.weight

    def inputs(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.pooling is None else pooled(self.pooling, h)

    def linear_map(self, h: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv2d(self.inputs(h), c.weight, None, c.stride, c.padding, c.dilation, c.groups)

    def add_bias(self, a: torch.Tensor) -> torch.Tensor:
        return a if self.conv.bias is None else a + self.conv.bias.view(-1, 1, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.activate_(self.add_bias(self.linear_map(h)), mask)

    def activate(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.activation(a)

    def activate_(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        known = ACTIVATIONS.get(type(self.activation))
        return self.activate(a, mask) if known is None else known.forward_(a)

    def divisor(self, n: int, positions: int) -> float:
        """What the summed products are divided by: ± n·p, as ``average`` and ``sign`` say."""
        return CONV_AVERAGES[self.average](n, positions) * CONV_SIGNS[self.sign]

    def write_grad(self, post: torch.Tensor, pre: torch.Tensor, n: int) -> None:
        """ΔW[o, i, k] = Σ_{n,p} δ[n, o, p] P(pre)[n, i, p + k] / (n·p); Δb = Σ δ / (n·p)
        (n·p as ``average`` says, times the ``sign``)."""
        c = self.conv
        divisor = self.divisor(n, post.shape[-2] * post.shape[-1])
        delta = torch.nn.grad.conv2d_weight(
            self.inputs(pre), c.weight.shape, post, c.stride, c.padding, c.dilation, c.groups
        )
        self.grads(c.weight).copy_(delta).div_(divisor)
        if c.bias is not None:
            torch.sum(post, dim=(0, 2, 3), out=self.grads(c.bias)).div_(divisor)


WalkLayer = DenseLayer | ConvLayer


def first_layer_maps(
    layer: WalkLayer, x: torch.Tensor, columns: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_1 x + b_1, W_1 columns): the clean pre-activation and the first layer's map of inputs
    shaped like x (F's columns, for W_1 F). For a dense layer wider than the batch both come from
    one product W_1 [x; columns], which reads W_1 once: copying x (n × i) costs less than reading
    W_1 (o × i) twice. Otherwise from two products, copying nothing."""
    n = x.shape[0]
    if isinstance(layer, DenseLayer) and n < layer.weight.shape[0]:
        a, mapped = layer.linear_map(torch.cat([x, columns])).split([n, columns.shape[0]])
    else:
        a, mapped = layer.linear_map(x), layer.linear_map(columns)
    return layer.add_bias(a), mapped
