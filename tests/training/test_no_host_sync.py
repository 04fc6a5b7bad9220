"""Nothing in a training step waits for the device: every rule's step, in the trainer's loop,
runs with the host reads of a tensor made to raise; only the loop's read every K steps (and at
the end of the epoch) reads anything back."""

from contextlib import contextmanager

import pytest
import torch

from bpfree.data import Batches
from bpfree.parallel import DataParallel
from bpfree.rules import RULES
from bpfree.training import TrainConfig, TrainingState, trainer

HOST_READS = ("item", "__float__", "__bool__", "cpu", "tolist")


@contextmanager
def host_reads_raise(monkeypatch):
    """Within it, a host read of any tensor raises, except inside ``trainer.read``."""
    allowed = [False]

    def forbid(name):
        real = getattr(torch.Tensor, name)

        def guarded(self, *args, **kwargs):
            if not allowed[0]:
                raise AssertionError(f"Tensor.{name} was called inside a training step")
            return real(self, *args, **kwargs)

        return guarded

    real_read = trainer.read

    def read(totals):
        allowed[0] = True
        try:
            return real_read(totals)
        finally:
            allowed[0] = False

    with monkeypatch.context() as patch:
        for name in HOST_READS:
            patch.setattr(torch.Tensor, name, forbid(name))
        patch.setattr(trainer, "read", read)
        yield


# The rules whose updates are defined on linear layers only (the others also train conv nets).
LINEAR_ONLY = {"ff", "ff-topdown", "afa", "pepita-wm", "pepita-time-local"}
CASES = [(rule, "mlp") for rule in RULES] + [
    (rule, "pepita-conv") for rule in RULES if rule not in LINEAR_ONLY
]


@pytest.mark.parametrize(("rule", "model"), CASES)
def test_a_step_of_every_rule_reads_nothing_back(rule, model, monkeypatch):
    """With SGD, the papers' optimizer (torch's Adam reads its step count, a host-side scalar,
    unless built ``capturable``), dropout on in the MLP."""
    config = TrainConfig(
        rule=rule, model=model, hidden=[16, 16], dropout=0.1, epochs=1, lr=0.01
    ).resolved()
    torch.manual_seed(0)
    shape = (1, 6, 6) if model == "mlp" else (3, 32, 32)
    state = TrainingState.from_config(config, input_shape=shape, num_classes=4)
    x, y = torch.rand(24, *shape), torch.randint(0, 4, (24,))
    batches = Batches(x, y, 8, shuffle=True, generator=torch.Generator().manual_seed(0))
    stepper = DataParallel(state.rule, state.optimizer, None)
    monkeypatch.setattr(trainer, "READ_EVERY", 2)
    before = [p.detach().clone() for p in state.model.parameters()]
    with host_reads_raise(monkeypatch):
        row = trainer.train_epoch(state, stepper, config, batches, epoch=1, progress=False)
    assert row["train_loss"] > 0 and 0 <= row["train_acc"] <= 100
    moved = [not torch.equal(a, b) for a, b in zip(before, state.model.parameters(), strict=True)]
    assert any(moved), f"{rule}: the epoch changed no weight"


def test_the_guard_catches_a_read_inside_a_step(monkeypatch):
    """The check above can fail: a step that reads its loss is caught."""
    config = TrainConfig(rule="bp", hidden=[8], epochs=1, lr=0.01).resolved()
    state = TrainingState.from_config(config, input_shape=(1, 6, 6), num_classes=4)
    batches = Batches(torch.rand(8, 1, 6, 6), torch.randint(0, 4, (8,)), 8, shuffle=False)
    real_step = state.rule.step

    def reading_step(x, y, **options):
        result = real_step(x, y, **options)
        result.loss.item()
        return result

    monkeypatch.setattr(state.rule, "step", reading_step)
    stepper = DataParallel(state.rule, state.optimizer, None)
    with host_reads_raise(monkeypatch), pytest.raises(AssertionError, match=r"Tensor\.item"):
        trainer.train_epoch(state, stepper, config, batches, epoch=1, progress=False)
