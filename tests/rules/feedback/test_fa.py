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
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"layer '0' of type Conv1d"):
        FA(model)


def test_fa_with_transposed_weights_gives_bp_gradients_on_a_residual_cnn(residual_cnn):
    torch.manual_seed(0)
    model = residual_cnn(groups=2).double()
    x, y = torch.randn(5, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1])
    BP(model).step(x, y)
    bp_grads = [p.grad.clone() for p in model.parameters()]
    fa = FA(model).double()
    assert list(fa.converted) == ["stem.0", "branch.1", "branch.4", "down", "head.3"]
    for layer, b in zip(fa.layers, fa.B, strict=True):
        b.copy_(layer.weight.transpose(0, 1))
    fa.step(x, y)
    for p, g in zip(model.parameters(), bp_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)


def test_random_feedback_changes_only_the_input_gradients_path(residual_cnn):
    """With random B the last layer's gradient is still BP's; the layers below differ."""
    torch.manual_seed(0)
    model = residual_cnn(groups=2).double()
    x, y = torch.randn(5, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1])
    BP(model).step(x, y)
    bp_grads = [p.grad.clone() for p in model.parameters()]
    FA(model).double().step(x, y)
    grads = [p.grad for p in model.parameters()]
    torch.testing.assert_close(grads[-2], bp_grads[-2])
    assert not torch.allclose(grads[0], bp_grads[0])


def test_sparse_feedback_holds_its_fraction_at_zero():
    rule = FA(MLP((100, 80, 60, 10)), sparsity=0.3)
    zeros = sum(int((b == 0).sum()) for b in rule.B) / sum(b.numel() for b in rule.B)
    assert abs(zeros - 0.3) < 0.01
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        FA(MLP((10, 5, 3)), sparsity=1.0)


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


def test_feedback_seeded_like_the_model_is_still_random():
    """A model and a rule given the same seed draw from different streams (else B = Wᵀ)."""
    model = MLP((30, 20, 10), generator=torch.Generator().manual_seed(0))
    rule = FA(model, seed=0)
    rule.step(torch.randn(4, 30), torch.tensor([0, 1, 2, 3]))
    assert all(stats["angle"] > 70 for stats in rule.alignment().values())


def test_feedback_scale_scales_the_hidden_update_and_zero_freezes_it():
    """One hidden layer: δ_1 = (s B_2 e) ⊙ σ′(a_1), so the hidden update is s times FA's and the
    last layer's is BP's whatever s."""
    x, y = torch.randn(9, 6, dtype=torch.float64), torch.arange(9) % 3
    grads = {}
    for scale in (1.0, 0.25, 0.0):
        model = MLP((6, 5, 3), dropout=0.0, generator=torch.Generator().manual_seed(0)).double()
        FA(model, scale=scale).double().step(x, y)
        grads[scale] = [p.grad.clone() for p in model.parameters()]
    torch.testing.assert_close(grads[0.25][0], 0.25 * grads[1.0][0], rtol=1e-12, atol=1e-15)
    assert torch.count_nonzero(grads[0.0][0]) == 0 and torch.count_nonzero(grads[1.0][0]) > 0
    for g in (grads[0.25][-1], grads[0.0][-1]):
        torch.testing.assert_close(g, grads[1.0][-1], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="scale must be a non-negative number"):
        FA(MLP((6, 5, 3)), scale=-1.0)


def test_xavier_feedback_is_the_he_draw_rescaled_to_glorots_bound():
    """From the same stream, ``feedback_init="xavier-uniform"`` draws each B_l as the He-uniform
    B_l times √(6 / (fan_in + fan_out)) / √(6 / fan_in), fans of W_l (a kernel counts its area)."""
    from bpfree.models import PepitaConvNet

    model = PepitaConvNet(3, 10, image_size=32).double()
    he, xavier = (FA(model, feedback_init=i).double() for i in ("he-uniform", "xavier-uniform"))
    for layer, b_he, b_xavier in zip(he.layers, he.B, xavier.B, strict=True):
        w = layer.weight
        area = w[0][0].numel() if w.dim() > 2 else 1
        fan_in, fan_out = w.shape[1] * area, w.shape[0] * area
        torch.testing.assert_close(b_xavier, b_he * (fan_in / (fan_in + fan_out)) ** 0.5)
    with pytest.raises(ValueError, match="feedback_init must be one of he-uniform"):
        FA(MLP((6, 5, 3)), feedback_init="normal")
