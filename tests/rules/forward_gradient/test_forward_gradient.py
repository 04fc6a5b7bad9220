"""Forward gradients: unbiased estimates of the true gradient, computed with no backward pass."""

import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from torch import nn

from bpfree.models import MLP
from bpfree.rules import BP, FGActivity, FGWeight, GrAPE, build


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh())])
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 3))

    def forward(self, x):
        return self.head(self.blocks[0](x))


def flat_grads(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize(
    ("rule_class", "conv"), [(FGWeight, False), (FGActivity, False), (FGActivity, True)]
)
def test_forward_gradient_is_unbiased(rule_class, conv):
    torch.manual_seed(0)
    model = (TinyConvNet() if conv else MLP((3, 3, 3), activation="tanh", bias=True)).double()
    x = torch.randn(4, *((1, 3, 3) if conv else (3,)), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    BP(model).step(x, y)
    true = flat_grads(model)
    rule_class(model, perturbations=3000).step(x, y)
    assert F.cosine_similarity(flat_grads(model), true, dim=0) > 0.99


@pytest.mark.parametrize("name", ["fg-weight", "fg-activity", "grape"])
def test_forward_gradients_run_without_any_backward(name, forbid_backward):
    model = MLP((5, 4, 3))
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 2, 1, 0])
    rule = build(name, model)
    if name == "grape":  # DFA's weight update is a backward inside each block: check alignment
        forbid_backward()
        rule.align(x, y)
        assert rule.steps == 1 and torch.count_nonzero(rule.G[0]) > 0
        return
    forbid_backward()
    rule.step(x, y)
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("rule_class", [FGWeight, FGActivity])
def test_resumed_stream_draws_the_same_directions(rule_class):
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 2, 1, 0])
    model = MLP((5, 4, 3))
    rule = rule_class(model, seed=3)
    rule.step(x, y)
    saved = {k: v.clone() for k, v in rule.state_dict().items()}
    rule.step(x, y)
    expected = flat_grads(model).clone()
    fresh = rule_class(model, seed=9)
    fresh.load_state_dict(saved)
    fresh.step(x, y)
    torch.testing.assert_close(flat_grads(model), expected, rtol=0, atol=0)


@pytest.mark.parametrize("rule_class", [FGWeight, FGActivity, GrAPE])
@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_perturbations_are_named(rule_class, bad):
    with pytest.raises(ValueError, match="perturbations"):
        rule_class(MLP((5, 4, 3)), perturbations=bad)


@pytest.mark.parametrize("rule_class", [FGWeight, FGActivity])
def test_layers_a_forward_gradient_cannot_train_are_named(rule_class):
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"'1' \(BatchNorm1d\)"):
        rule_class(model)
