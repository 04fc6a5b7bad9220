"""Dropout masks of a walked model: one per hidden layer and batch, shared by every pass of the
batch, drawn from torch's global generator as ``nn.Dropout`` draws them.

Index letters: n batch, o a layer's outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from bpfree.rules.common.walk.layers import WalkLayer

MaskStream = Iterator[torch.Tensor | None]


def dropout_masks(
    layers: Sequence[WalkLayer],
    n: int,
    like: torch.Tensor,
    training: bool,
    generator: torch.Generator | None = None,
) -> MaskStream:
    """One mask (n, o) per hidden layer, scaled by 1 / keep (None where there is no dropout),
    drawn layer by layer from ``generator`` (torch's global one by default). No mask is bound
    to a name here while the stream is suspended, so none outlives the layer that took it."""
    for layer in layers:
        if not training or layer.dropout == 0.0:
            yield None
            continue
        yield dropout_mask((n, layer.out_features), 1.0 - layer.dropout, like, generator)


def dropout_mask(
    shape: tuple[int, ...], keep: float, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Units kept with probability ``keep``, scaled by 1 / keep, with ``like``'s dtype and
    device."""
    mask = torch.empty(shape, dtype=like.dtype, device=like.device)
    return mask.bernoulli_(keep, generator=generator).div_(keep)


def replayable_masks(
    layers: Sequence[WalkLayer], n: int, like: torch.Tensor, training: bool
) -> Callable[[], MaskStream]:
    """A function giving, at each call, the same stream of masks (``dropout_masks``): passes that
    share their masks draw them layer by layer and none is held beyond its layer. Each stream
    has its own generator, so streams may be read interleaved. The seed comes from torch's
    global generator, drawn only where a mask will be (a walk without dropout leaves that
    generator alone).

    In a compiled graph the masks are drawn once, by one opaque call from the same seed, and
    every stream gives them (a graph cannot take a generator of its own)."""
    if not training or all(layer.dropout == 0.0 for layer in layers):
        return lambda: dropout_masks(layers, n, like, training)
    if torch.compiler.is_compiling():
        return _drawn_once(layers, n, like)
    seed = int(torch.randint(2**62, ()))

    def replay() -> MaskStream:
        generator = torch.Generator(device=like.device).manual_seed(seed)
        return dropout_masks(layers, n, like, training, generator)

    return replay


def _drawn_once(
    layers: Sequence[WalkLayer], n: int, like: torch.Tensor
) -> Callable[[], MaskStream]:
    """``replayable_masks`` in a compiled graph: the same seed and masks, drawn once."""
    seed = torch.randint(2**62, ())
    dropouts = [layer.dropout for layer in layers if layer.dropout != 0.0]
    widths = [layer.out_features for layer in layers if layer.dropout != 0.0]
    drawn = iter(
        torch.ops.bpfree.seeded_dropout_masks(seed, n, widths, dropouts, like.dtype, like.device)
    )
    masks = [None if layer.dropout == 0.0 else next(drawn) for layer in layers]
    return lambda: iter(masks)


@torch.library.custom_op("bpfree::seeded_dropout_masks", mutates_args=())
def _seeded_dropout_masks(
    seed: torch.Tensor,
    n: int,
    widths: list[int],
    dropouts: list[float],
    dtype: torch.dtype,
    device: torch.device,
) -> list[torch.Tensor]:
    generator = torch.Generator(device=device).manual_seed(int(seed))
    like = torch.empty((), dtype=dtype, device=device)
    return [
        dropout_mask((n, width), 1.0 - dropout, like, generator)
        for width, dropout in zip(widths, dropouts, strict=True)
    ]


@_seeded_dropout_masks.register_fake
def _(seed, n, widths, dropouts, dtype, device):
    return [torch.empty((n, width), dtype=dtype, device=device) for width in widths]


class SharedMasks:
    """The dropout masks of two passes of a batch: ``first_pass()`` draws one mask per hidden
    layer as the pass reaches it and keeps only which units it kept, one byte per unit;
    ``second_pass()`` rebuilds the same masks from those, releasing each as it goes. The masks
    held between the passes take a quarter of float32 activations."""

    def __init__(
        self, layers: Sequence[WalkLayer], n: int, like: torch.Tensor, training: bool
    ) -> None:
        self._stream = dropout_masks(layers, n, like, training)
        self._keep = [1.0 - layer.dropout for layer in layers]
        self._kept: list[torch.Tensor | None] = []
        self._dtype = like.dtype

    def first_pass(self) -> MaskStream:
        yield from map(self._remember, self._stream)  # binds no mask while suspended

    def second_pass(self) -> MaskStream:
        yield from map(self._rebuild, range(len(self._keep)))

    def _remember(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        self._kept.append(None if mask is None else mask != 0)
        return mask

    def _rebuild(self, l: int) -> torch.Tensor | None:
        kept, self._kept[l] = self._kept[l], None
        return None if kept is None else kept.to(self._dtype).div_(self._keep[l])
