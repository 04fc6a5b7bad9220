"""Every rule resumes exactly: its state saved after some steps (model, rule, optimizer, schedule
and random generators, as the trainer saves them) and loaded into freshly built ones continues
with bitwise the same weights and feedback state as a run that never stopped, in float64, with
its default options and with those that hold extra state, on an MLP and on each conv net the
rule trains (the cases of ``rules/same_weights.py``)."""

import importlib.util
import io
from pathlib import Path

import pytest
import torch

import bpfree
from bpfree.rules import rule_options
from bpfree.testing import assert_same
from bpfree.training import TrainingState

_spec = importlib.util.spec_from_file_location(
    "same_weights", Path(__file__).parents[1] / "rules" / "same_weights.py"
)
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

STEPS, SPLIT = 6, 3


def build(rule, model_name, options, seed):
    """A fresh training state; ``seed`` seeds the rule and torch's generator (a resumed state
    must not depend on them)."""
    torch.manual_seed(seed)
    model = cases.make_model(rule, model_name)
    options = dict(options)
    if model_name != "mlp" and "example_input" in rule_options(rule):
        options["example_input"] = cases.MODELS[model_name]
    if rule == "ff" and options.get("negatives") == "hybrid" and model_name == "mlp":
        options["image_shape"] = cases.MODELS["mlp"][1:]
    if "seed" in rule_options(rule):
        options["seed"] = seed
    learner = bpfree.build(rule, model, **options).double()
    optimizer = bpfree.optimizer(learner, torch.optim.SGD, lr=0.01, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 4], gamma=0.5)
    return TrainingState(model, learner, optimizer, scheduler)


def batches(model_name):
    data = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        x = torch.randn(cases.BATCH, *cases.MODELS[model_name], generator=data, dtype=torch.float64)
        yield x, torch.randint(0, cases.CLASSES, (cases.BATCH,), generator=data)


def train(rule, model_name, options, split=None):
    state = build(rule, model_name, options, seed=0)
    for step, (x, y) in enumerate(batches(model_name)):
        if step == split:
            buffer = io.BytesIO()
            torch.save(state.state_dict(), buffer)
            buffer.seek(0)
            state = build(rule, model_name, options, seed=5)
            state.load_state_dict(torch.load(buffer, weights_only=True))
        state.step(x, y)
        state.scheduler.step()
    return state


def trainable_cases():
    for rule, model_name, options in cases.cases():
        try:
            build(rule, model_name, options, seed=0)
        except ValueError:
            continue  # the rule does not train this model
        yield pytest.param(rule, model_name, options, id=cases.case_name(rule, model_name, options))


@pytest.mark.parametrize(("rule", "model_name", "options"), list(trainable_cases()))
def test_a_resumed_rule_continues_exactly(rule, model_name, options):
    whole = train(rule, model_name, options)
    resumed = train(rule, model_name, options, split=SPLIT)
    assert all(torch.isfinite(p).all() for p in whole.model.parameters())  # a meaningful run
    assert_same(whole.model.state_dict(), resumed.model.state_dict())
    assert_same(whole.rule.state_dict(), resumed.rule.state_dict())
    assert_same(whole.optimizer.state_dict(), resumed.optimizer.state_dict())
