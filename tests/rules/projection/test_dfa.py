"""Direct feedback alignment: closed form, equality with FA on one hidden layer, block cuts."""

import pytest
import torch
from torch import nn

from bpfree.models import MLP
from bpfree.rules import DFA, FA


def test_dfa_on_one_hidden_layer_equals_fa_with_the_same_feedback():
    model = MLP((8, 6, 3), bias=True).double()
    x, y = torch.randn(10, 8, dtype=torch.float64), torch.randint(0, 3, (10,))
    dfa = DFA(model, seed=4).double()
    dfa.step(x, y)
    dfa_grads = [p.grad.clone() for p in model.parameters()]
    fa = FA(model).double()
    fa.B[1].copy_(dfa.B[0])  # FA's B of the output layer stands where DFA's B_1 does
    fa.step(x, y)
    for p, g in zip(model.parameters(), dfa_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-14)


def test_dfa_gives_the_closed_form_update():
    model = MLP((5, 4, 4, 3), activation="tanh").double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    rule = DFA(model).double()
    rule.step(x, y)
    W1, W2, W3 = (layer.weight for layer in model.linears)
    a1 = x @ W1.T
    a2 = torch.tanh(a1) @ W2.T
    out = torch.tanh(a2) @ W3.T
    e = (torch.softmax(out, 1) - nn.functional.one_hot(y, 3)) / 6
    d1 = (e @ rule.B[0].T) * (1 - torch.tanh(a1) ** 2)  # δ_1 = (B_1 e) ⊙ σ′(a_1)
    d2 = (e @ rule.B[1].T) * (1 - torch.tanh(a2) ** 2)
    torch.testing.assert_close(W1.grad, d1.T @ x)
    torch.testing.assert_close(W2.grad, d2.T @ torch.tanh(a1))
    torch.testing.assert_close(W3.grad, e.T @ torch.tanh(a2))


def test_no_gradient_crosses_a_block(monkeypatch):
    """A block's gradients depend only on what is injected at its output, not on layers above."""
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 2, 1, 0])
    signal = torch.randn(6, 3)
    monkeypatch.setattr(DFA, "projected_signal", lambda self, output, y: signal)
    model = MLP((5, 4, 4, 3))
    rule = DFA(model)
    rule.step(x, y)
    first = model.linears[0].weight.grad.clone()
    with torch.no_grad():
        model.linears[1].weight.normal_()  # everything above the first block changes
        model.head.weight.normal_()
    rule.step(x, y)
    torch.testing.assert_close(model.linears[0].weight.grad, first, rtol=0, atol=0)
    assert not torch.equal(model.linears[1].weight.grad, torch.zeros(4, 4))


def test_points_are_checked():
    model = MLP((5, 4, 3))
    assert DFA(model).points == ["blocks.0"]
    with pytest.raises(ValueError, match="no module named 'nope'"):
        DFA(model, points=["nope"])
    with pytest.raises(ValueError, match="has no parameters"):
        DFA(model, points=["blocks.0.1"])
    with pytest.raises(ValueError, match="points="):
        DFA(nn.Sequential(nn.Linear(5, 3)))
