"""What every registered rule must do: the contract of ``bpfree.testing``, run over the whole
registry, and what the registry itself promises."""

import functools

import pytest
import torch

import bpfree
from bpfree.rules import RULES
from bpfree.testing import CHECKS, contract_model

ALL_RULES = sorted(RULES)


def make_model(rule: str, seed: int = 0):
    """The contract's MLP, with tanh units for DRTP (as in the PEPITA paper's Table 1)."""
    return contract_model(seed, activation="tanh" if rule == "drtp" else "relu")


def factory(name: str):
    """``make(model, seed)`` for a registered rule; BP has no seed."""
    if name == "bp":
        return lambda model, seed: bpfree.build(name, model)
    return lambda model, seed: bpfree.build(name, model, seed=seed)


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("name", ALL_RULES)
def test_every_rule_keeps_the_contract(name, check):
    CHECKS[check](factory(name), functools.partial(make_model, name))


# Rules whose only state is the position of their random streams (integer buffers): the
# forward gradients' perturbations, FF's negative samples.
STREAM_ONLY = {"fg-activity", "fg-weight", "ff"}


@pytest.mark.parametrize("name", ALL_RULES)
def test_the_rules_with_feedback_state_hold_floating_point_tensors(name):
    state = bpfree.build(name, make_model(name)).state_dict()
    tensors = [t for t in state.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    assert (name in STREAM_ONLY or name == "bp") != bool(tensors)
    assert (name == "bp") == (len(state) == 0)


def test_unknown_rule_and_option_are_named():
    with pytest.raises(ValueError, match=r"unknown rule 'pepsi'.*pepita"):
        bpfree.build("pepsi", make_model("bp"))
    with pytest.raises(ValueError, match=r"unknown option 'sing' of rule 'pepita'.*sign"):
        bpfree.build("pepita", make_model("pepita"), sing=-1)
