"""The fast form of the two-pass rules computes the updates of their equations (``equations.py``)
for every rule and option of the family, on MLPs and on the conv net, in float64."""

import pytest
import torch

import bpfree
from bpfree.models import MLP, PepitaConvNet

CASES = [
    ("pepita", {}),
    ("pepita", {"presynaptic": "clean"}),
    ("pepita", {"output_error": "modulated", "sign": -1}),
    ("pepita", {"perturbation": "projected-random", "amplitude": 0.5}),
    ("pepita", {"perturbation": "random", "amplitude": 0.5}),
    ("pepita-hebbian", {}),
    ("pepita-hebbian", {"perturbation": "random", "amplitude": 0.5}),
    ("pepita-wm", {}),
    ("afa", {}),
    ("afa", {"sign": -1}),
]
# Batches narrower and wider than the first hidden layer: the fast form takes different paths.
MLPS = {
    "narrow batch": (dict(sizes=(6, 9, 5, 3), dropout=0.3, bias=True), 4),
    "wide batch": (dict(sizes=(6, 4, 5, 3), dropout=0.3, bias=True), 11),
    "normalised": (dict(sizes=(6, 9, 5, 3), normalization="per-sample"), 7),
}


def updates(name, model, options, implementation, x, y):
    rule = bpfree.build(name, model, f_scale=2.0, implementation=implementation, **options)
    rule = rule.double()
    torch.manual_seed(7)  # the same dropout masks and random perturbations in both forms
    result = rule.step(x, y)
    grads = [p.grad.clone() for p in model.parameters()]
    return result, grads


def assert_same_updates(name, make_model, options, x, y):
    fast, fast_grads = updates(name, make_model(), options, "fast", x, y)
    plain, plain_grads = updates(name, make_model(), options, "equations", x, y)
    assert float(fast.loss) == pytest.approx(float(plain.loss), rel=1e-12)
    torch.testing.assert_close(fast.output, plain.output, rtol=1e-12, atol=1e-12)
    for a, b in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "options"), CASES)
@pytest.mark.parametrize("shape", list(MLPS))
def test_fast_form_equals_the_equations_on_mlps(name, options, shape):
    kwargs, n = MLPS[shape]
    if name == "afa" and "normalization" in kwargs:
        pytest.skip("AFA refuses normalised models")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 6, generator=generator, dtype=torch.float64)
    y = torch.arange(n) % 3

    def make_model():
        model = MLP(generator=torch.Generator().manual_seed(1), **kwargs).double()
        biases = torch.Generator().manual_seed(2)
        for layer in model.linears:
            if layer.bias is not None:
                torch.nn.init.uniform_(layer.bias, -0.5, 0.5, generator=biases)
        return model

    assert_same_updates(name, make_model, options, x, y)


@pytest.mark.parametrize(
    ("name", "options"),
    [(name, options) for name, options in CASES if name in ("pepita", "pepita-hebbian")]
    + [("pepita", {"conv_average": "reference-code-sqrt"})]
    + [("pepita", {"conv_average": "reference-code", "conv_sign": "reference-code"})],
)
def test_fast_form_equals_the_equations_on_the_conv_net(name, options):
    x = torch.rand(3, 2, 9, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 2, 1])

    def make_model():
        return PepitaConvNet(
            2, 3, image_size=9, generator=torch.Generator().manual_seed(1)
        ).double()

    assert_same_updates(name, make_model, options, x, y)
