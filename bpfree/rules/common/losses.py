"""The output error of the softmax cross-entropy, the signal most rules send back.

Index letters: n batch, c classes.
"""

from __future__ import annotations

import torch


def one_hot(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """The one-hot targets t (n, ..., c) of integer labels y (n, ...): (n, c) for labels (n,),
    (n, t, c) for a sequence's next tokens (n, t)."""
    t = torch.zeros(*y.shape, num_classes, dtype=dtype, device=y.device)
    return t.scatter_(-1, y.unsqueeze(-1), 1.0)


def cross_entropy_error(
    logits: torch.Tensor, t: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, p, e) of logits (n, c) for one-hot targets t and labels y, from one log-softmax:
    loss = −(1/n) Σ log p_y, p = softmax(logits), e = p − t."""
    log_p = torch.log_softmax(logits, dim=1)
    p = log_p.exp()
    loss = -log_p.gather(1, y.unsqueeze(1)).mean()
    return loss, p, p - t
