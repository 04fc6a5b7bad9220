"""The one-convolution network of the PEPITA paper."""

from __future__ import annotations

import torch
from torch import nn

from bpfree.models._common import INITS, check_positive, image_hw, initialize_
from bpfree.models.spec import LayerSpec


class PepitaConvNet(nn.Module):
    """Conv2d(32 maps, 5×5, stride 1) → ReLU → MaxPool2d(2) → flatten → Linear, no biases.

    The convolutional model of the PEPITA paper (Dellaferrera & Kreiman, ICML 2022, Appendix A,
    Table 2: "CONV1:32,5,1" then "FC1:10" or "FC1:100"), with He-uniform weights
    U[-√(6/fan_in), √(6/fan_in)] (``init="torch-default"``: PyTorch's U(±1/√fan_in), which
    the ICML conv script keeps because its ``--w_init`` is never applied). The convolution is
    unpadded, so an (h, w) image gives 32 maps of ((h-4)//2, (w-4)//2) after pooling:
    32·12·12 = 4608 features for MNIST, 32·14·14 = 6272 for CIFAR.

    Structure: ``blocks = [Sequential(Conv2d, ReLU, MaxPool2d)]``, ``head = Sequential(Flatten,
    Linear)``; ``forward(x) = head(blocks[0](x))``.

    Args:
        in_channels: channels c of the input images.
        num_classes: number of classes c of the logits.
        image_size: input height and width, an int for square images or an (h, w) pair.
        init: ``"he-uniform"`` (default) or ``"torch-default"`` (``models._common.initialize_``).
        generator: random source of the initial weights (default: torch's global one).

    Shapes: x (n, in_channels, h, w) → logits (n, num_classes).

    Example:
        >>> model = PepitaConvNet(3, 10, image_size=32)
        >>> model(torch.zeros(8, 3, 32, 32)).shape
        torch.Size([8, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        image_size: int | tuple[int, int],
        init: str = "he-uniform",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, num_classes=num_classes)
        h, w = image_hw(image_size)
        if h < 6 or w < 6:
            raise ValueError(
                f"PepitaConvNet needs images of at least 6×6 (5×5 convolution, then 2×2 "
                f"pooling), got image_size {(h, w)}"
            )
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        self.image_size = (h, w)
        conv = nn.Conv2d(in_channels, 32, kernel_size=5, stride=1, bias=False)
        self.blocks = nn.ModuleList([nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))])
        features = 32 * ((h - 4) // 2) * ((w - 4) // 2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes, bias=False))
        initialize_(conv, init, generator)
        initialize_(self.head[1], init, generator)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one input image."""
        return (self.blocks[0][0].in_channels, *self.image_size)

    def layer_specs(self) -> list[LayerSpec]:
        """The convolution (ReLU), then the head reading its pooled, flattened maps."""
        conv, activation, pool = self.blocks[0]
        return [
            LayerSpec(conv, activation),
            LayerSpec(self.head[1], nn.Identity(), pooling=pool, flatten=True),
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}"
