"""The forward-gradient family's mechanism: directional derivatives by forward-mode AD, no backward.

A forward gradient is g = (∇f · v) v for a random direction v ~ N(0, I): since E[v vᵀ] = I it is
an unbiased estimate of ∇f, and ∇f · v is one Jacobian-vector product, computed by
``torch.func.jvp`` alongside the forward pass (Baydin et al. 2022). Everything here runs under
``torch.no_grad()``: no reverse-mode graph is built and no backward pass runs.

The directions are drawn from a ``RandomStream``, whose position is rule state: it is saved and
loaded with ``state_dict()``, so a resumed run draws the directions it would have drawn.

Index letters: n batch, c classes, k features at a layer's output, i its inputs, h w spatial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from bpfree.rules.base import feedback_generator


def check_perturbations(perturbations: int) -> int:
    """``perturbations`` as a positive int, or a ``ValueError`` naming it."""
    if isinstance(perturbations, bool) or not isinstance(perturbations, int) or perturbations < 1:
        raise ValueError(f"perturbations must be a positive integer, got {perturbations!r}")
    return perturbations


def per_sample_loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ℓ_i (n,): the softmax cross-entropy of each sample; the rules descend its mean."""
    return F.cross_entropy(output, y, reduction="none")


class RandomStream(nn.Module):
    """A seeded stream of N(0, I) draws whose position is a buffer (``state``, uint8).

    The stream is ``feedback_generator(seed, rule_name)``'s: it never coincides with a model
    initialised from the same seed. Draws are made on the CPU and moved to the model's device.
    """

    def __init__(self, seed: int, rule_name: str) -> None:
        super().__init__()
        self.register_buffer("state", feedback_generator(seed, rule_name).get_state())

    def normal(self, shapes: Sequence[Sequence[int]], like: torch.Tensor) -> list[torch.Tensor]:
        """One N(0, I) tensor per shape, with ``like``'s dtype and device; advances the stream."""
        generator = torch.Generator()
        generator.set_state(self.state.cpu())
        draws = [
            torch.randn(tuple(shape), generator=generator, dtype=like.dtype).to(like.device)
            for shape in shapes
        ]
        self.state.copy_(generator.get_state())
        return draws


def output_shapes(
    model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor
) -> list[tuple[int, ...]]:
    """The shape of one sample of each module's output (modules by name), read by one pass on ``x``.

    The pass runs in eval mode under ``torch.no_grad()``, so no BatchNorm statistic moves and no
    dropout mask is drawn; every module's training flag is restored afterwards. A module that
    never runs is a ``ValueError``.
    """
    seen: dict[int, tuple[int, ...]] = {}

    def record(index: int):
        def hook(module, inputs, output):
            seen[index] = tuple(output.shape[1:])

        return hook

    modes = {module: module.training for module in model.modules()}
    handles = [m.register_forward_hook(record(i)) for i, m in enumerate(modules.values())]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    missing = [path for i, path in enumerate(modules) if i not in seen]
    if missing:
        raise ValueError(f"modules never ran in the forward pass: {missing}")
    return [seen[i] for i in range(len(modules))]


@contextmanager
def batch_statistics_only(model: nn.Module) -> Iterator[None]:
    """Within it, BatchNorm in training mode uses batch statistics and leaves its running ones.

    ``torch.func.jvp`` refuses in-place updates of captured buffers, and the rule's clean pass
    (if any) is the one that should move them.
    """
    frozen = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    for module in frozen:
        module.track_running_stats = False
    try:
        yield
    finally:
        for module in frozen:
            module.track_running_stats = True


def activity_jvp(
    model: nn.Module,
    modules: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    directions: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """One forward pass perturbed along u_l (n, *shape_l) at each module's output.

    Each module's output z_l becomes z_l + ε_l, and the per-sample losses ℓ are differentiated
    along ε = u at ε = 0:

        d_i = Σ_l ∇_{z_l,i} ℓ_i · u_l,i        (GrAPE eq. 4's directional derivative)

    The estimate assumes ℓ_i depends only on sample i's activities; BatchNorm in training mode
    breaks that (its batch statistics mix the samples), and the cross-sample terms are then
    left out. Running statistics are not updated by this pass.

    Returns: ℓ (n,), d (n,), the output logits (n, c), and each module's input (n, ...).
    """

    def perturbed(*offsets: torch.Tensor):
        inputs: dict[int, torch.Tensor] = {}

        def add(index: int) -> Callable:
            def hook(module, args, output):
                inputs[index] = args[0]
                return output + offsets[index]

            return hook

        handles = [module.register_forward_hook(add(i)) for i, module in enumerate(modules)]
        try:
            output = model(x)
        finally:
            for handle in handles:
                handle.remove()
        return per_sample_loss(output, y), (output, [inputs[i] for i in range(len(modules))])

    zeros = tuple(torch.zeros_like(u) for u in directions)
    with torch.no_grad(), batch_statistics_only(model):
        loss, d, (output, inputs) = torch.func.jvp(
            perturbed, zeros, tuple(directions), has_aux=True
        )
    return loss, d, output, inputs


def activity_gradient(d: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """ĝ_l = d ⊙ u_l (n, *shape): the activity-perturbed estimate of ∇_{z_l} ℓ_i per sample."""
    return u * d.view(-1, *([1] * (u.dim() - 1)))
