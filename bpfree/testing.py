"""The rule contract as checks a new rule can be run through (docs/extending.md).

Each check takes a *rule factory* ``make(model, seed)`` returning a fresh rule on ``model``
(``seed`` seeds its feedback; a rule without random state may ignore it) and raises
``AssertionError`` saying what the rule got wrong. ``check_rule`` runs them all; the test
suite runs each over every registered rule.

Example:
    >>> from bpfree.testing import check_rule
    >>> check_rule(lambda model, seed: SignDFA(model, seed=seed))

The checks train the MLP ``contract_model()`` (10 inputs, hidden layers of 16 and 12, 3
classes, dropout 0.1) on ``teacher_task()``, inputs labelled by a random linear teacher.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import torch

from bpfree.models import MLP
from bpfree.rules import Rule, optimizer

RuleFactory = Callable[[torch.nn.Module, int], Rule]


def contract_model(seed: int = 0, activation: str = "relu") -> MLP:
    """The MLP the checks train: 10-16-12-3, dropout 0.1, seeded."""
    generator = torch.Generator().manual_seed(seed)
    return MLP((10, 16, 12, 3), activation=activation, dropout=0.1, generator=generator)


def teacher_task(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (n, 10) labelled by a random linear teacher into 3 classes: learnable by every
    rule."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=generator)
    teacher = torch.randn(10, 3, generator=generator)
    return x, (x @ teacher).argmax(dim=1)


def writes_a_finite_update(make: RuleFactory, model: Callable[[], MLP] = contract_model) -> None:
    """One step writes a finite ``.grad`` of every parameter's shape (a rule that applies its
    updates during the step instead moves every weight, finitely, and leaves ``.grad`` None),
    and returns the clean pass's logits."""
    net = model()
    x, y = teacher_task(32)
    rule = make(net, 0)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer(rule, torch.optim.SGD, lr=0.1)
    result = rule.step(x, y)
    assert result.output.shape == (32, 3), f"step returned logits of shape {result.output.shape}"
    for i, p in enumerate(net.parameters()):
        if rule.applies_own_updates:
            assert p.grad is None and torch.isfinite(p).all() and not torch.equal(p, before[i])
        else:
            assert p.grad is not None, "a parameter got no .grad"
            assert p.grad.shape == p.shape and torch.isfinite(p.grad).all()


def lowers_the_training_loss(
    make: RuleFactory, model: Callable[[], MLP] = contract_model, steps: int = 200
) -> None:
    """With SGD and with Adam, ``steps`` steps on the teacher task lower the loss below 70 %."""
    for optimizer_class, lr in ((torch.optim.SGD, 0.05), (torch.optim.Adam, 0.005)):
        torch.manual_seed(0)
        net = model()
        rule = make(net, 0)
        learner = optimizer(rule, optimizer_class, lr=lr)
        x, y = teacher_task()
        net.eval()  # no dropout noise in the loss compared
        before = rule.step(x, y).loss
        net.train()
        for _ in range(steps):
            rule.step(x, y)
            learner.step()
        net.eval()
        after = rule.step(x, y).loss
        assert after < 0.7 * before, f"{optimizer_class.__name__}: loss {before} -> {after}"


def reproduces_with_a_seed(make: RuleFactory, model: Callable[[], MLP] = contract_model) -> None:
    """The same seeds (weights, feedback, dropout) give bitwise the same weights."""

    def run() -> list[torch.Tensor]:
        torch.manual_seed(3)
        net = model()
        rule = make(net, 3)
        learner = optimizer(rule, torch.optim.SGD, lr=0.1, momentum=0.9)
        x, y = teacher_task(64)
        for _ in range(5):
            rule.step(x, y)
            learner.step()
        return [p.detach().clone() for p in net.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(run(), run(), strict=True))


def state_survives_save_and_load(
    make: RuleFactory, model: Callable[[], MLP] = contract_model
) -> None:
    """``rule.state_dict()`` saved (loaded back with ``weights_only=True``) into a rule built
    with another seed gives the same state, key for key."""
    rule = make(model(), 1)
    buffer = io.BytesIO()
    torch.save(rule.state_dict(), buffer)
    buffer.seek(0)
    fresh = make(model(), 2)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    saved, loaded = rule.state_dict(), fresh.state_dict()
    assert saved.keys() == loaded.keys()
    for key in saved:
        assert_same(saved[key], loaded[key])


def state_follows_the_dtype(make: RuleFactory, model: Callable[[], MLP] = contract_model) -> None:
    """``rule.to(torch.float64)`` turns every floating-point tensor of its state to float64."""
    rule = make(model(), 0).to(torch.float64)
    tensors = [t for t in rule.state_dict().values() if isinstance(t, torch.Tensor)]
    assert all(t.dtype == torch.float64 for t in tensors if t.is_floating_point())


def refuses_bad_labels(make: RuleFactory, model: Callable[[], MLP] = contract_model) -> None:
    """Labels out of range, of the wrong shape or not integers are a ``ValueError`` naming it."""
    rule = make(model(), 0)
    x = torch.randn(4, 10)
    expect_error(
        lambda: rule.step(x, torch.tensor([0, 1, 2, 3])), r"label 3 is out of range.*\[0, 2\]"
    )
    expect_error(lambda: rule.step(x, torch.tensor([0, 1])), "shape")
    expect_error(lambda: rule.step(x, torch.zeros(4)), "integer")


def refuses_a_wrong_input_shape(
    make: RuleFactory, model: Callable[[], MLP] = contract_model
) -> None:
    """Inputs that do not fit the model are a ``ValueError`` naming the features expected."""
    rule = make(model(), 0)
    expect_error(
        lambda: rule.step(torch.randn(4, 11), torch.zeros(4, dtype=torch.long)), "10 features"
    )


def refuses_empty_and_non_finite_batches_before_any_update(
    make: RuleFactory, model: Callable[[], MLP] = contract_model
) -> None:
    """An empty batch and NaN or infinite inputs are refused before anything changes."""
    net = model()
    rule = make(net, 0)
    optimizer(rule, torch.optim.SGD, lr=0.1)
    before = {key: value.clone() for key, value in net.state_dict().items()}
    x, y = teacher_task(4)
    x[2, 5] = float("nan")
    x[3, 0] = float("inf")
    expect_error(lambda: rule.step(x, y), "2 non-finite input values")
    expect_error(lambda: rule.step(torch.randn(0, 10), torch.zeros(0, dtype=torch.long)), "empty")
    assert all(torch.equal(before[key], value) for key, value in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


CHECKS: dict[str, Callable[..., None]] = {
    check.__name__: check
    for check in (
        writes_a_finite_update,
        lowers_the_training_loss,
        reproduces_with_a_seed,
        state_survives_save_and_load,
        state_follows_the_dtype,
        refuses_bad_labels,
        refuses_a_wrong_input_shape,
        refuses_empty_and_non_finite_batches_before_any_update,
    )
}


def check_rule(make: RuleFactory, model: Callable[[], MLP] = contract_model) -> None:
    """Run every check of the contract on the rules ``make`` builds."""
    for check in CHECKS.values():
        check(make, model)


def expect_error(call: Callable[[], Any], fragment: str) -> None:
    """``call()`` raises a ``ValueError`` whose message contains ``fragment`` (a regex)."""
    try:
        call()
    except ValueError as error:
        assert re.search(fragment, str(error)), f"wrong message: {error}"
        return
    raise AssertionError(f"no ValueError (expected one saying {fragment!r})")


def assert_same(a: Any, b: Any) -> None:
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
