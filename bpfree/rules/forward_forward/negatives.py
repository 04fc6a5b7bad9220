"""Forward-Forward's data: labels embedded in the input, and the negative samples of Hinton 2022.

Supervised FF (Hinton 2022, Sec. 3.3) writes the label into the input: a positive sample carries
its true label, a negative one a wrong label. Unsupervised FF (Sec. 3.2) contrasts real images with
hybrids of two images cut by a blurry mask, which share short-range but not long-range
correlations with real ones.

Draws come from the rule's ``RandomStream`` (on the CPU) and are moved to the data's device.
Index letters: n batch, i features, c classes, h w the image's height and width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bpfree.rules.common.streams import RandomStream


def embed_labels(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """x (n, i) with its first c features overwritten by the one-hot label of y (n,)."""
    out = x.clone()
    out[:, :num_classes] = 0.0
    out[torch.arange(x.shape[0], device=x.device), y] = 1.0
    return out


def wrong_labels(
    y: torch.Tensor,
    num_classes: int,
    stream: RandomStream,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """A label drawn uniformly among the c − 1 labels that differ from each y (n,).

    With ``rows`` = (start, total), y are rows start:start + n of a batch of ``total``, and the
    shifts are drawn for the whole batch (as a replica of a data-parallel run must)."""
    start, total = rows if rows is not None else (0, y.shape[0])
    shift = stream.integers(1, num_classes, (total,))
    return (y + shift[start : start + y.shape[0]].to(y.device)) % num_classes


def partners(
    n: int,
    stream: RandomStream,
    device: torch.device,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """A random derangement of range(n): sample k is paired with another sample, never itself.

    A random order is cut into one cycle, each sample taking the next one in that order. With
    ``rows`` = (start, total) the order is drawn over the whole batch of ``total`` and the n
    rows from ``start`` keep their places in it: the pairs stay within these rows.
    """
    if n < 2:
        raise ValueError(f"hybrid negatives mix two images of a batch: need n ≥ 2, got n = {n}")
    start, total = rows if rows is not None else (0, n)
    order = stream.permutation(total)
    if total != n:  # the n rows' places in the order: first in a stable sort by "outside"
        outside = (order < start) | (order >= start + n)
        order = order[outside.to(torch.uint8).argsort(stable=True)[:n]] - start
    partner = torch.empty_like(order)
    partner[order] = order.roll(-1)
    return partner.to(device)


def blur(image: torch.Tensor, dim: int) -> torch.Tensor:
    """One pass of the filter [1/4, 1/2, 1/4] along ``dim``, the edges replicated."""
    size = image.shape[dim]
    padded = torch.cat([image.narrow(dim, 0, 1), image, image.narrow(dim, size - 1, 1)], dim)
    neighbours = padded.narrow(dim, 0, size) + padded.narrow(dim, 2, size)
    return neighbours.mul_(0.25).add_(image, alpha=0.5)


def hybrid_masks(
    n: int, height: int, width: int, *, blur_steps: int, stream: RandomStream
) -> torch.Tensor:
    """Masks (n, h, w) in {0, 1} with large regions of ones and zeros (Hinton 2022, Sec. 3.2).

    A random bit image is blurred ``blur_steps`` times with [1/4, 1/2, 1/4] horizontally and
    vertically, then thresholded at 0.5.
    """
    mask = stream.integers(0, 2, (n, height, width)).to(torch.float32)
    for _ in range(blur_steps):
        mask = blur(blur(mask, 2), 1)
    return (mask > 0.5).to(torch.float32)


def hybrids(
    x: torch.Tensor,
    image_shape: Sequence[int],
    *,
    blur_steps: int,
    stream: RandomStream,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Negative samples (n, i): mask ⊙ x_a + (1 − mask) ⊙ x_b, x_b another image of the batch.

    ``image_shape`` is (h, w) or (channels, h, w); one mask serves all channels of an image.
    With ``rows`` = (start, total) the masks are drawn for the whole batch and x_b is another of
    the rows of x (a replica of a data-parallel run has no other).
    """
    n = x.shape[0]
    start, total = rows if rows is not None else (0, n)
    height, width = image_shape[-2:]
    mask = hybrid_masks(total, height, width, blur_steps=blur_steps, stream=stream)
    channels = [1] * (len(image_shape) - 2)
    mask = mask[start : start + n].to(device=x.device, dtype=x.dtype)
    mask = mask.view(n, *channels, height, width)
    other = x[partners(n, stream, x.device, rows)].reshape(n, *image_shape)
    return torch.lerp(other, x.reshape(n, *image_shape), mask).reshape(n, -1)


def resolve_image_shape(given: Sequence[int] | None, batch_shape: torch.Size) -> tuple[int, ...]:
    """The (h, w) or (channels, h, w) shape hybrids are cut in: ``given``, else the batch's own.

    A flat batch (n, i) carries no image shape: that is an error unless ``image_shape`` is given.
    """
    if given is not None:
        return tuple(given)
    sample = tuple(batch_shape[1:])
    if len(sample) < 2:
        raise ValueError(
            f"negatives='hybrid' cuts images with 2-D masks, but the batch is flat "
            f"{tuple(batch_shape)}: pass image-shaped inputs (n, h, w) or (n, channels, h, w), "
            "or give image_shape=(h, w) or (channels, h, w)"
        )
    if len(sample) > 3:
        sample = (math.prod(sample[:-2]), *sample[-2:])
    return sample


def check_image_shape(image_shape: Sequence[int] | None, features: int) -> tuple[int, ...] | None:
    """``image_shape`` as a tuple of 2 or 3 positive ints whose product is the input width."""
    if image_shape is None:
        return None
    shape = tuple(image_shape)
    if not (
        len(shape) in (2, 3)
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
        and math.prod(shape) == features
    ):
        raise ValueError(
            f"image_shape must be (h, w) or (channels, h, w) of positive ints whose product is "
            f"the model's {features} input features, got {image_shape!r}"
        )
    return shape
