"""Residual networks: the CIFAR ResNet-20 and ResNet-18 (He et al. 2016)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bpfree.models._common import check_positive, kaiming_init_

STEMS = ("cifar", "imagenet")


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers and a shortcut: relu(bn₂(conv₂(relu(bn₁(conv₁(x))))) + s(x)).

    The shortcut s is the identity when the shape is kept, else a 1×1 convolution with the
    block's stride followed by BatchNorm (He et al. 2016, option B). The residual addition is out
    of place and every ReLU is its own module, so hooks and replaced layers see each op.

    Shapes: x (n, c_in, h, w) → (n, c_out, ⌈h/stride⌉, ⌈w/stride⌉).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class ResNet(nn.Module):
    """A stem, stages of ``BasicBlock`` s, global average pooling and a linear classifier.

    Stage i has ``depths[i]`` blocks of ``widths[i]`` channels; every stage but the first halves
    the resolution in its first block. Conv weights are N(0, 2/fan_out), BatchNorm weights 1 and
    biases 0, the classifier PyTorch's default U(±1/√fan_in) (torchvision's initialisation).

    Structure: ``blocks = [stem, *BasicBlocks]``, ``head = Sequential(AdaptiveAvgPool2d(1),
    Flatten, Linear)``; ``forward(x) = head(blocks[-1](...blocks[0](x)))``.

    Args:
        depths: number of blocks in each stage.
        widths: channels of each stage.
        num_classes: number of classes c of the logits.
        in_channels: channels of the input images.
        stem: ``"cifar"``, a 3×3 stride-1 conv-BN-ReLU to ``widths[0]`` channels; or
            ``"imagenet"``, a 7×7 stride-2 conv-BN-ReLU and a 3×3 stride-2 max-pool.
        generator: random source of the initial weights (default: torch's global one).

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes).
    """

    def __init__(
        self,
        depths: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        *,
        in_channels: int = 3,
        stem: str = "cifar",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_positive(num_classes=num_classes, in_channels=in_channels)
        if len(depths) != len(widths) or not depths:
            raise ValueError(f"need one width per stage, got depths {depths}, widths {widths}")
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; valid: {list(STEMS)}")
        self.stem = stem
        if stem == "cifar":
            first = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 3, 1, padding=1, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(),
            )
        else:
            first = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 7, 2, padding=3, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, padding=1),
            )
        blocks: list[nn.Module] = [first]
        channels = widths[0]
        for stage, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(channels, width, stride))
                channels = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
        )
        kaiming_init_(self, generator, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"stem={self.stem!r}"


def resnet20(
    num_classes: int = 10, *, in_channels: int = 3, generator: torch.Generator | None = None
) -> ResNet:
    """ResNet-20 for 32×32 images (He et al. 2016, Sec. 4.2, n = 3), with option-B shortcuts.

    A 3×3 conv of 16 maps, then 3 stages of 3 ``BasicBlock`` s with 16, 32, 64 channels (the
    second and third starting at stride 2), global average pooling and an FC layer: 20 weight
    layers, 272,474 parameters for 10 classes (269,722 with the paper's parameter-free option-A
    shortcuts; the two 1×1 conv-BN projections add 576 + 2,176).

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes); 32×32 in the paper.
    """
    return ResNet(
        (3, 3, 3), (16, 32, 64), num_classes, in_channels=in_channels, generator=generator
    )


def resnet18(
    num_classes: int = 10,
    *,
    in_channels: int = 3,
    stem: str = "cifar",
    generator: torch.Generator | None = None,
) -> ResNet:
    """ResNet-18 (He et al. 2016, Table 1): 4 stages of 2 ``BasicBlock`` s, 64 to 512 channels.

    ``stem="imagenet"`` is the paper's 7×7 stride-2 conv and 3×3 max-pool (32× down-sampling in
    all); ``stem="cifar"`` is the common CIFAR adaptation, a 3×3 stride-1 conv and no max-pool
    (8× down-sampling), 11,173,962 parameters for 10 classes.

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes).
    """
    return ResNet(
        (2, 2, 2, 2),
        (64, 128, 256, 512),
        num_classes,
        in_channels=in_channels,
        stem=stem,
        generator=generator,
    )
