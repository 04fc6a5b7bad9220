"""Plain deep CNNs for 32×32 images: AlexNet and VGG-16, as in the GrAPE paper's Table 2."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bpfree.models._common import check_positive, kaiming_init_

# (out channels, kernel size, max-pool after) of each convolution.
_ALEXNET_CONVS = ((64, 5, True), (192, 5, True), (384, 3, False), (256, 3, False), (256, 3, True))
# VGG configuration D (Simonyan & Zisserman 2015, Table 1): "M" is a 2×2 max-pool.
_VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                 512, 512, 512, "M")  # fmt: skip


class PlainCNN(nn.Module):
    """Conv groups (conv → [BatchNorm] → ReLU → [max-pool]), then FC layers: AlexNet and VGG.

    Each convolution with what follows it up to the next convolution is one block; the first FC
    block starts with an adaptive average pool to ``pool_to`` and a flatten, so the classifier
    sees a fixed number of features; each hidden FC layer (→ ReLU) is one block. Conv weights are
    N(0, 2/fan_out), Linear weights N(0, 0.01²), biases 0, BatchNorm 1 and 0 (torchvision's
    VGG initialisation).

    Structure: ``blocks = [*conv groups, *FC blocks]``, ``head = Linear(fc_widths[-1], c)``.

    Args:
        convs: (out channels, kernel size, max-pool after) of each convolution, padded to keep
            the resolution.
        fc_widths: widths of the hidden FC layers.
        pool_to: spatial size (s, s) of the feature maps fed to the first FC layer.
        num_classes: number of classes c of the logits.
        in_channels: channels of the input images.
        batch_norm: whether each convolution is followed by BatchNorm (then it has no bias).
        generator: random source of the initial weights (default: torch's global one).

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes).
    """

    def __init__(
        self,
        convs: Sequence[tuple[int, int, bool]],
        fc_widths: Sequence[int],
        pool_to: int,
        num_classes: int,
        *,
        in_channels: int = 3,
        batch_norm: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_positive(num_classes=num_classes, in_channels=in_channels)
        self.batch_norm = batch_norm
        blocks: list[nn.Module] = []
        channels = in_channels
        for out_channels, kernel, pool in convs:
            layers: list[nn.Module] = [
                nn.Conv2d(channels, out_channels, kernel, padding=kernel // 2, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
            if pool:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            channels = out_channels
        width = channels * pool_to * pool_to
        for i, out_features in enumerate(fc_widths):
            fc = [nn.Linear(width, out_features), nn.ReLU()]
            if i == 0:
                fc = [nn.AdaptiveAvgPool2d(pool_to), nn.Flatten(), *fc]
            blocks.append(nn.Sequential(*fc))
            width = out_features
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width, num_classes)
        kaiming_init_(self, generator, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"batch_norm={self.batch_norm}"


def alexnet(
    num_classes: int = 10,
    *,
    in_channels: int = 3,
    batch_norm: bool = False,
    generator: torch.Generator | None = None,
) -> PlainCNN:
    """AlexNet sized for 32×32 images: 5 convolutions and 3 FC layers, as Krizhevsky et al. 2012.

    conv 64@5×5 → pool → conv 192@5×5 → pool → conv 384@3×3 → conv 256@3×3 → conv 256@3×3 →
    pool (32 → 4) → FC 1024 → FC 1024 → FC c, ReLU after each hidden layer. The conv widths are
    torchvision's AlexNet; the 11×11 stride-4 first convolution becomes 5×5 stride 1 and the
    3×3 stride-2 pools 2×2, so that 32×32 images keep 4×4 maps (4096 features), and the FC
    layers shrink from 4096 to 1024. The GrAPE paper (Table 2, Fig. 3) trains an AlexNet on
    CIFAR-100 without stating its layers; it notes that batch normalisation helps, hence
    ``batch_norm``. No dropout (GrAPE, Sec. 4.1: "no further regularization").

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes), h and w at least 32 (larger
    maps are average-pooled to 4×4).
    """
    return PlainCNN(
        _ALEXNET_CONVS,
        (1024, 1024),
        4,
        num_classes,
        in_channels=in_channels,
        batch_norm=batch_norm,
        generator=generator,
    )


def vgg16(
    num_classes: int = 10,
    *,
    in_channels: int = 3,
    batch_norm: bool = False,
    width: float = 1.0,
    generator: torch.Generator | None = None,
) -> PlainCNN:
    """VGG-16 for 32×32 images: configuration D's 13 3×3 convolutions, then FC 512 → 512 → c.

    The conv stack is Simonyan & Zisserman's configuration D (64, 64, M, 128, 128, M, 256×3, M,
    512×3, M, 512×3, M); five 2×2 pools leave 512 maps of 1×1 on a 32×32 image, so the
    classifier is the usual CIFAR one, FC 512 → ReLU → FC 512 → ReLU → FC c in place of
    4096-wide layers, keeping 16 weight layers. The GrAPE paper (Table 2) trains VGG-16 on
    CIFAR-100 without stating its classifier, and notes that batch normalisation helps, hence
    ``batch_norm``. No dropout (GrAPE, Sec. 4.1: "no further regularization").

    ``width`` scales every layer's channels and units (0.25: 16 ... 128 channels, FC 128), keeping
    the 16 weight layers; at 1/16 of the compute it is for quick looks on a CPU.

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes), h and w at least 32 (larger
    maps are average-pooled to 1×1).
    """
    if width <= 0:
        raise ValueError(f"width must be positive (1.0 is VGG-16 itself), got {width}")
    convs = []
    for i, item in enumerate(_VGG16_CONFIG):
        if item != "M":
            pool = i + 1 < len(_VGG16_CONFIG) and _VGG16_CONFIG[i + 1] == "M"
            convs.append((max(1, round(item * width)), 3, pool))
    fc = max(1, round(512 * width))
    return PlainCNN(
        convs,
        (fc, fc),
        1,
        num_classes,
        in_channels=in_channels,
        batch_norm=batch_norm,
        generator=generator,
    )
