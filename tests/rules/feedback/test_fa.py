"""Feedback alignment against backpropagation."""

import pytest
import torch

from bpfree.models import MLP
from bpfree.rules import BP, FA


def test_fa_with_transposed_weights_gives_bp_gradients():
    model = MLP((12, 10, 9, 8, 4), dropout=0.0, bias=True).double()
    x, y = torch.randn(16, 12, dtype=torch.float64), torch.randint(0, 4, (16,))
    BP(model).step(x, y)
    bp_grads = [p.grad.clone() for p in model.parameters()]
    fa = FA(model).double()
    for layer, b in zip(fa.layers, fa.B, strict=True):
        b.copy_(layer.weight.T)
    fa.step(x, y)
    for p, g in zip(model.parameters(), bp_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-14)


def test_converted_layers_are_reported():
    model = MLP((6, 5, 3))
    assert FA(model).converted == {"blocks.0.0": "Linear(5, 6)", "head": "Linear(3, 5)"}


def test_a_layer_fa_cannot_convert_is_an_error_naming_it():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"layer '0' of type Conv2d"):
        FA(model)


def test_norm_layers_keep_their_exact_gradient():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    ).double()
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 3, (8,))
    BP(model).step(x, y)
    bp_grads = [p.grad.clone() for p in model.parameters()]
    fa = FA(model).double()
    assert list(fa.converted) == ["0", "3"]
    for layer, b in zip(fa.layers, fa.B, strict=True):
        b.copy_(layer.weight.T)
    fa.step(x, y)
    for p, g in zip(model.parameters(), bp_grads, strict=True):
        torch.testing.assert_close(p.grad, g)
