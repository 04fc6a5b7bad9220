"""build_model: names, options and input shapes, and errors that say what is wrong."""

import pytest
import torch
from torch import nn

from bpfree.models import MLP, MODELS, LeNet, LeNet4, PepitaConvNet, build_model


def test_registry_names():
    assert set(MODELS) == {
        "mlp",
        "pepita-conv",
        "lenet",
        "lenet4",
        "resnet20",
        "resnet18",
        "alexnet",
        "transformer-lm",
        "vgg16",
    }


def test_mlp_sizes_come_from_the_input_shape_and_hidden():
    assert build_model("mlp", input_shape=(1, 28, 28), num_classes=10).sizes == (784, 1024, 10)
    model = build_model(
        "mlp",
        input_shape=(3, 32, 32),
        num_classes=100,
        hidden=[64, 32],
        activation="tanh",
        dropout=0.1,
        bias=True,
    )
    assert isinstance(model, MLP) and model.sizes == (3072, 64, 32, 100)
    assert model.activation == "tanh" and model.dropout == 0.1 and model.head.bias is not None


def test_image_models_get_channels_and_size_from_the_input_shape():
    model = build_model("lenet", input_shape=(3, 32, 32), num_classes=100)
    assert isinstance(model, LeNet) and model.image_size == (32, 32)
    assert model.blocks[0][0].in_channels == 3 and model.head.out_features == 100
    model = build_model("pepita-conv", input_shape=(1, 28, 30), num_classes=10)
    assert isinstance(model, PepitaConvNet) and model.image_size == (28, 30)
    model = build_model("resnet20", input_shape=(1, 28, 28), num_classes=10)
    assert model.blocks[0][0].in_channels == 1


def test_options_reach_the_model():
    model = build_model("resnet18", input_shape=(3, 64, 64), num_classes=10, stem="imagenet")
    assert isinstance(model.blocks[0][-1], nn.MaxPool2d)
    model = build_model("vgg16", input_shape=(3, 32, 32), num_classes=10, batch_norm=True)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_unknown_model_names_it_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet50'") as err:
        build_model("resnet50", input_shape=(3, 32, 32), num_classes=10)
    assert all(name in str(err.value) for name in MODELS)


def test_unknown_option_names_it_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown option 'stem' for model 'resnet20'") as err:
        build_model("resnet20", input_shape=(3, 32, 32), num_classes=10, stem="imagenet")
    assert "generator" in str(err.value)
    with pytest.raises(ValueError, match="unknown option 'hiden'") as err:
        build_model("mlp", input_shape=(1, 28, 28), num_classes=10, hiden=[10])
    assert all(o in str(err.value) for o in ("hidden", "activation", "dropout", "bias"))


@pytest.mark.parametrize(
    ("name", "shape", "options", "message"),
    [
        ("resnet18", (3, 8, 8), {"stem": "imagenet"}, "resnet18 \\(stem='imagenet'\\).*32×32"),
        ("lenet", (1, 8, 8), {}, "lenet cannot take input_shape \\(1, 8, 8\\).*12×12, got 8×8"),
        ("vgg16", (1, 28, 28), {}, "vgg16 .*at least 32×32, got 28×28"),
        ("alexnet", (3, 32, 16), {}, "alexnet .*got 32×16"),
        ("lenet", (28, 28), {}, "input_shape must be \\(channels, height, width\\)"),
        ("lenet", (0, 28, 28), {}, "input_shape must be"),
        ("mlp", (1, 28, 28.5), {}, "input_shape must be"),
    ],
)
def test_input_shape_a_model_cannot_take_is_refused(name, shape, options, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, input_shape=shape, num_classes=10, **options)


def test_hidden_must_be_a_list_of_widths():
    with pytest.raises(ValueError, match="hidden must be a list"):
        build_model("mlp", input_shape=(1, 28, 28), num_classes=10, hidden=512)


@pytest.mark.parametrize(
    ("name", "model"), [("pepita-conv", PepitaConvNet), ("lenet", LeNet), ("lenet4", LeNet4)]
)
def test_minimum_sizes_agree_with_the_constructors(name, model):
    least = MODELS[name].min_size({})
    build_model(name, input_shape=(1, least, least), num_classes=2)
    with pytest.raises(ValueError, match="at least"):
        model(in_channels=1, num_classes=2, image_size=least - 1)


@pytest.mark.parametrize(
    ("name", "options", "least"),
    [("resnet20", {}, 4), ("resnet18", {}, 8), ("resnet18", {"stem": "imagenet"}, 32)],
)
def test_resnets_down_sample_the_minimum_size_to_one_pixel(name, options, least):
    model = build_model(name, input_shape=(1, least, least), num_classes=2, **options).eval()
    x = torch.randn(1, 1, least, least)
    for block in model.blocks:
        x = block(x)
    assert x.shape[-2:] == (1, 1)
