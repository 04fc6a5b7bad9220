"""How close a rule's update is to the true gradient: their cosine, per parameter."""

from __future__ import annotations

import copy

import torch

from bpfree.diagnostics.alignment import cosine
from bpfree.rules.base import Rule, clear_grads

# Learning rate of the throw-away SGD through which a rule that applies its own updates
# (PEPITA time-local) is measured: its update is the weight change divided by it.
PROBE_LR = 1e-3


def update_cosines(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Cosine between the rule's ``.grad`` and backpropagation's on the same batch, by parameter.

    Both are taken in eval mode (no dropout noise) on the loss the rule descends. The rule's
    state, the model's weights and mode and the random streams are left as they were, so
    measuring changes nothing in the training run. A rule that applies its own updates is
    measured by the change of the weights under plain SGD at ``PROBE_LR``, then rolled back.
    """
    model = rule.model
    was_training = model.training
    saved_state = copy.deepcopy(rule.state_dict())
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            model.eval()
            updates = (
                _applied_updates(rule, x, y) if rule.applies_own_updates else _grads(rule, x, y)
            )
            clear_grads(model)
            rule.loss(model(x), y).backward()
            return {
                name: cosine(update, dict(model.named_parameters())[name].grad)
                for name, update in updates.items()
            }
    finally:
        clear_grads(model)
        rule.load_state_dict(saved_state)
        model.train(was_training)


def _grads(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    rule.step(x, y)
    return {
        name: p.grad.detach().clone()
        for name, p in rule.model.named_parameters()
        if p.grad is not None
    }


def _applied_updates(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The descent direction a self-applying rule took: (W_before − W_after) / PROBE_LR."""
    params = dict(rule.model.named_parameters())
    before = {name: p.detach().clone() for name, p in params.items()}
    bound = getattr(rule, "optimizer", None)
    rule.bind_optimizer(torch.optim.SGD(params.values(), lr=PROBE_LR))
    try:
        rule.step(x, y)
    finally:
        if bound is not None:
            rule.bind_optimizer(bound)
        updates = {name: (before[name] - p.detach()) / PROBE_LR for name, p in params.items()}
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(before[name])
    return updates
