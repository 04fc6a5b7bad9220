"""What every registry model must do: logits (n, c), a gradient for every parameter, the
blocks-then-head convention, and seeded construction."""

import pytest
import torch

from bpfree.models import MLP, MODELS, TinyTransformer, build_model

MNIST, CIFAR = (1, 28, 28), (3, 32, 32)
# Each model on each dataset shape it takes: (model, input shape, options).
DATASET_CASES = [
    ("mlp", MNIST, {"hidden": [16, 8]}),
    ("mlp", CIFAR, {"hidden": [16]}),
    ("pepita-conv", MNIST, {}),
    ("pepita-conv", CIFAR, {}),
    ("lenet", MNIST, {}),
    ("lenet", CIFAR, {}),
    ("lenet4", MNIST, {}),
    ("lenet4", CIFAR, {}),
    ("resnet20", MNIST, {}),
    ("resnet20", CIFAR, {}),
    ("resnet18", MNIST, {}),
    ("resnet18", CIFAR, {}),
    ("resnet18", CIFAR, {"stem": "imagenet"}),
    ("alexnet", CIFAR, {}),
    ("alexnet", CIFAR, {"batch_norm": True}),
    ("vgg16", CIFAR, {}),
    ("vgg16", CIFAR, {"batch_norm": True}),
]
# Each model and variant on the smallest input it takes, to keep the structural tests cheap.
SMALL_CASES = [
    ("mlp", (2, 3, 3), {"hidden": [6, 5]}),
    ("pepita-conv", (2, 6, 7), {}),
    ("lenet", (2, 12, 13), {}),
    ("lenet4", (3, 12, 12), {}),
    ("resnet20", (3, 4, 4), {}),
    ("resnet18", (3, 8, 8), {}),
    ("resnet18", (1, 32, 32), {"stem": "imagenet"}),
    ("alexnet", (3, 32, 32), {"batch_norm": True}),
    ("vgg16", (3, 32, 32), {"batch_norm": True}),
]


def _ids(cases):
    return [f"{name}-{'x'.join(map(str, shape))}-{','.join(opts)}" for name, shape, opts in cases]


def test_cases_cover_every_registry_model():
    """Every image model (the language model's tests: test_models_transformer_lm.py)."""
    images = {name for name in MODELS if MODELS[name].inputs == "images"}
    assert {name for name, _, _ in DATASET_CASES} == images
    assert {name for name, _, _ in SMALL_CASES} == images
    assert set(MODELS) - images == {"transformer-lm"}


@pytest.mark.parametrize(("name", "shape", "options"), DATASET_CASES, ids=_ids(DATASET_CASES))
def test_logits_shape_and_every_parameter_gets_a_gradient(name, shape, options):
    torch.manual_seed(0)
    model = build_model(name, input_shape=shape, num_classes=7, **options)
    logits = model(torch.randn(2, *shape))
    assert logits.shape == (2, 7)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 6])).backward()
    for path, p in model.named_parameters():
        assert p.grad is not None, f"{path} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{path} got a non-finite gradient"
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("name", "shape", "options"), SMALL_CASES, ids=_ids(SMALL_CASES))
def test_forward_is_blocks_then_head(name, shape, options):
    model = build_model(name, input_shape=shape, num_classes=5, **options).eval()
    x = torch.randn(2, *shape)
    h = model.flatten(x) if isinstance(model, MLP) else x
    assert isinstance(model.blocks, torch.nn.ModuleList) and len(model.blocks) >= 1
    with torch.no_grad():
        for block in model.blocks:
            h = block(h)
        assert torch.equal(model.head(h), model(x))


def test_transformer_forward_is_blocks_then_head():
    model = TinyTransformer(30, 4, d_model=16, n_heads=2, n_layers=2, max_len=12).eval()
    ids = torch.randint(0, 30, (2, 9))
    h = ids
    with torch.no_grad():
        for block in model.blocks:
            h = block(h)
        assert torch.equal(model.head(h), model(ids))


# One model per initialisation path: He-uniform (MLP, PEPITA conv, LeNet), torchvision's ResNet
# and VGG schemes.
SEED_MODELS = ("mlp", "pepita-conv", "lenet", "resnet20", "alexnet")
SEED_CASES = [case for case in SMALL_CASES if case[0] in SEED_MODELS]


@pytest.mark.parametrize(("name", "shape", "options"), SEED_CASES, ids=_ids(SEED_CASES))
def test_same_generator_seed_gives_same_weights(name, shape, options):
    def build(seed):
        generator = torch.Generator().manual_seed(seed)
        return build_model(name, input_shape=shape, num_classes=3, generator=generator, **options)

    first, again, other = build(1).state_dict(), build(1).state_dict(), build(2).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
