"""Direct feedback alignment: the output error projected straight to every hidden layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bpfree.rules.projection.mechanism import ProjectionRule
from bpfree.rules.registry import register


@register
class DFA(ProjectionRule):
    """Direct feedback alignment (Nøkland 2016): δ_l = (B_l e) ⊙ σ′(a_l).

    Symbols: e = softmax(a_L) − t the output error (n, c), B_l a fixed random (k_l, c) matrix per
    injection point, σ′(a_l) the derivative of the point's block, taken exactly by autograd.

    Update (GrAPE paper eq. 2):
        δ_L = e,   δ_l = (B_l e) ⊙ σ′(a_l),   ΔW_l = δ_l h_{l−1}ᵀ   (averaged over the batch)
    The output block is trained by the exact gradient of the softmax cross-entropy.

    Args:
        model: an ``nn.Module`` with ``blocks`` (e.g. ``MLP``), or any model with ``points``.
        points: modules (or their names) at whose outputs B_l e is injected; default
            ``model.blocks`` ('macro'); layers inside the blocks give the 'micro' setting.
        seed: seed of the generator drawing the B_l (uniform in ±√(6 / k_l)).
        sparsity: fraction of the entries of each B_l held at zero, in [0, 1).
        example_input: an input batch, or the shape of one input (e.g. (3, 32, 32)), from
            which one probe forward pass reads the output shape of each point; needed when a
            point's output is a feature map (k = C·h·w, B_l e reshaped to (C, h, w)), optional
            when every point ends in an ``nn.Linear``.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = DFA(MLP((784, 1024, 10)))
        >>> rule.step(x, y); opt.step()

    Reference: Nøkland, "Direct Feedback Alignment Provides Learning in Deep Neural Networks",
    NeurIPS 2016.
    """

    name = "dfa"

    def __init__(
        self,
        model: nn.Module,
        *,
        points: Sequence[str | nn.Module] | None = None,
        seed: int = 0,
        sparsity: float = 0.0,
        example_input: torch.Tensor | Sequence[int] | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(
            model,
            points=points,
            seed=seed,
            sparsity=sparsity,
            example_input=example_input,
            num_classes=num_classes,
        )

    def projected_signal(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = torch.softmax(output, dim=1)
        e[torch.arange(y.shape[0], device=y.device), y] -= 1.0  # e = softmax(a_L) − t
        return e.div_(y.shape[0])
