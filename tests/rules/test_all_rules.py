"""What every registered rule must do, checked over the whole registry."""

import pytest
import torch

import bpfree
from bpfree.models import MLP
from bpfree.rules import RULES

ALL_RULES = sorted(RULES)


def make_model(rule: str, seed: int = 0) -> MLP:
    activation = "tanh" if rule == "drtp" else "relu"
    generator = torch.Generator().manual_seed(seed)
    return MLP((10, 16, 12, 3), activation=activation, dropout=0.1, generator=generator)


def teacher_task(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs labelled by a random linear teacher: learnable by every rule."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=generator)
    teacher = torch.randn(10, 3, generator=generator)
    return x, (x @ teacher).argmax(dim=1)


@pytest.mark.parametrize("name", ALL_RULES)
def test_every_parameter_gets_a_finite_grad(name):
    model = make_model(name)
    x, y = teacher_task(32)
    rule = bpfree.build(name, model)
    if rule.applies_own_updates:  # the update is applied in step: every weight moves instead
        before = [p.detach().clone() for p in model.parameters()]
        rule.bind_optimizer(torch.optim.SGD(model.parameters(), lr=0.1))
    result = rule.step(x, y)
    assert result.output.shape == (32, 3)
    for i, p in enumerate(model.parameters()):
        if rule.applies_own_updates:
            assert p.grad is None and torch.isfinite(p).all() and not torch.equal(p, before[i])
        else:
            assert p.grad is not None and p.grad.shape == p.shape and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", ALL_RULES)
@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam])
def test_rule_lowers_the_training_loss(name, optimizer):
    torch.manual_seed(0)
    model = make_model(name)
    rule = bpfree.build(name, model)
    opt = optimizer(model.parameters(), lr=0.05 if optimizer is torch.optim.SGD else 0.005)
    rule.bind_optimizer(opt)
    x, y = teacher_task()
    model.eval()  # no dropout noise in the loss we compare
    before = rule.step(x, y).loss
    model.train()
    for _ in range(200):
        rule.step(x, y)
        opt.step()
    model.eval()
    after = rule.step(x, y).loss
    assert after < 0.7 * before


@pytest.mark.parametrize("name", ALL_RULES)
def test_same_seed_gives_identical_weights(name):
    def run():
        torch.manual_seed(3)
        model = make_model(name, seed=3)
        rule = bpfree.build(name, model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        rule.bind_optimizer(opt)
        x, y = teacher_task(64)
        for _ in range(5):
            rule.step(x, y)
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(run(), run(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ALL_RULES)
def test_feedback_state_survives_save_and_load(name, tmp_path):
    rule = bpfree.build(name, make_model(name), **({} if name == "bp" else {"seed": 1}))
    path = tmp_path / "rule.pt"
    torch.save(rule.state_dict(), path)
    fresh = bpfree.build(name, make_model(name), **({} if name == "bp" else {"seed": 2}))
    fresh.load_state_dict(torch.load(path))
    saved, loaded = rule.state_dict(), fresh.state_dict()
    assert saved.keys() == loaded.keys()
    assert (name == "bp") == (len(saved) == 0)
    for key in saved:
        assert_same(saved[key], loaded[key])


def assert_same(a, b):
    """Tensors equal, and containers of them equal element by element."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


# Rules whose only state is the position of their random stream (an integer buffer): the
# forward gradients' perturbations, FF's negative samples.
STREAM_ONLY = {"fg-activity", "fg-weight", "ff"}


@pytest.mark.parametrize("name", [n for n in ALL_RULES if n != "bp"])
def test_feedback_state_follows_to_dtype(name):
    rule = bpfree.build(name, make_model(name)).to(torch.float64)
    state = rule.state_dict().values()
    tensors = [t for t in state if isinstance(t, torch.Tensor) and t.is_floating_point()]
    assert (name in STREAM_ONLY) != bool(tensors)
    assert all(t.dtype == torch.float64 for t in tensors)


@pytest.mark.parametrize("name", ALL_RULES)
def test_labels_out_of_range_are_refused(name):
    rule = bpfree.build(name, make_model(name))
    x = torch.randn(4, 10)
    with pytest.raises(ValueError, match=r"label 3 is out of range.*\[0, 2\]"):
        rule.step(x, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="shape"):
        rule.step(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        rule.step(x, torch.zeros(4))


@pytest.mark.parametrize("name", ALL_RULES)
def test_wrong_input_shape_is_refused(name):
    rule = bpfree.build(name, make_model(name))
    with pytest.raises(ValueError, match="10 features"):
        rule.step(torch.randn(4, 11), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("name", ALL_RULES)
def test_empty_and_non_finite_batches_are_refused_before_any_update(name):
    model = make_model(name)
    rule = bpfree.build(name, model)
    rule.bind_optimizer(torch.optim.SGD(model.parameters(), lr=0.1))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    x, y = teacher_task(4)
    x[2, 5] = float("nan")
    x[3, 0] = float("inf")
    with pytest.raises(ValueError, match="2 non-finite input values"):
        rule.step(x, y)
    with pytest.raises(ValueError, match="empty"):
        rule.step(torch.randn(0, 10), torch.zeros(0, dtype=torch.long))
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_unknown_rule_and_option_are_named():
    with pytest.raises(ValueError, match=r"unknown rule 'pepsi'.*pepita"):
        bpfree.build("pepsi", make_model("bp"))
    with pytest.raises(ValueError, match=r"no option 'sing'.*sign"):
        bpfree.build("pepita", make_model("pepita"), sing=-1)
