"""Directional derivatives by forward-mode AD: the ∇ℓ · u that forward gradients (FGActivity)
and GrAPE's feedback alignment are made of.

Forward-mode AD (``torch.autograd.forward_ad``) carries a tangent alongside the forward pass:
a Jacobian-vector product for about the cost of one more pass. Everything here runs under
``torch.no_grad()``, so no reverse-mode graph is built and no backward runs.

Index letters: n batch, c classes, k features at a module's output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn

from bpfree.rules.common.tangents import forward_mode


def per_sample_loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ℓ_i (n,): the softmax cross-entropy of each sample; the rules descend its mean. Of a
    sequence model's logits (n, t, c), each position's own loss ℓ_it (n, t)."""
    return F.cross_entropy(output.flatten(0, -2), y.flatten(), reduction="none").view(y.shape)


@contextmanager
def batch_statistics_only(model: nn.Module) -> Iterator[None]:
    """Within it, BatchNorm in training mode uses batch statistics and leaves its running ones.

    A forward-mode pass probes the loss along a direction; it is not a step of the model, so it
    must not move the running statistics: the rule's clean pass (if any) is the one that should.
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


class ActivityJvp:
    """``jvp(model, x, y, u)``: one forward pass of ``model`` perturbed along u_l at the output
    of each of ``modules`` (modules of ``model``).

    Each module's output z_l becomes z_l + ε_l, and the per-sample losses ℓ are differentiated
    along ε = u at ε = 0:

        d_i = Σ_l ∇_{z_l,i} ℓ_i · u_l,i        (GrAPE eq. 4's directional derivative)

    The estimate assumes ℓ_i depends only on sample i's activities; BatchNorm in training mode
    breaks that (its batch statistics mix the samples), and the cross-sample terms are then
    left out. Running statistics are not updated by this pass.

    The forward hooks that perturb the outputs are registered once, here, and act only while a
    call runs: any other forward pass of the model is unchanged, and a compiled step traces the
    hooks rather than their registration. What a running call keeps is pushed on a list and
    popped after it, not set on attributes and reset: torch 2.13's compiler, replaying a
    graph's changes to attributes of such an object, can set a stale value (a tensor for
    ``None``), which would leave the hooks active after a compiled step.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.count = len(modules)
        # (directions, inputs) of the call running
        self._running: list[tuple[Sequence[torch.Tensor], dict[int, torch.Tensor]]] = []
        for index, module in enumerate(modules):
            module.register_forward_hook(self._perturb(index))

    def _perturb(self, index: int) -> Callable:
        def hook(module, args, output):
            if not self._running:  # a forward pass of anyone else: unchanged
                return None
            directions, inputs = self._running[-1]
            inputs[index] = fwAD.unpack_dual(args[0]).primal
            primal, tangent = fwAD.unpack_dual(output)  # z_l + ε_l: ε_l's tangent is u_l
            u = directions[index]
            return fwAD.make_dual(primal, u if tangent is None else tangent + u)

        return hook

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        directions: Sequence[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """ℓ (n,), d (n,), the output logits (n, c), and each module's input (n, ...), for
        the directions u_l (n, *shape_l), one per module."""
        inputs: dict[int, torch.Tensor] = {}
        self._running.append((directions, inputs))
        try:
            with torch.no_grad(), batch_statistics_only(model), forward_mode():
                output = model(x)
                loss, d = fwAD.unpack_dual(per_sample_loss(output, y))
                output = fwAD.unpack_dual(output).primal
        finally:
            self._running.pop()
        return loss, d, output, [inputs[i] for i in range(self.count)]


def activity_gradient(d: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """ĝ_l = d ⊙ u_l (n, *shape): the activity-perturbed estimate of ∇_{z_l} ℓ_i per sample
    (d (n,)), or per position (d (n, t), u (n, t, k): ĝ_it = d_it u_it)."""
    return u * d.view(*d.shape, *([1] * (u.dim() - d.dim())))
