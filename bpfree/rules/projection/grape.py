"""GrAPE: DFA whose feedback matrices turn toward the activity-perturbed forward gradient."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from bpfree.core.checks import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Check
from bpfree.rules.base import StepResult
from bpfree.rules.common.alignment import angle_degrees, cosine
from bpfree.rules.common.buffers import BufferList
from bpfree.rules.common.directional import (
    activity_gradient,
    batch_statistics_only,
    per_sample_loss,
)
from bpfree.rules.common.losses import one_hot
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import RandomStream
from bpfree.rules.common.tangents import forward_mode
from bpfree.rules.projection.dfa import DFA
from bpfree.rules.registry import register


@register
class GrAPE(DFA):
    """Gradient-aligned projected error (GrAPE paper Algorithm 1): DFA with B_l aligned by eq. 6.

    Symbols: e_i = softmax(a_L,i) − t_i the output error (n, c); h_l the output of injection
    point l, k = its size; u_l ~ N(0, I) a perturbation of h_l; ĝ_l,i = d_i u_l,i the
    activity-perturbed forward gradient of ℓ_i at h_l (eq. 4, by forward-mode AD); B_l (k, c).

    Each step, before DFA's update (eq. 2) with the new B_l:
        G_l = Σ_i ĝ_l,i e_iᵀ                 (k, c): the forward gradient's image of the error
        Ḡ_l ← Ḡ_l + (G_l − Ḡ_l) / t          the cumulative moving average over steps t
        cos ω̄_l = ⟨B_l, Ḡ_l⟩ / (‖B_l‖ ‖Ḡ_l‖)   (eq. 5; ⟨B_l, G_l⟩ = Σ_i (B_l e_i) · ĝ_l,i)
        B_l ← B_l − η_B ∇_B (1 − cos ω̄_l) + ξ, then rescaled to its initial norm   (eq. 6)
    with ξ ~ N(0, I) scaled to ‖ξ‖ = noise · ‖B_l‖ (App. A), so that B moves even where the
    descent direction vanishes (Ḡ_l = 0, or B_l antiparallel to Ḡ_l).

    A sequence model (logits (n, t, c), a language model) has one error e_it per position, as
    DFA injects B_l e_it at position t; each position is then a sample of the sums above, with
    d_it the directional derivative of that position's own loss ℓ_it (which, causal, sees
    positions ≤ t), so that ĝ_l,it = d_it u_l,it estimates ∇_{h_l,t} ℓ_it, the gradient that
    B_l e_it stands in for at position t.

    Reading of eq. 6: written literally, B ← B − η_B (1 − cos ω̄) B only rescales B, which the
    norm rescaling then undoes, so B would never turn. We take it as one plain SGD step on
    (1 − cos ω̄_l) with respect to B_l, ∇_B cos = Ḡ/(‖B‖ ‖Ḡ‖) − cos · B/‖B‖², which is what
    makes cos ω̄ rise toward 1 as in App. A Fig. 4. The step is tangent to the sphere ‖B‖ =
    const, so its angular rate is about η_B / ‖B‖² per step.

    The B_l are drawn from N(0, 2/k) (the paper's normal draw, at a He-uniform B's variance).
    The first perturbation's tangent is carried by DFA's own forward pass (forward-mode AD, the
    same dropout masks), so a step costs one forward pass, its tangent and DFA's local
    backward; each further perturbation adds a tangent pass of its own (no reverse graph),
    which does not move BatchNorm's running statistics (DFA's pass does).

    Args:
        model: an ``nn.Module`` with ``blocks``, or any model with ``points``.
        points: modules (or their names) at whose outputs B_l e is injected and h_l perturbed;
            default ``model.blocks``.
        seed: seed of the B_l and of the perturbations (two separate streams).
        feedback_lr: η_B, the SGD learning rate of the B_l (paper: 1e-3); positive.
        perturbations: forward-gradient directions per batch, averaged into G_l; positive int.
        noise: ‖ξ‖ / ‖B_l‖ of the noise added at each B update; non-negative.
        example_input: an input batch or the shape of one input; needed for feature-map points.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    State: ``B.l`` (k, c), ``G.l`` (k, c) the averages Ḡ_l, ``steps`` t, ``stream.state`` (the
    position of the perturbation stream).

    Example:
        >>> rule = GrAPE(lenet4, example_input=(3, 32, 32))
        >>> opt = bpfree.optimizer(rule, torch.optim.Adam, lr=1e-4)
        >>> rule.step(x, y); opt.step()

    Reference: anonymous authors, "Backpropagation-free Learning through Gradient Aligned
    Feedbacks", under review (GrAPE).
    """

    name = "grape"
    trains_sequences = True

    sparsity = Option(0.0, Check("0 (eq. 6 turns every entry of B_l)", lambda v: v == 0))
    feedback_lr = Option(1e-3, POSITIVE)
    perturbations = Option(1, POSITIVE_INT)
    noise = Option(1e-6, NON_NEGATIVE)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        self.G = BufferList([torch.zeros_like(b) for b in self.B])
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.stream = RandomStream(self.seed, f"{self.name} perturbations")

    def init_feedback(self, width: int, generator: torch.Generator, dtype) -> torch.Tensor:
        """B_l (k, c) from N(0, 2/k)."""
        b = torch.randn(width, self.num_classes, generator=generator, dtype=dtype)
        return b.mul_(math.sqrt(2.0 / width))

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """The first perturbation rides on DFA's pass (its tangent, forward-mode), the others
        take a tangent pass each; B_l is aligned, then DFA's update runs with it."""
        u = self.directions(x.shape[0])
        output, hidden, d = self.perturbed_pass(x, y, u)
        self._align(x, y, first=(u, d.detach(), output.detach()))
        return self.project(output, hidden, y)

    def perturbed_pass(
        self, x: torch.Tensor, y: torch.Tensor, u: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """The output, each point's output h_l and d (eq. 4) of a forward pass whose points
        are perturbed along u_l (forward-mode)."""
        with forward_mode():
            output, hidden = self.forward_captured(x, tangents=u)
            d = fwAD.unpack_dual(per_sample_loss(output, y)).tangent
            output = fwAD.unpack_dual(output).primal
        return output, hidden, d

    def align(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Update Ḡ_l and B_l from K forward-gradient passes on (x, y) (a step makes the first
        in its DFA pass); return each cos ω̄_l."""
        return self._align(x, y, first=None)

    def directions(self, n: int) -> list[torch.Tensor]:
        """u_l ~ N(0, I) (n, *shape_l) at every point, from the perturbation stream."""
        shapes = [(n, *self.positions, *shape) for shape in self.point_shapes]
        return self.stream.normal(shapes, self.B[0], rows=self.batch_rows(n))

    def _align(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        first: tuple[list[torch.Tensor], torch.Tensor, torch.Tensor] | None,
    ) -> list[torch.Tensor]:
        """Eqs. 4-6 from K perturbations, ``first`` = (u, d, output) already made (or None)."""
        n = x.shape[0]
        rows = n * math.prod(self.positions)  # the samples, or every position of each
        g_sum = [torch.zeros_like(g) for g in self.G]
        for k in range(self.perturbations):
            if k == 0 and first is not None:
                u, d, output = first
            else:
                u = self.directions(n)
                with torch.no_grad(), batch_statistics_only(self.model):
                    output, _, d = self.perturbed_pass(x, y, u)
            with torch.no_grad():
                e = torch.softmax(output, dim=-1) - one_hot(y, self.num_classes, output.dtype)
                e = e.reshape(rows, -1)
                for total, u_l in zip(g_sum, u, strict=True):
                    total.addmm_(activity_gradient(d, u_l).reshape(rows, -1).T, e)  # 'nk,nc->kc'
        self.sum_across_replicas(g_sum)  # G_l sums over every sample of the global batch
        self.steps += 1
        noise = self.stream.normal([b.shape for b in self.B], self.B[0]) if self.noise else None
        cosines = []
        for i, (b, g_bar, total) in enumerate(zip(self.B, self.G, g_sum, strict=True)):
            g_bar.add_(total.div_(self.perturbations).sub_(g_bar).div_(self.steps))  # eq. 5
            xi = None if noise is None else noise[i].mul_(self.noise * b.norm() / noise[i].norm())
            cosines.append(align_feedback(b, g_bar, lr=self.feedback_lr, noise=xi))
        return cosines

    def alignment(self) -> dict[str, dict[str, float]]:
        """Per injection point, cos ω̄_l between B_l and the averaged forward gradient Ḡ_l it
        stands for (eq. 5; App. A Fig. 4), and the same as an angle in degrees."""
        return {
            point: {"cos_omega_bar": cosine(b, g_bar), "angle": angle_degrees(b, g_bar)}
            for point, b, g_bar in zip(self.points, self.B, self.G, strict=True)
        }


def align_feedback(
    b: torch.Tensor,
    g_bar: torch.Tensor,
    *,
    lr: float,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One step of eq. 6 on B (k, c), in place: descend 1 − cos ω̄, add ξ, rescale to ‖B‖.

    Returns cos ω̄ before the step, a 0-d tensor (0 where Ḡ = 0, and then B only takes ξ).
    Nothing is read on the host: Ḡ = 0 needs no branch, since every term then carries Ḡ.
    """
    b_norm = b.norm()
    norms = (b_norm * g_bar.norm()).clamp_min(torch.finfo(b.dtype).tiny)  # ‖B‖ ‖Ḡ‖
    cos = (b * g_bar).sum() / norms
    b.add_(g_bar / norms - cos * b / b_norm**2, alpha=lr)  # −η ∇_B (1 − cos ω̄)
    if noise is not None:
        b.add_(noise)
    b.mul_(b_norm / b.norm())
    return cos
