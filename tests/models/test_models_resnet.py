"""ResNet-20 and ResNet-18: parameter counts, option-B shortcuts, stems and the residual sum."""

import pytest
import torch
from torch import nn

from bpfree.models import BasicBlock, ResNet, resnet18, resnet20


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet20_has_272474_parameters_with_option_b_shortcuts():
    model = resnet20(10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) + 1 == 20  # 19 convs + the FC layer
    # By hand: stem 3·16·9 + BN 32; stage 1: 3·(2·16·16·9 + 64); stage 2: 16·32·9 + 32·32·9 + 128
    # then 2·(2·32·32·9 + 128); stage 3 likewise with 64; FC 64·10 + 10; projections 1×1 conv+BN
    # 16·32 + 64 and 32·64 + 128.
    by_hand = (
        (3 * 16 * 9 + 32)
        + 3 * (2 * 16 * 16 * 9 + 64)
        + (16 * 32 * 9 + 32 * 32 * 9 + 128) + 2 * (2 * 32 * 32 * 9 + 128)
        + (32 * 64 * 9 + 64 * 64 * 9 + 256) + 2 * (2 * 64 * 64 * 9 + 256)
        + (64 * 10 + 10)
        + (16 * 32 + 64) + (32 * 64 + 128)
    )  # fmt: skip
    assert _count(model) == by_hand == 272_474
    projections = [b.shortcut for b in model.blocks if isinstance(b, BasicBlock)]
    projections = [s for s in projections if not isinstance(s, nn.Identity)]
    # Option A (zero-padding identity shortcuts) would have the 269,722 quoted for ResNet-20.
    assert _count(model) - sum(_count(s) for s in projections) == 269_722


def test_resnet20_layout():
    model = resnet20(10, in_channels=1)
    assert len(model.blocks) == 1 + 9
    assert all(isinstance(b, BasicBlock) for b in model.blocks[1:])
    widths = [b.conv2.out_channels for b in model.blocks[1:]]
    assert widths == [16] * 3 + [32] * 3 + [64] * 3
    strides = [b.conv1.stride[0] for b in model.blocks[1:]]
    assert strides == [1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert model.blocks[0][0].in_channels == 1
    assert isinstance(model.head[0], nn.AdaptiveAvgPool2d) and model.head[-1].in_features == 64


def test_resnet18_cifar_has_11173962_parameters():
    model = resnet18(10)
    assert _count(model) == 11_173_962
    assert len(model.blocks) == 1 + 8
    stem = model.blocks[0]
    assert stem[0].kernel_size == (3, 3) and stem[0].stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in stem)


def test_resnet18_imagenet_stem():
    model = resnet18(100, stem="imagenet")
    stem = model.blocks[0]
    assert stem[0].kernel_size == (7, 7) and stem[0].stride == (2, 2)
    assert isinstance(stem[-1], nn.MaxPool2d) and stem[-1].kernel_size == 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    with pytest.raises(ValueError, match="stem"):
        resnet18(10, stem="tiny")


def test_basic_block_adds_its_shortcut_out_of_place():
    torch.manual_seed(0)
    for block, x in (
        (BasicBlock(4, 4), torch.randn(2, 4, 5, 5)),
        (BasicBlock(4, 6, stride=2), torch.randn(2, 4, 5, 5)),
    ):
        block.eval()
        kept = x.clone()
        with torch.no_grad():
            nn.init.zeros_(block.bn2.weight)  # the residual branch now adds exactly zero
            out = block(x)
        assert torch.equal(out, torch.relu(block.shortcut(x)))
        assert torch.equal(x, kept)
    assert isinstance(BasicBlock(4, 4).shortcut, nn.Identity)
    projection = BasicBlock(4, 6, stride=2).shortcut
    assert projection[0].kernel_size == (1, 1) and projection[0].stride == (2, 2)
    assert isinstance(projection[1], nn.BatchNorm2d)


def test_every_activation_is_its_own_module_and_not_in_place():
    model = resnet20(10)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 1 + 2 * 9 and len({id(r) for r in relus}) == len(relus)
    assert not any(r.inplace for r in relus)


def test_standard_initialisation():
    model = ResNet((1,), (8,), 3, generator=torch.Generator().manual_seed(0))
    conv = model.blocks[1].conv1  # fan_out = 8·3·3
    assert abs(conv.weight.std().item() - (2 / 72) ** 0.5) < 0.03
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
