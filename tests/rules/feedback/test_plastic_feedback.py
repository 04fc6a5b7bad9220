"""Kolen-Pollack and weight mirror align their feedback with Wᵀ; sign symmetry carries W's signs."""

import pytest
import torch

import bpfree
from bpfree.models import MLP
from bpfree.rules import BRSF, FRSF, KP, USF, WM


def teacher_task(n=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=generator)
    return x, (x @ torch.randn(20, 5, generator=generator)).argmax(1)


def train(rule, model, steps, weight_decay=0.0):
    opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=weight_decay)
    x, y = teacher_task()
    for i in range(steps):
        rule.step(x[i % 4 * 64 : (i % 4 + 1) * 64], y[i % 4 * 64 : (i % 4 + 1) * 64])
        opt.step()


def angles(rule):
    return [stats["angle"] for stats in rule.alignment().values()]


def test_kp_drives_the_alignment_angle_to_zero():
    torch.manual_seed(0)
    model = MLP((20, 32, 32, 5))
    rule = KP(model)
    rule.step(*teacher_task(8))
    start = angles(rule)
    assert min(start) > 60
    train(rule, model, 300, weight_decay=0.05)
    assert max(angles(rule)) < 0.1 * min(start)


def test_weight_mirror_drives_the_alignment_angle_to_zero(residual_cnn):
    torch.manual_seed(0)
    model = residual_cnn(groups=1)
    rule = WM(model, mirror_lr=0.1, mirror_batch=32, pre_mirror_steps=0)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    rule.step(x, y)
    start = angles(rule)
    assert min(start) > 60
    for _ in range(60):
        rule.mirror()
    assert max(angles(rule)) < 15


def test_pre_mirroring_runs_before_the_first_step():
    model = MLP((20, 32, 32, 5))
    rule = WM(model, pre_mirror_steps=80, mirror_every=0)
    rule.step(*teacher_task(16))
    assert max(angles(rule)) < 15


@pytest.mark.parametrize("rule_class", [USF, FRSF, BRSF])
def test_sign_symmetric_feedback_always_carries_the_signs_of_w(rule_class):
    torch.manual_seed(0)
    model = MLP((20, 32, 32, 5))
    rule = rule_class(model, sparsity=0.2)
    train(rule, model, 30)
    for index, layer in enumerate(rule.layers):
        b, w_t = rule.feedback(index), layer.weight.detach().T
        nonzero = b != 0
        assert (torch.sign(b[nonzero]) == torch.sign(w_t[nonzero])).all()
        assert abs(float((~nonzero).float().mean()) - 0.2) < 0.05  # the mask, and only it


def test_brsf_redraws_its_magnitudes_each_batch_and_frsf_keeps_them():
    x, y = teacher_task(8)
    for rule_class, changes in ((BRSF, True), (FRSF, False)):
        rule = rule_class(MLP((20, 8, 5)))
        before = rule.magnitudes[1].clone()
        rule.step(x, y)
        assert (not torch.equal(before, rule.magnitudes[1])) == changes
