"""The rule tests run on tiny batches, where thread hand-offs cost more than the arithmetic;
``forbid_autograd`` makes a test fail if a rule runs a backward pass."""

from collections.abc import Callable, Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run each test in this folder on one intra-op thread, then restore the count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def forbid_autograd(monkeypatch: pytest.MonkeyPatch, *, functions: bool = False) -> None:
    """Make every autograd backward entry point fail (and ``autograd.Function.apply`` too with
    ``functions``), so that a rule claiming no backward pass is held to it."""

    def fail(*args, **kwargs):
        raise AssertionError("a backward pass ran")

    monkeypatch.setattr(torch.autograd, "backward", fail)
    monkeypatch.setattr(torch.autograd, "grad", fail)
    monkeypatch.setattr(torch.Tensor, "backward", fail)
    if functions:
        monkeypatch.setattr(torch.autograd.Function, "apply", fail)


@pytest.fixture
def no_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backward entry points and ``autograd.Function.apply`` fail for the test's duration."""
    forbid_autograd(monkeypatch, functions=True)


@pytest.fixture
def forbid_backward(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make the backward entry points fail from then on (``autograd.Function`` stays
    allowed: forward-mode AD runs through it)."""
    return lambda: forbid_autograd(monkeypatch)
