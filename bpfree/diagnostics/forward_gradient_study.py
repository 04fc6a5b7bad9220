"""How well one forward gradient points along the true gradient, against batch size and depth
(GrAPE paper, Fig. 2): the study behind the claim that forward gradients degrade as networks grow.

    from bpfree.diagnostics.forward_gradient_study import forward_gradient_cosines
    table = forward_gradient_cosines("fg-activity", depths=(1, 2, 4), batch_sizes=(1, 16, 256))
    table[depth][batch]   # mean cosine over layers and repeats

Each cell builds an MLP with ``depth`` hidden layers of ``width`` ReLU units (He-uniform, seeded),
draws a batch (from ``x``, ``y`` when given, else standard normal inputs with uniform labels),
and takes ``update_cosines`` of a fresh forward-gradient rule (one perturbation, a new seed per
repeat) against backpropagation on that batch; the cell is the mean over the weight matrices and
the repeats.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch

from bpfree.diagnostics.gradients import update_cosines
from bpfree.models import MLP
from bpfree.rules import build

FORWARD_GRADIENT_RULES = ("fg-activity", "fg-weight")
FIRST_LAYER = "blocks.0.0.weight"  # the MLP's first Linear


def forward_gradient_cosines(
    rule: str,
    *,
    depths: Sequence[int],
    batch_sizes: Sequence[int],
    width: int = 256,
    input_size: int = 784,
    num_classes: int = 10,
    perturbations: int = 1,
    repeats: int = 5,
    seed: int = 0,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> dict[int, dict[int, float]]:
    """{depth: {batch size: mean cosine between the first layer's update and its gradient}}."""
    if rule not in FORWARD_GRADIENT_RULES:
        raise ValueError(f"rule must be one of {', '.join(FORWARD_GRADIENT_RULES)}, got {rule!r}")
    if repeats < 1 or not depths or not batch_sizes:
        raise ValueError("need at least one depth, one batch size and one repeat")
    if x is not None and (y is None or max(batch_sizes) > len(x)):
        raise ValueError("give labels y with x, and at least as many samples as the largest batch")
    generator = torch.Generator().manual_seed(seed)
    if x is None:
        x = torch.randn(max(batch_sizes), input_size, generator=generator)
        teacher = torch.randn(input_size, num_classes, generator=generator)
        y = (x @ teacher).argmax(dim=1)
    x = x.reshape(len(x), -1)
    table: dict[int, dict[int, float]] = {}
    for depth in depths:
        model = MLP(
            (x.shape[1], *[width] * depth, num_classes),
            generator=torch.Generator().manual_seed(seed + depth),
        )
        table[depth] = {}
        for batch in batch_sizes:
            cosines = []
            for repeat in range(repeats):
                learner = build(rule, model, seed=seed + repeat, perturbations=perturbations)
                cosines.append(update_cosines(learner, x[:batch], y[:batch])[FIRST_LAYER])
            table[depth][batch] = statistics.fmean(cosines)
    return table
