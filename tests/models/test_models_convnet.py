"""PEPITA's conv net and the LeNets: the layers their references state, and He-uniform weights."""

import math

import pytest
import torch
from torch import nn

from bpfree.models import LeNet, LeNet4, PepitaConvNet


@pytest.mark.parametrize(("channels", "size", "features"), [(1, 28, 32 * 12 * 12), (3, 32, 6272)])
def test_pepita_convnet_structure(channels, size, features):
    model = PepitaConvNet(channels, 10, image_size=size)
    conv, relu, pool = model.blocks[0]
    assert isinstance(conv, nn.Conv2d) and isinstance(relu, nn.ReLU)
    assert (conv.in_channels, conv.out_channels) == (channels, 32)
    assert conv.kernel_size == (5, 5) and conv.stride == (1, 1) and conv.padding == (0, 0)
    assert conv.bias is None
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2
    flatten, fc = model.head
    assert isinstance(flatten, nn.Flatten)
    assert (fc.in_features, fc.out_features) == (features, 10) and fc.bias is None
    assert len(list(model.parameters())) == 2


def test_pepita_convnet_weights_are_he_uniform():
    model = PepitaConvNet(3, 10, image_size=32, generator=torch.Generator().manual_seed(0))
    conv, fc = model.blocks[0][0], model.head[1]
    for weight, fan_in in ((conv.weight, 3 * 5 * 5), (fc.weight, 6272)):
        bound = math.sqrt(6 / fan_in)
        assert weight.abs().max() <= bound
        assert weight.abs().max() > 0.99 * bound
        assert abs(weight.std().item() / (bound / math.sqrt(3)) - 1) < 0.05  # U(-b, b): b/√3
        assert abs(weight.mean().item()) < 0.05 * bound


def test_pepita_convnet_takes_non_square_images_and_rejects_tiny_ones():
    model = PepitaConvNet(1, 4, image_size=(10, 14))
    assert model(torch.randn(2, 1, 10, 14)).shape == (2, 4)
    with pytest.raises(ValueError, match="at least 6×6"):
        PepitaConvNet(1, 4, image_size=5)
    with pytest.raises(ValueError, match="num_classes"):
        PepitaConvNet(1, 0, image_size=28)


def test_lenet_is_lenet5_shaped():
    model = LeNet()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (6, (5, 5), (2, 2)),
        (16, (5, 5), (0, 0)),
    ]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (400, 120),
        (120, 84),
        (84, 10),
    ]
    assert sum(p.numel() for p in model.parameters()) == 61_706  # the usual LeNet-5 count
    assert len(model.blocks) == 4 and isinstance(model.blocks[2][0], nn.Flatten)
    assert model.head is linears[-1]


def test_lenet4_drops_the_fc84_layer():
    model = LeNet4(3, 100, image_size=32)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(576, 120), (120, 100)]
    assert len(model.blocks) == 3 and model.head is linears[-1]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("cls", [LeNet, LeNet4])
def test_lenet_weights_are_he_uniform_with_zero_biases(cls):
    model = cls(generator=torch.Generator().manual_seed(0))
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            assert m.weight.abs().max() <= math.sqrt(6 / m.weight[0].numel())
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
    with pytest.raises(ValueError, match="at least 12×12"):
        cls(image_size=11)
