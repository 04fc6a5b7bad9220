"""The math of each weighted layer type, written once and dispatched by type: forward, the input
gradient through a stand-in for W, and the exact weight and bias gradients.

The feedback family sends errors through stand-ins; the forward gradients correlate their
estimates with a layer's input. Every feedback tensor has the shape of Wᵀ: (i, o) for a Linear
of weight (o, i), and the kernel with its two channel axes swapped, (i/g, o, kh, kw), for a
Conv2d of kernel (o, i/g, kh, kw). Setting it to Wᵀ gives backpropagation exactly.

Index letters: n batch, i input features or channels, o outputs, k intermediate units (PFA),
h w spatial positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class LayerOps:
    """Forward, input gradient through a stand-in for W, and exact weight and bias gradients."""

    def forward(self, x, weight, bias, config):
        raise NotImplementedError

    def input_grad(self, grad_y, kernel, x, config) -> torch.Tensor:
        """δx for δy, were ``kernel`` (W-shaped) the forward weight; only x's shape is read."""
        raise NotImplementedError

    def weight_grad(self, x, grad_y, weight, config) -> torch.Tensor:
        """δW = the exact weight gradient for the error δy at this layer's output."""
        raise NotImplementedError

    def input_and_weight_grads(
        self, grad_y, kernel, x, weight, config, *, weight_grad: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(δx through ``kernel`` as ``input_grad``, the exact δW or None without
        ``weight_grad``): a feedback layer's backward."""
        grad_w = self.weight_grad(x, grad_y, weight, config) if weight_grad else None
        return self.input_grad(grad_y, kernel, x, config), grad_w

    def bias_grad(self, grad_y) -> torch.Tensor:
        raise NotImplementedError

    def mix(self, grad_y, matrix) -> torch.Tensor:
        """δy (n, o, ...) mapped through a (k, o) matrix at every position: (n, k, ...)."""
        raise NotImplementedError

    @staticmethod
    def transpose(tensor: torch.Tensor) -> torch.Tensor:
        """Swap the two leading axes: W ↔ Wᵀ for matrices and kernels alike."""
        return tensor.transpose(0, 1)


class LinearOps(LayerOps):
    """y = x Wᵀ + b over any leading axes."""

    def forward(self, x, weight, bias, config):
        return F.linear(x, weight, bias)

    def input_grad(self, grad_y, kernel, x, config):
        return (grad_y @ kernel).reshape(x.shape)  # δx = δy W̃: 'no,oi->ni'

    def weight_grad(self, x, grad_y, weight, config):
        return _rows(grad_y).T @ _rows(x)  # δW = δyᵀ x: 'no,ni->oi'

    def bias_grad(self, grad_y):
        return _rows(grad_y).sum(0)

    def mix(self, grad_y, matrix):
        return grad_y @ matrix.T  # 'no,ko->nk'


@dataclass(frozen=True)
class ConvConfig:
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


class Conv2dOps(LayerOps):
    """y = W ⋆ x + b, a 2-d cross-correlation with any stride, padding, dilation and groups."""

    def forward(self, x, weight, bias, config: ConvConfig):
        return F.conv2d(
            x, weight, bias, config.stride, config.padding, config.dilation, config.groups
        )

    def input_grad(self, grad_y, kernel, x, config: ConvConfig):
        return self._backward(grad_y, x, kernel, config, (True, False))[0]

    def weight_grad(self, x, grad_y, weight, config: ConvConfig):
        return self._backward(grad_y, x, weight, config, (False, True))[1]

    def input_and_weight_grads(self, grad_y, kernel, x, weight, config, *, weight_grad=True):
        if weight_grad and torch.compiler.is_compiling():
            # One call, as autograd's own backward of a convolution: δW reads x and δy, not the
            # kernel. Apart, the input-gradient call takes x too (for its shape), and a graph
            # that lays x out apart from δy copies δy into x's layout at every layer and step.
            # Eagerly the two calls, whose numbers the same-weights digests record.
            return self._backward(grad_y, x, kernel, config, (True, True))
        return super().input_and_weight_grads(
            grad_y, kernel, x, weight, config, weight_grad=weight_grad
        )

    def bias_grad(self, grad_y):
        return grad_y.sum((0, 2, 3))

    def mix(self, grad_y, matrix):
        return torch.einsum("nohw,ko->nkhw", grad_y, matrix)

    @staticmethod
    def _backward(grad_y, x, kernel, config: ConvConfig, mask):
        return torch.ops.aten.convolution_backward(
            grad_y,
            x,
            kernel,
            None,
            config.stride,
            config.padding,
            config.dilation,
            False,
            (0, 0),
            config.groups,
            (*mask, False),
        )[:2]


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


OPS: dict[type[nn.Module], LayerOps] = {nn.Linear: LinearOps(), nn.Conv2d: Conv2dOps()}


def ops_for(layer: nn.Module) -> LayerOps:
    """The math of ``layer``'s type."""
    return OPS[type(layer) if type(layer) in OPS else _supported_base(layer)]


def _supported_base(layer: nn.Module) -> type[nn.Module]:
    return next(base for base in OPS if isinstance(layer, base))


def conv_config(args: tuple[Any, ...], kwargs: dict[str, Any], kernel_size) -> ConvConfig:
    """The stride, padding, dilation and groups of an ``F.conv2d`` call, as pairs of ints."""
    names = ("stride", "padding", "dilation", "groups")
    defaults = dict(zip(names, (1, 0, 1, 1), strict=True))
    values = {**defaults, **dict(zip(names, args, strict=False)), **kwargs}
    return _config(values, kernel_size)


def layer_config(layer: nn.Module) -> ConvConfig | None:
    """The geometry of a ``Conv2d`` layer (None for a ``Linear``); only zero padding."""
    if not isinstance(layer, nn.Conv2d):
        return None
    if layer.padding_mode != "zeros":
        raise ValueError(f"padding_mode {layer.padding_mode!r} is not supported: only 'zeros'")
    values = {
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "groups": layer.groups,
    }
    return _config(values, layer.kernel_size)


def _config(values: dict[str, Any], kernel_size) -> ConvConfig:
    pair = torch.nn.modules.utils._pair
    dilation = pair(values["dilation"])
    padding = values["padding"]
    if padding == "valid":
        padding = 0
    elif padding == "same":
        total = [d * (k - 1) for d, k in zip(dilation, kernel_size, strict=True)]
        if any(t % 2 for t in total):
            raise ValueError(
                "padding='same' with an even kernel extent pads unevenly; pad explicitly"
            )
        padding = tuple(t // 2 for t in total)
    return ConvConfig(pair(values["stride"]), pair(padding), dilation, int(values["groups"]))
