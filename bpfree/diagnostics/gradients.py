"""How close a rule's update is to the true gradient: their cosine, per parameter."""

from __future__ import annotations

import copy

import torch

from bpfree.diagnostics.alignment import cosine
from bpfree.rules.base import Rule, clear_grads


def update_cosines(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Cosine between the rule's ``.grad`` and backpropagation's on the same batch, by parameter.

    Both are taken in eval mode (no dropout noise) on the loss the rule descends. The rule's
    state, the model's mode and the random streams are left as they were, so measuring changes
    nothing in the training run.
    """
    model = rule.model
    was_training = model.training
    saved_state = copy.deepcopy(rule.state_dict())
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            model.eval()
            rule.step(x, y)
            updates = {
                name: p.grad.detach().clone()
                for name, p in model.named_parameters()
                if p.grad is not None
            }
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
