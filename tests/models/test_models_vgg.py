"""AlexNet and VGG-16 for 32×32 images: their layer plans, batch norm, and torchvision's init."""

import pytest
import torch
from torch import nn

from bpfree.models import alexnet, vgg16


def _layers(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


def test_vgg16_is_configuration_d_with_a_small_classifier():
    model = vgg16(100)
    convs = _layers(model, nn.Conv2d)
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert len(_layers(model, nn.MaxPool2d)) == 5
    linears = _layers(model, nn.Linear)
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (512, 512),
        (512, 512),
        (512, 100),
    ]
    assert len(convs) + len(linears) == 16
    assert len(model.blocks) == 13 + 2 and model.head is linears[-1]
    assert not _layers(model, nn.BatchNorm2d) and all(c.bias is not None for c in convs)


def test_vgg16_width_scales_every_layer_and_keeps_the_sixteen():
    model = vgg16(10, width=0.25)
    convs, linears = _layers(model, nn.Conv2d), _layers(model, nn.Linear)
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 64] + [128] * 6
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (128, 128),
        (128, 128),
        (128, 10),
    ]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="width must be positive"):
        vgg16(10, width=0.0)


def test_alexnet_has_five_convs_and_three_fc_layers():
    model = alexnet(10)
    convs = _layers(model, nn.Conv2d)
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [
        (64, 5),
        (192, 5),
        (384, 3),
        (256, 3),
        (256, 3),
    ]
    linears = _layers(model, nn.Linear)
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (256 * 4 * 4, 1024),
        (1024, 1024),
        (1024, 10),
    ]
    assert len(model.blocks) == 5 + 2 and model.head is linears[-1]


@pytest.mark.parametrize("build", [alexnet, vgg16])
def test_batch_norm_follows_every_conv_which_then_has_no_bias(build):
    model = build(10, batch_norm=True, in_channels=1)
    convs, norms = _layers(model, nn.Conv2d), _layers(model, nn.BatchNorm2d)
    assert len(norms) == len(convs) and all(c.bias is None for c in convs)
    assert convs[0].in_channels == 1
    for block in model.blocks[: len(convs)]:
        assert isinstance(block[0], nn.Conv2d) and isinstance(block[1], nn.BatchNorm2d)


@pytest.mark.parametrize("build", [alexnet, vgg16])
def test_larger_images_are_pooled_to_the_classifier_size(build):
    model = build(3).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 48, 40)).shape == (2, 3)


def test_initialisation_is_torchvision_vgg():
    model = alexnet(10, generator=torch.Generator().manual_seed(0))
    fc = _layers(model, nn.Linear)[0]
    assert abs(fc.weight.std().item() - 0.01) < 0.001
    assert torch.equal(fc.bias, torch.zeros_like(fc.bias))
    conv = _layers(model, nn.Conv2d)[2]  # fan_out = 384·3·3
    assert abs(conv.weight.std().item() / (2 / (384 * 9)) ** 0.5 - 1) < 0.05
