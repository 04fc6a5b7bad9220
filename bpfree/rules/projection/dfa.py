"""Direct feedback alignment: the output error projected straight to every hidden layer."""

from __future__ import annotations

import torch

from bpfree.rules.common.losses import one_hot
from bpfree.rules.projection.mechanism import ProjectionRule
from bpfree.rules.registry import register


@register
class DFA(ProjectionRule):
    """Direct feedback alignment (Nøkland 2016): δ_l = (B_l e) ⊙ σ′(a_l).

    Symbols: e = softmax(a_L) − t the output error (n, c), B_l a fixed random (k_l, c) matrix per
    injection point, σ′(a_l) the derivative of the point's block, taken exactly by autograd.

    Update (GrAPE paper eq. 2):
        δ_L = e,   δ_l = (B_l e) ⊙ σ′(a_l),   ΔW_l = δ_l h_{l−1}ᵀ   (averaged over the batch)
    The output block is trained by the exact gradient of the softmax cross-entropy. For a
    sequence model (logits (n, t, c)) each position has its error e_t and receives B_l e_t.

    Args: ``model``, an ``nn.Module`` with ``blocks`` (e.g. ``MLP``) or any model given
        ``points``, and the options of every projection rule (``ProjectionRule``); the B_l are
        uniform in ±√(6 / k_l).

    Example:
        >>> rule = DFA(MLP((784, 1024, 10)))
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01)
        >>> rule.step(x, y); opt.step()

    Reference: Nøkland, "Direct Feedback Alignment Provides Learning in Deep Neural Networks",
    NeurIPS 2016.
    """

    name = "dfa"
    trains_sequences = True

    def projected_signal(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = torch.softmax(output, dim=-1) - one_hot(y, self.num_classes, output.dtype)
        return e.div_(y.numel())  # e = softmax(a_L) − t, averaged over the batch (its tokens)
