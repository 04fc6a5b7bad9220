"""Max-pooling for a walk without autograd, taken as a maximum over strided slices on the CPU
(eagerly)."""

from __future__ import annotations

import torch
from torch import nn


def pooled(pool: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``pool(h)``; on the CPU a max-pooling whose windows tile the map (kernel = stride, no
    padding or dilation) is taken as a maximum over strided slices, rows then columns. A walk
    without autograd needs no argmax, and PyTorch's CPU kernel, which computes one, is several
    times slower (about 25 against 3 ms for 100 × 32 × 28 × 28 maps, one thread); the values
    are the same. Inside a compiled graph ``pool(h)``, inductor's own pooling: its code for the
    strided slices measured slower (docs/results.md, the conv suite compiled)."""
    window = tiling_window(pool)
    if window is None or h.device.type != "cpu" or torch.compiler.is_compiling():
        return pool(h)
    (kh, kw), (rows, cols) = window, (h.shape[-2] // window[0], h.shape[-1] // window[1])
    maxima = h[..., 0 : rows * kh : kh, : cols * kw]
    for i in range(1, kh):
        maxima = torch.maximum(maxima, h[..., i : rows * kh : kh, : cols * kw])
    out = maxima[..., 0::kw]
    for j in range(1, kw):
        out = torch.maximum(out, maxima[..., j::kw])
    return out


def tiling_window(pool: nn.Module) -> tuple[int, int] | None:
    """(kh, kw) of a max-pooling larger than 1 × 1 whose windows tile its input, else None."""
    if not isinstance(pool, nn.MaxPool2d) or pool.ceil_mode or pool.return_indices:
        return None

    def pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
        return tuple(value) if isinstance(value, tuple | list) else (value, value)

    kernel, stride = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size)
    if kernel != stride or pair(pool.padding) != (0, 0) or pair(pool.dilation) != (1, 1):
        return None
    return None if kernel == (1, 1) else kernel
