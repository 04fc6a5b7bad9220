"""Backpropagation: the reference every other rule is measured against."""

from __future__ import annotations

import torch

from bpfree.rules.base import Rule, StepResult
from bpfree.rules.registry import register


@register
class BP(Rule):
    """Backpropagation of the softmax cross-entropy loss through the whole graph (autograd).

    Update: ∂L/∂W_l of L = −(1/n) Σ log softmax(z)_y, exactly as ``loss.backward()`` gives it.

    Args:
        model: any ``nn.Module`` returning logits (n, c).
        num_classes: c; inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> model = MLP((784, 1024, 10))
        >>> rule = BP(model)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.1)
        >>> rule.step(x, y); opt.step()
    """

    name = "bp"
    trains_sequences = True

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        output = self.model(x)
        loss = self.loss(output, y)
        loss.backward()
        return StepResult(loss.detach(), output.detach())
