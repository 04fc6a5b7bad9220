"""The image models by name, built for a dataset's input shape (C, H, W) and class count."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from bpfree.models.convnet import PepitaConvNet
from bpfree.models.lenet import LeNet, LeNet4
from bpfree.models.mlp import MLP
from bpfree.models.resnet import resnet18, resnet20
from bpfree.models.vgg import alexnet, vgg16

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "pepita-conv": PepitaConvNet,
    "lenet": LeNet,
    "lenet4": LeNet4,
    "resnet20": resnet20,
    "resnet18": resnet18,
    "alexnet": alexnet,
    "vgg16": vgg16,
}

# The options build_model passes on to each model; the rest of its arguments come from the
# input shape and the class count.
_OPTIONS: dict[str, tuple[str, ...]] = {
    "mlp": ("hidden", "activation", "dropout", "bias", "normalization", "generator"),
    "pepita-conv": ("generator",),
    "lenet": ("generator",),
    "lenet4": ("generator",),
    "resnet20": ("generator",),
    "resnet18": ("stem", "generator"),
    "alexnet": ("batch_norm", "generator"),
    "vgg16": ("batch_norm", "width", "generator"),
}

# The smallest height and width each model takes: what leaves its last feature maps at least
# 1×1 (4×4 for AlexNet's classifier) without leaning on padding.
_MIN_SIZE: dict[str, int] = {
    "mlp": 1,
    "pepita-conv": 6,  # 5×5 unpadded conv, 2×2 pool
    "lenet": 12,  # padded 5×5 conv, pool, unpadded 5×5 conv, pool
    "lenet4": 12,
    "resnet20": 4,  # two stride-2 stages
    "resnet18": 8,  # three stride-2 stages; 32 with the ImageNet stem
    "alexnet": 32,  # three 2×2 pools to 4×4 maps
    "vgg16": 32,  # five 2×2 pools to 1×1 maps
}


def build_model(
    name: str, *, input_shape: tuple[int, int, int], num_classes: int, **options: Any
) -> nn.Module:
    """Build model ``name`` for images of ``input_shape`` (C, H, W) and ``num_classes`` classes.

    The input shape sets each model's input channels and, where it has them, image size; for
    ``"mlp"`` it sets ``sizes = (C·H·W, *hidden, num_classes)``. ``options`` go to the model:

    - ``mlp``: ``hidden`` (widths of the hidden layers, default ``[1024]``), ``activation``,
      ``dropout``, ``bias``, ``generator``;
    - ``resnet18``: ``stem`` (``"cifar"`` or ``"imagenet"``), ``generator``;
    - ``alexnet``: ``batch_norm``, ``generator``; ``vgg16``: ``batch_norm``, ``width``,
      ``generator``;
    - the others: ``generator``.

    Raises:
        ValueError: for an unknown name or option, or an input shape the model cannot take.

    Example:
        >>> model = build_model("lenet", input_shape=(1, 28, 28), num_classes=10)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {sorted(MODELS)}")
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for model {name!r}; valid: {sorted(_OPTIONS[name])}"
        )
    c, h, w = _check_shape(input_shape)
    least = 32 if name == "resnet18" and options.get("stem") == "imagenet" else _MIN_SIZE[name]
    if h < least or w < least:
        model = f"{name} (stem='imagenet')" if least != _MIN_SIZE[name] else name
        raise ValueError(
            f"model {model} cannot take input_shape {(c, h, w)}: it needs images of at least "
            f"{least}×{least}, got {h}×{w}"
        )
    if name == "mlp":
        hidden = options.pop("hidden", [1024])
        if isinstance(hidden, str | int) or not isinstance(hidden, Sequence):
            raise ValueError(f"hidden must be a list of layer widths, e.g. [1024], got {hidden!r}")
        return MODELS[name](sizes=(math.prod((c, h, w)), *hidden, num_classes), **options)
    if name in ("pepita-conv", "lenet", "lenet4"):
        options["image_size"] = (h, w)
    return MODELS[name](in_channels=c, num_classes=num_classes, **options)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``input_shape`` as three positive ints (C, H, W), or a ``ValueError`` saying why not."""
    try:
        shape = tuple(operator.index(d) for d in input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (channels, height, width), three positive integers, "
            f"got {input_shape!r}"
        )
    return shape
