"""How close a rule's update is to the true gradient: their cosine, per parameter."""

from __future__ import annotations

import copy

import torch

from bpfree.rules.base import Rule
from bpfree.rules.common.alignment import cosine

# Learning rate of the throw-away SGD through which an update that a rule applies during its
# step (PEPITA time-local) is measured: the update is the weight change divided by it.
PROBE_LR = 1e-3


def update_cosines(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Cosine between the rule's update and backpropagation's gradient on the same batch, by
    parameter.

    The update of a parameter is the ``.grad`` the rule wrote, or, where it wrote none but moved
    the weight (a rule that applies its updates during ``step``), the weight change under a
    throw-away SGD at ``PROBE_LR`` divided by it. Both are taken in eval mode (no dropout noise)
    on the loss the rule descends. The rule's state, the model's weights and mode and the
    random streams are left as they were, so measuring changes nothing in the training run.
    """
    model = rule.model
    was_training = model.training
    saved_state = copy.deepcopy(rule.state_dict())
    params = dict(model.named_parameters())
    before = {name: p.detach().clone() for name, p in params.items()}
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            model.eval()
            probe = torch.optim.SGD(list(params.values()), lr=PROBE_LR)
            with rule.attached(probe):
                rule.step(x, y)
            updates = {
                name: p.grad.detach().clone()
                if p.grad is not None
                else (before[name] - p.detach()) / PROBE_LR
                for name, p in params.items()
                if p.grad is not None or not torch.equal(before[name], p.detach())
            }
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(before[name])
            model.zero_grad(set_to_none=True)
            rule.loss(model(x), y).backward()
            return {name: cosine(update, params[name].grad) for name, update in updates.items()}
    finally:
        model.zero_grad(set_to_none=True)
        rule.load_state_dict(saved_state)
        model.train(was_training)
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(before[name])
