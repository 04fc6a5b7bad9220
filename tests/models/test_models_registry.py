"""build_model: names, options and input shapes, and errors that say what is wrong."""

import pytest
import torch
from torch import nn

import bpfree
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


@pytest.mark.parametrize(
    ("name", "options"), [("mlp", {"hidden": [30], "bias": True}), ("pepita-conv", {})]
)
def test_torch_default_init_draws_weights_and_biases_within_one_over_root_fan_in(name, options):
    """``init="torch-default"``: U(±1/√fan_in), as nn.Linear / nn.Conv2d reset their parameters;
    the default He-uniform bound is √6 times wider, with zero biases."""
    bounds = {}
    for init in ("he-uniform", "torch-default"):
        model = build_model(name, input_shape=(3, 12, 12), num_classes=10, init=init, **options)
        layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        for layer in layers:
            fan_in = layer.weight[0].numel()
            bound = fan_in**-0.5 * (6**0.5 if init == "he-uniform" else 1.0)
            assert layer.weight.abs().max() <= bound
            assert layer.weight.abs().max() > 0.9 * bound
            if layer.bias is not None:
                assert (layer.bias.abs().max() > 0) == (init == "torch-default")
                assert layer.bias.abs().max() <= bound
        bounds[init] = layers[0].weight.abs().max()
    assert bounds["he-uniform"] > 2 * bounds["torch-default"]


@pytest.mark.parametrize("name", ["mlp", "pepita-conv"])
def test_an_unknown_init_is_named(name):
    with pytest.raises(ValueError, match="init must be one of he-uniform, torch-default"):
        build_model(name, input_shape=(1, 8, 8), num_classes=10, init="lecun")


def test_input_dropout_drops_pixels_in_training_only():
    """MLP(input_dropout=p) equals the same MLP fed the dropped-out input (Frenkel et al.'s
    code drops every block's input, pixels included); in eval mode it is the plain MLP."""
    make = dict(input_shape=(1, 4, 4), num_classes=3, hidden=[5], dropout=0.0)
    plain = build_model("mlp", generator=torch.Generator().manual_seed(0), **make)
    dropped = build_model(
        "mlp", generator=torch.Generator().manual_seed(0), input_dropout=0.5, **make
    )
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    out = dropped(x)
    torch.manual_seed(2)
    expected = plain(torch.nn.functional.dropout(x.flatten(1), 0.5))
    torch.testing.assert_close(out, expected)
    dropped.eval()
    torch.testing.assert_close(dropped(x), plain(x))


def test_rules_that_walk_the_layers_refuse_input_dropout():
    model = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, input_dropout=0.1)
    with pytest.raises(ValueError, match="cannot train an MLP with input_dropout"):
        bpfree.build("pepita", model)
    bpfree.build("drtp", model)  # a rule that runs the model's forward takes it
