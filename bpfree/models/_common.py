"""Construction helpers the model files share: argument checks and the standard initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from bpfree.core.checks import POSITIVE_INT


def check_positive(**values: int) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        POSITIVE_INT(value, name)


def image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """``image_size`` as (h, w): an int means a square image."""
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(hw) != 2:
        raise ValueError(f"image_size must be an int or an (h, w) pair, got {image_size!r}")
    check_positive(image_height=hw[0], image_width=hw[1])
    return hw


INITS = ("he-uniform", "torch-default")


def he_uniform_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``weight`` (out, in, ...) from U[-√(6/fan_in), √(6/fan_in)] (He et al. 2015)."""
    fan_in = weight[0].numel()
    bound = math.sqrt(6.0 / fan_in)
    with torch.no_grad():
        return weight.uniform_(-bound, bound, generator=generator)


def initialize_(layer: nn.Linear | nn.Conv2d, init: str, generator: torch.Generator | None) -> None:
    """Draw a layer's weights and bias from ``generator``, as ``init`` names:

    ``"he-uniform"``: W from U(±√(6/fan_in)), b = 0 (the PEPITA paper's Table 2);
    ``"torch-default"``: W and b from U(±1/√fan_in), the distribution of PyTorch's
    ``nn.Linear``/``nn.Conv2d`` ``reset_parameters`` (Kaiming-uniform with a = √5), which the
    ICML conv script and Frenkel et al.'s DRTP code keep.
    """
    if init == "he-uniform":
        he_uniform_(layer.weight, generator)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
        return
    bound = 1.0 / math.sqrt(layer.weight[0].numel())
    for tensor in (layer.weight, layer.bias):
        if tensor is not None:
            nn.init.uniform_(tensor, -bound, bound, generator=generator)


def kaiming_init_(
    model: nn.Module, generator: torch.Generator | None, *, linear_std: float | None
) -> None:
    """The torchvision initialisation of ResNets and VGGs, drawn from ``generator``.

    Conv2d weights from N(0, 2/fan_out) (He et al. 2015, fan-out mode), conv biases zero;
    BatchNorm weight 1 and bias 0; Linear weights from N(0, linear_std²) with zero biases, or, when
    ``linear_std`` is None, PyTorch's default U(±1/√fan_in) for weights and biases.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(
                module.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            if linear_std is None:
                bound = 1.0 / math.sqrt(module.in_features)
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                if module.bias is not None:
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            else:
                nn.init.normal_(module.weight, 0.0, linear_std, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
