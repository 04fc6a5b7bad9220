"""Direct projection at feature-map and block injection points: DFA and DRTP on conv nets."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpfree.models import build_model
from bpfree.rules import DFA, DRTP, GrAPE


class ConvNet(nn.Module):
    """blocks = [Sequential(Conv2d, tanh), Sequential(Conv2d, tanh)], head = flatten + Linear."""

    def __init__(self, blocks: int = 1):
        super().__init__()
        channels = [2, 3, 2][: blocks + 1]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.Tanh())
            for i, o in itertools.pairwise(channels)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[blocks] * 5 * 5, 3))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def batch(n: int = 4):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, 2, 5, 5, generator=generator, dtype=torch.float64)
    return x, torch.arange(n) % 3


def test_dfa_on_a_conv_block_gives_the_closed_form_update():
    model = ConvNet().double()
    x, y = batch()
    rule = DFA(model, example_input=(2, 5, 5)).double()
    assert rule.point_shapes == [(3, 5, 5)] and rule.B[0].shape == (75, 3)
    rule.step(x, y)
    conv, head = model.blocks[0][0], model.head[1]
    a1 = F.conv2d(x, conv.weight, conv.bias, padding=1)
    h1 = torch.tanh(a1).flatten(1)
    e = (torch.softmax(h1 @ head.weight.T + head.bias, 1) - F.one_hot(y, 3)) / 4
    d1 = ((e @ rule.B[0].T) * (1 - h1**2)).view(4, 3, 5, 5)  # δ_1 = (B_1 e) ⊙ σ′(a_1), as maps
    patches = F.unfold(x, 3, padding=1)  # (n, i·3·3, h·w)
    weight = torch.einsum("nkp,nip->ki", d1.flatten(2), patches).view_as(conv.weight)
    torch.testing.assert_close(conv.weight.grad, weight)
    torch.testing.assert_close(conv.bias.grad, d1.sum((0, 2, 3)))
    torch.testing.assert_close(head.weight.grad, e.T @ h1)


def test_no_gradient_crosses_a_conv_block(monkeypatch):
    """The first block's gradients depend only on the error injected at its output."""
    signal = torch.randn(4, 3, dtype=torch.float64)
    monkeypatch.setattr(DFA, "projected_signal", lambda self, output, y: signal)
    model = ConvNet(blocks=2).double()
    x, y = batch()
    rule = DFA(model, example_input=x).double()
    rule.step(x, y)
    first = [p.grad.clone() for p in model.blocks[0].parameters()]
    with torch.no_grad():
        model.blocks[1][0].weight.normal_()  # everything above the first block changes
        model.head[1].weight.normal_()
    rule.step(x, y)
    for p, g in zip(model.blocks[0].parameters(), first, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)


@pytest.mark.parametrize("rule_class", [DRTP, DFA])
def test_drtp_conv_hidden_updates_do_not_depend_on_the_output_error(rule_class):
    model = ConvNet(blocks=2).double()
    x, y = batch()
    rule = rule_class(model, example_input=(2, 5, 5)).double()
    rule.step(x, y)
    before = [p.grad.clone() for p in model.blocks.parameters()]
    with torch.no_grad():
        model.head[1].weight.mul_(-5.0)  # a different output, a different output error
    rule.step(x, y)
    same = all(
        torch.equal(p.grad, g) for p, g in zip(model.blocks.parameters(), before, strict=True)
    )
    assert same == (rule_class is DRTP)


def test_micro_points_inject_at_each_layer():
    """'micro': points inside a block; the block's later layers learn from the next point."""
    model = ConvNet(blocks=2).double()
    x, y = batch()
    rule = DFA(model, points=["blocks.0.0", "blocks.1"], example_input=(2, 5, 5)).double()
    assert rule.points == ["blocks.0.0", "blocks.1"]
    rule.step(x, y)
    conv = model.blocks[0][0]
    e = (torch.softmax(model(x), 1) - F.one_hot(y, 3)) / 4
    d = (e @ rule.B[0].T).view(4, 3, 5, 5)  # injected at the conv's output: no σ′ in between
    torch.testing.assert_close(conv.bias.grad, d.sum((0, 2, 3)))


def test_feature_map_points_need_an_example_input():
    model = ConvNet()
    with pytest.raises(ValueError, match=r"'blocks.0'.*example_input="):
        DFA(model)
    rule = DFA(model, example_input=(2, 5, 5))
    with pytest.raises(ValueError, match=r"'blocks.0'.*shape \(3, 6, 6\).*\(3, 5, 5\)"):
        rule.step(torch.randn(2, 2, 6, 6), torch.tensor([0, 1]))


def test_probe_leaves_batchnorm_statistics_and_modes_alone():
    model = build_model("resnet20", input_shape=(3, 8, 8), num_classes=4)
    model.blocks[1].eval()
    stats = [b.clone() for b in model.buffers()]
    DFA(model, example_input=(3, 8, 8))
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers(), strict=True))
    assert model.training and not model.blocks[1].training


@pytest.mark.parametrize("rule_class", [DFA, DRTP, GrAPE])
@pytest.mark.parametrize(("name", "size"), [("lenet", 12), ("resnet20", 8), ("vgg16", 32)])
def test_projection_rules_run_on_the_zoo(rule_class, name, size):
    model = build_model(name, input_shape=(3, size, size), num_classes=4)
    rule = rule_class(model, example_input=(3, size, size))
    assert rule.points == [f"blocks.{i}" for i in range(len(model.blocks))]
    x, y = torch.randn(2, 3, size, size), torch.tensor([0, 3])
    rule.step(x, y)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
