"""DRTP: hidden layers learn from the target alone; the output layer from its true error."""

import pytest
import torch

from bpfree.models import MLP
from bpfree.rules import DFA, DRTP


def hidden_grads_after_changing_the_output_layer(rule_class):
    model = MLP((5, 4, 4, 3), activation="tanh").double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    rule = rule_class(model).double()
    rule.step(x, y)
    before = [layer.weight.grad.clone() for layer in model.linears[:-1]]
    with torch.no_grad():
        model.head.weight.mul_(-5.0)  # a different output, a different output error
    rule.step(x, y)
    after = [layer.weight.grad for layer in model.linears[:-1]]
    return before, after


def test_drtp_hidden_updates_do_not_depend_on_the_output_error():
    before, after = hidden_grads_after_changing_the_output_layer(DRTP)
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dfa_hidden_updates_do_depend_on_it():
    before, after = hidden_grads_after_changing_the_output_layer(DFA)
    assert not torch.allclose(before[0], after[0])


@pytest.mark.parametrize(("scaling", "hidden", "output"), [("mean", 6, 6), ("reference", 1, 18)])
def test_drtp_gives_the_closed_form_update(scaling, hidden, output):
    """Hidden updates carry 1/hidden, the output update 1/output (n = 6, c = 3)."""
    model = MLP((5, 4, 3), activation="tanh").double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    rule = DRTP(model, scaling=scaling).double()
    rule.step(x, y)
    W1, W2 = (layer.weight for layer in model.linears)
    t = torch.nn.functional.one_hot(y, 3).double()
    h1 = torch.tanh(x @ W1.T)
    d1 = (-t @ rule.B[0].T) * (1 - h1**2)  # δ_1 = (B_1 (−t)) ⊙ σ′(a_1)
    e = torch.sigmoid(h1 @ W2.T) - t
    torch.testing.assert_close(W1.grad, d1.T @ x / hidden)
    torch.testing.assert_close(W2.grad, e.T @ h1 / output)


def test_drtp_cross_entropy_output_is_softmax_of_the_sigmoid_outputs():
    """output_loss="ce": δ_L = (softmax(σ(a_L)) − t) ⊙ σ′(a_L) / n; hidden updates unchanged."""
    model = MLP((5, 4, 3), activation="tanh").double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    rule = DRTP(model, output_loss="ce").double()
    rule.step(x, y)
    W1, W2 = (layer.weight for layer in model.linears)
    t = torch.nn.functional.one_hot(y, 3).double()
    h1 = torch.tanh(x @ W1.T)
    s = torch.sigmoid(h1 @ W2.T)
    e = (torch.softmax(s, dim=1) - t) * s * (1 - s) / 6
    torch.testing.assert_close(W2.grad, e.T @ h1)
    d1 = (-t @ rule.B[0].T) * (1 - h1**2)
    torch.testing.assert_close(W1.grad, d1.T @ x)


def test_drtp_names_a_bad_output_loss():
    with pytest.raises(ValueError, match="output_loss must be one of bce, ce, got 'mse'"):
        DRTP(MLP((5, 4, 3), activation="tanh"), output_loss="mse")
