"""Product feedback alignment against Kolen-Pollack, and its feedback's structure."""

import pytest
import torch

import bpfree
from bpfree.models import MLP
from bpfree.rules import KP, PFA, PFAOrthogonal


def batch_for(model):
    if isinstance(model, MLP):
        return torch.randn(6, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    return torch.randn(5, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1])


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_pfa_with_identity_b_gives_exactly_kp_updates(kind, residual_cnn):
    torch.manual_seed(0)
    model = (MLP((8, 7, 6, 3), bias=True) if kind == "mlp" else residual_cnn(groups=1)).double()
    x, y = batch_for(model)
    kp = KP(model, seed=3).double()
    kp.step(x, y)
    kp_grads = [p.grad.clone() for p in model.parameters()]
    pfa = PFA(model, expansion=1.0).double()
    with torch.no_grad():
        for b, r, kp_b in zip(pfa.B, pfa.R, kp.B, strict=True):
            b.copy_(torch.eye(b.shape[0], dtype=b.dtype))
            r.copy_(kp_b.reshape(r.shape))
    pfa.step(x, y)
    for p, g in zip(model.parameters(), kp_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
    for r, kp_b in zip(pfa.R, kp.B, strict=True):
        if kp_b.grad is not None and r.grad is not None:
            torch.testing.assert_close(
                r.grad.reshape(kp_b.shape), kp_b.grad, rtol=1e-10, atol=1e-12
            )
    used = [r.grad is not None for r in pfa.R]
    assert used == [kp_b.grad is not None for kp_b in kp.B] and any(used)


def test_pfa_o_feedback_projection_is_semi_orthogonal():
    rule = PFAOrthogonal(MLP((20, 16, 12, 4)), expansion=3.0)
    for b in rule.B:
        assert b.shape[0] == 3 * b.shape[1]
        torch.testing.assert_close(b.T @ b, torch.eye(b.shape[1]), atol=1e-5, rtol=0)


def test_pfa_b_is_near_identity_in_expectation():
    rule = PFA(MLP((50, 400, 10)), expansion=10.0)
    b = rule.B[1]
    assert b.shape == (4000, 400) or b.shape == (100, 10)
    gram = b.T @ b
    assert abs(float(gram.diagonal().mean()) - 1.0) < 0.05


def test_pfa_feedback_is_the_product_r_b():
    rule = PFA(MLP((8, 7, 3)), expansion=2.0)
    for r, b, index in zip(rule.R, rule.B, range(2), strict=True):
        torch.testing.assert_close(rule.feedback(index), r.detach() @ b)
        assert rule.feedback(index).shape == rule.layers[index].weight.T.shape


def test_sparse_b_and_r_stay_zero_after_training_steps():
    torch.manual_seed(0)
    model = MLP((10, 16, 12, 3))
    rule = PFA(model, expansion=2.0, sparsity=0.5)
    zero_b = [b == 0 for b in rule.B]
    zero_r = [r.detach() == 0 for r in rule.R]
    assert all(z.float().mean() > 0.4 for z in zero_r)
    opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(20):
        rule.step(torch.randn(16, 10), torch.randint(0, 3, (16,)))
        opt.step()
    assert all((b[z] == 0).all() for b, z in zip(rule.B, zero_b, strict=True))
    assert all((r.detach()[z] == 0).all() for r, z in zip(rule.R, zero_r, strict=True))
    assert any(r.grad is not None and r.grad.abs().sum() > 0 for r in rule.R)


@pytest.mark.parametrize(("option", "value"), [("expansion", 0.5), ("sparsity", -0.1)])
def test_bad_options_name_the_valid_range(option, value):
    with pytest.raises(ValueError, match=f"{option}.*(at least 1|\\[0, 1\\))"):
        PFA(MLP((8, 7, 3)), **{option: value})


def test_grouped_convolution_is_refused(residual_cnn):
    with pytest.raises(ValueError, match=r"grouped convolution 'branch\.1'"):
        PFA(residual_cnn(groups=2))


@pytest.mark.parametrize("batch", [2, 40])  # fewer and more samples than outputs: both orders
def test_pfa_follows_equations_4_to_6(batch):
    torch.manual_seed(0)
    model = MLP((5, 9, 12, 4)).double()
    rule = PFA(model, expansion=3.0).double()
    x, y = torch.randn(batch, 5, dtype=torch.float64), torch.randint(0, 4, (batch,))
    rule.step(x, y)
    W1, W2, W3 = (layer.weight.detach() for layer in model.linears)
    h1 = torch.relu(x @ W1.T)
    h2 = torch.relu(h1 @ W2.T)
    e3 = (torch.softmax(h2 @ W3.T, 1) - torch.nn.functional.one_hot(y, 4)) / batch
    R2, B2, R1, B1 = rule.R[2].detach(), rule.B[2], rule.R[1].detach(), rule.B[1]
    e_bar2 = e3 @ B2.T  # ē = B e (eq. 4)
    e2 = (e_bar2 @ R2.T) * (h2 > 0)  # e = σ′ ⊙ R ē (eq. 5)
    e_bar1 = e2 @ B1.T
    e1 = (e_bar1 @ R1.T) * (h1 > 0)
    torch.testing.assert_close(rule.R[2].grad, h2.T @ e_bar2)  # ∇R = x ēᵀ (eq. 6)
    torch.testing.assert_close(rule.R[1].grad, h1.T @ e_bar1)
    torch.testing.assert_close(model.linears[0].weight.grad, e1.T @ x)
