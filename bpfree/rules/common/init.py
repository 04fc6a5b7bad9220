"""How feedback tensors are drawn: each distribution written once, from an explicit generator."""

from __future__ import annotations

import math

import torch


def he_uniform_bound(weight: torch.Tensor) -> float:
    """√(6 / fan_in) of a Linear or Conv2d weight: the He-uniform bound."""
    return math.sqrt(6.0 / weight[0].numel())


def he_uniform_like_transposed(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A Wᵀ-shaped tensor drawn like W (uniform in ±√(6 / fan_in)), on W's device and dtype."""
    bound = he_uniform_bound(weight)
    b = torch.empty(weight.shape, dtype=weight.dtype).uniform_(-bound, bound, generator=generator)
    return b.transpose(0, 1).contiguous().to(weight.device)


def uniform_feedback(
    n_inputs: int, n_classes: int, f_scale: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """F (i, c), uniform in ±f_scale·√(6 / i) (ICML 2022 Table 2: f_scale = 0.05), so that
    std(F) = f_scale·√(2 / i); with ``like``'s dtype and device."""
    bound = f_scale * math.sqrt(6.0 / n_inputs)
    F = torch.empty(n_inputs, n_classes, dtype=like.dtype)
    F.uniform_(-bound, bound, generator=generator)
    return F.to(like.device)


def glorot_uniform_(
    tensor: torch.Tensor, generator: torch.Generator, gain: float = 1.0
) -> torch.Tensor:
    """Glorot-uniform in place: bound gain·√(6 / (fan_in + fan_out)) of the (out, in, ...) view."""
    receptive = tensor[0][0].numel() if tensor.dim() > 2 else 1
    fan_in, fan_out = tensor.shape[1] * receptive, tensor.shape[0] * receptive
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return tensor.uniform_(-bound, bound, generator=generator)
