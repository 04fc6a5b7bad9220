"""Forward-mode tangents of linear maps without the product of a zero tangent.

Under ``torch.autograd.forward_ad`` a linear layer y = x Wᵀ + b has the tangent
ẏ = ẋ Wᵀ + x Ẇᵀ + ḃ. When only one of x and W carries a tangent, as at the first layer of a
weight-perturbed network (x is data) or at every layer after an activity perturbation (W is not
perturbed), PyTorch still computes the other product, on a tensor of zeros: a whole forward
product spent for nothing. ``forward_mode()`` computes such a layer's tangent from the one
side that has one, with the same products, so the numbers are the ones forward AD gives:

    ẏ = ẋ Wᵀ (+ ḃ)          x without a tangent is not perturbed
    ẏ = x Ẇᵀ (+ ḃ)          W without a tangent

and leaves every other call (both sides perturbed, or neither) to forward AD. The same holds
for convolutions, which are linear in the input and in the filters alike. Each tangent is
summed in the order PyTorch's own formula sums it (``addmm``'s, ``convolution_jvp``'s), so the
tangents are bitwise those of forward AD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# The linear maps handled, each called as (input, weight, bias, *options).
LINEAR_MAPS: tuple[Callable, ...] = (F.linear, F.conv1d, F.conv2d, F.conv3d)


def _split(value: Any) -> tuple[Any, torch.Tensor | None]:
    """(primal, tangent) of a tensor, the tangent None where it has none; (value, None) of
    anything else."""
    if isinstance(value, torch.Tensor):
        return tuple(fwAD.unpack_dual(value))
    return value, None


class _OneSidedTangents(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in LINEAR_MAPS or len(args) < 2:
            return func(*args, **kwargs)
        x, w, *rest = args
        b = rest[0] if rest else kwargs.get("bias")
        rest = rest[1:]
        options = {k: v for k, v in kwargs.items() if k != "bias"}
        x_primal, x_tangent = _split(x)
        w_primal, w_tangent = _split(w)
        if (x_tangent is None) == (w_tangent is None):  # both sides, or neither: forward AD
            return func(*args, **kwargs)
        b_primal, b_tangent = _split(b)
        primal = func(x_primal, w_primal, b_primal, *rest, **options)
        if x_tangent is None and func is not F.linear:
            # convolution_jvp's tangent: the filters' tangent and ḃ in one convolution
            tangent = func(x_primal, w_tangent, b_tangent, *rest, **options)
        else:  # addmm's (and a convolution's by its input): ḃ + ẋ Wᵀ, or ḃ + x Ẇᵀ
            if x_tangent is not None:
                tangent = func(x_tangent, w_primal, None, *rest, **options)
            else:
                tangent = func(x_primal, w_tangent, None, *rest, **options)
            if b_tangent is not None:
                tangent = _bias(func, b_tangent, tangent.dim()) + tangent
        return fwAD.make_dual(primal, tangent)


def _bias(func: Callable, b: torch.Tensor, dim: int) -> torch.Tensor:
    """A bias shaped to add to an output of ``dim`` dimensions: per feature, per channel."""
    return b if func is F.linear else b.view(-1, *([1] * (dim - 2)))


@contextmanager
def forward_mode() -> Iterator[None]:
    """``fwAD.dual_level()`` in which linear maps skip the product of a zero tangent."""
    with fwAD.dual_level(), _OneSidedTangents():
        yield
