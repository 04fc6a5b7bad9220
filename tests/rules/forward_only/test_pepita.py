"""PEPITA against the ICML paper's equations 1-5, computed naively in float64."""

import pytest
import torch

from bpfree.models import MLP
from bpfree.rules import PEPITA


def naive_pepita(model, F, x, y, *, sign, presynaptic, output_error, sigma=torch.relu, masks=None):
    """Algorithm 1 of the ICML paper written out with explicit passes, no shortcuts; ``masks``
    (one per hidden layer, scaled) are the dropout masks both passes share."""
    Ws = [layer.weight for layer in model.linears]
    t = torch.nn.functional.one_hot(y, Ws[-1].shape[0]).to(x.dtype)
    masks = masks or [1.0] * (len(Ws) - 1)

    def forward(h0):
        hs = [h0]
        for W, mask in zip(Ws[:-1], masks, strict=True):
            hs.append(sigma(hs[-1] @ W.T) * mask)
        return hs, torch.softmax(hs[-1] @ Ws[-1].T, dim=1)

    clean, out = forward(x)
    e = out - t
    modulated, out_err = forward(x + sign * e @ F.T)
    pre = modulated if presynaptic == "modulated" else clean
    last_error = e if output_error == "clean" else out_err - t
    n = x.shape[0]
    grads = [(clean[l] - modulated[l]).T @ pre[l - 1] / n for l in range(1, len(Ws))]
    return [*grads, last_error.T @ pre[-1] / n]


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("presynaptic", ["modulated", "clean"])
@pytest.mark.parametrize("output_error", ["clean", "modulated"])
def test_grads_equal_paper_equations(sign, presynaptic, output_error):
    torch.manual_seed(0)
    model = MLP((6, 5, 4, 3), generator=torch.Generator().manual_seed(1)).double()
    rule = PEPITA(
        model, sign=sign, presynaptic=presynaptic, output_error=output_error, f_scale=3.0
    ).double()
    x, y = torch.rand(7, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    rule.step(x, y)
    expected = naive_pepita(
        model, rule.F, x, y, sign=sign, presynaptic=presynaptic, output_error=output_error
    )
    for layer, grad in zip(model.linears, expected, strict=True):
        torch.testing.assert_close(layer.weight.grad, grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("activation", "dropout"), [("relu", 0.3), ("identity", 0.0)])
def test_grads_equal_paper_equations_with_dropout_and_linear_units(activation, dropout):
    """Both passes share each layer's dropout mask; a linear first layer (whose activity is its
    pre-activation) is not overwritten by the modulated pass."""
    model = MLP((6, 5, 4, 3), activation=activation, dropout=dropout).double()
    rule = PEPITA(model, f_scale=3.0).double()
    x, y = torch.rand(7, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    torch.manual_seed(3)
    masks = rule.stack.dropout_masks(7, x)  # the masks the step will draw
    torch.manual_seed(3)
    rule.step(x, y)
    expected = naive_pepita(
        model,
        rule.F,
        x,
        y,
        sign=1,
        presynaptic="modulated",
        output_error="clean",
        sigma=torch.relu if activation == "relu" else (lambda a: a),
        masks=None if dropout == 0.0 else masks,
    )
    assert dropout == 0.0 or all((m == 0).any() for m in masks)
    for layer, grad in zip(model.linears, expected, strict=True):
        torch.testing.assert_close(layer.weight.grad, grad, rtol=1e-12, atol=1e-12)


def test_with_f_zero_only_the_last_layer_learns():
    model = MLP((6, 5, 4, 3), dropout=0.2)
    rule = PEPITA(model, f_scale=0.0)
    x, y = torch.rand(7, 6), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    rule.step(x, y)
    for layer in model.linears[:-1]:
        assert torch.count_nonzero(layer.weight.grad) == 0
    assert torch.count_nonzero(model.head.weight.grad) > 0


def test_step_never_uses_autograd(no_autograd):
    model = MLP((6, 5, 4, 3), dropout=0.1)
    result = PEPITA(model).step(torch.rand(7, 6), torch.tensor([0, 1, 2, 0, 1, 2, 2]))
    assert not result.output.requires_grad
    assert all(p.grad is not None for p in model.parameters())


def test_f_has_the_paper_shape_and_scale():
    rule = PEPITA(MLP((784, 16, 10)))
    bound = 0.05 * (6 / 784) ** 0.5
    assert rule.F.shape == (784, 10)
    assert rule.F.abs().max() <= bound
    assert rule.F.abs().max() > 0.9 * bound


def test_dropout_mask_is_shared_by_both_passes():
    """With a shared mask, dropped hidden units have h − h^err = 0 and get no update."""
    torch.manual_seed(0)
    model = MLP((6, 50, 3), activation="identity", dropout=0.5)
    PEPITA(model, f_scale=1.0).step(torch.rand(1, 6), torch.tensor([1]))
    rows = model.linears[0].weight.grad.abs().sum(dim=1)
    dropped = model.linears[1].weight.grad.abs().sum(dim=0) == 0
    assert dropped.any() and (rows[dropped] == 0).all()


@pytest.mark.parametrize(
    ("option", "value"), [("sign", 2), ("presynaptic", "both"), ("output_error", "x")]
)
def test_bad_options_are_named(option, value):
    with pytest.raises(ValueError, match=option):
        PEPITA(MLP((6, 5, 3)), **{option: value})


@pytest.mark.parametrize("rule", ["pepita", "pepita-hebbian"])
@pytest.mark.parametrize("n", [3, 8])  # 3 < 5 units: x + s F e is formed; 8 >= 5: it is not
def test_first_layer_update_with_and_without_forming_the_modulated_input(rule, n):
    import bpfree

    torch.manual_seed(0)
    x, y = torch.rand(n, 6, dtype=torch.float64), torch.arange(n) % 3
    model = MLP((6, 5, 3), generator=torch.Generator().manual_seed(1)).double()
    learner = bpfree.build(rule, model, f_scale=3.0).double()
    learner.step(x, y)
    W1, W2 = (layer.weight for layer in model.linears)
    h = torch.relu(x @ W1.T)
    e = torch.softmax(h @ W2.T, dim=1) - torch.nn.functional.one_hot(y, 3).double()
    x_err = x + learner.sign * e @ learner.F.T
    h_err = torch.relu(x_err @ W1.T)
    expected = {
        "pepita": (h - h_err).T @ x_err / n,  # eq. 3
        "pepita-hebbian": (h.T @ x - h_err.T @ x_err) / n,  # h_1 xᵀ − h_1^err (x + s F e)ᵀ
    }[rule]
    torch.testing.assert_close(W1.grad, expected, rtol=1e-12, atol=1e-12)
