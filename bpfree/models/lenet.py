"""LeNet-style CNNs: LeNet-5 and the shallower LeNet-4 of the GrAPE paper."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from bpfree.models._common import check_positive, he_uniform_, image_hw


class _LeNetFamily(nn.Module):
    """Two conv groups (6@5×5 padded by 2, 16@5×5, each → ReLU → 2×2 max-pool), then FCs.

    The first convolution is padded by 2 so that a 28×28 image is seen as LeCun et al. (1998) saw
    MNIST, centred in a 32×32 field. An (h, w) image leaves 16 maps of
    ((h//2 - 4)//2, (w//2 - 4)//2): 16·5·5 = 400 features for 28×28, 16·6·6 = 576 for 32×32.
    Weights are He-uniform and biases zero, like the library's other ReLU networks.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        image_size: int | tuple[int, int],
        fc_widths: Sequence[int],
        generator: torch.Generator | None,
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, num_classes=num_classes)
        h, w = image_hw(image_size)
        if h < 12 or w < 12:
            raise ValueError(
                f"{type(self).__name__} needs images of at least 12×12 (two 5×5 convolutions "
                f"and two 2×2 poolings), got image_size {(h, w)}"
            )
        self.image_size = (h, w)
        features = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
        widths = (features, *fc_widths)
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)),
                nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)),
                nn.Sequential(nn.Flatten(), nn.Linear(widths[0], widths[1]), nn.ReLU()),
                *(
                    nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU())
                    for n_in, n_out in itertools.pairwise(widths[1:])
                ),
            ]
        )
        self.head = nn.Linear(widths[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                he_uniform_(module.weight, generator)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}"


class LeNet(_LeNetFamily):
    """LeNet-5 with ReLU and max-pooling, for MNIST-like and CIFAR-like images.

    conv 6@5×5 (padding 2) → ReLU → max-pool 2 → conv 16@5×5 → ReLU → max-pool 2 → flatten →
    FC 120 → ReLU → FC 84 → ReLU → FC c (LeCun et al. 1998, Fig. 2, with the modern ReLU and
    max-pooling in place of scaled tanh and trainable sub-sampling, and a full C3 connection
    table). The padding shows a 28×28 image as LeCun et al. saw MNIST, centred in a 32×32 field;
    weights are He-uniform, biases zero.

    Structure: ``blocks = [conv group, conv group, Sequential(Flatten, Linear 120, ReLU),
    Sequential(Linear 84, ReLU)]``, ``head = Linear(84, c)``.

    Args:
        in_channels: channels of the input images (1 for MNIST, 3 for CIFAR).
        num_classes: number of classes c of the logits.
        image_size: input height and width, an int for square images or an (h, w) pair.
        generator: random source of the initial weights (default: torch's global one).

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes).

    Example:
        >>> LeNet()(torch.zeros(4, 1, 28, 28)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        *,
        image_size: int | tuple[int, int] = 28,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            num_classes,
            image_size=image_size,
            fc_widths=(120, 84),
            generator=generator,
        )


class LeNet4(_LeNetFamily):
    """The "LeNet-4-style" shallow CNN of the GrAPE paper: LeNet without the FC 84 layer.

    conv 6@5×5 (padding 2) → ReLU → max-pool 2 → conv 16@5×5 → ReLU → max-pool 2 → flatten →
    FC 120 → ReLU → FC c. The GrAPE paper (Sec. 4.1, Table 1) says only that its shallow CNN
    "follows the architectural details of LeNet-4 (LeCun et al., 1998)"; this takes LeCun's
    LeNet-4 layer plan (two conv/pool stages, FC 120, output) with LeNet-5's widths. LeCun's own
    LeNet-4 has 4 first-layer maps feeding 8 sub-sampling maps and 16 partially connected maps;
    here the convolutions are full, 6 and 16 maps, with ReLU and max-pooling; the first one is
    padded by 2 (LeCun's 32×32 field for MNIST). Weights are He-uniform, biases zero.

    Structure: ``blocks = [conv group, conv group, Sequential(Flatten, Linear 120, ReLU)]``,
    ``head = Linear(120, c)``.

    Args:
        in_channels: channels of the input images (1 for MNIST, 3 for CIFAR).
        num_classes: number of classes c of the logits.
        image_size: input height and width, an int for square images or an (h, w) pair.
        generator: random source of the initial weights (default: torch's global one).

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes).

    Example:
        >>> LeNet4(3, 100, image_size=32)(torch.zeros(4, 3, 32, 32)).shape
        torch.Size([4, 100])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        *,
        image_size: int | tuple[int, int] = 28,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            num_classes,
            image_size=image_size,
            fc_widths=(120,),
            generator=generator,
        )
