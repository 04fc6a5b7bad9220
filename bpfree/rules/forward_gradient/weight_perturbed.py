"""Weight-perturbed forward gradient: all parameters nudged along one random direction."""

from __future__ import annotations

from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn

from bpfree.core.checks import POSITIVE_INT, SEED
from bpfree.rules.base import Rule, StepResult
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import RandomStream
from bpfree.rules.common.tangents import forward_mode
from bpfree.rules.registry import register


@register
class FGWeight(Rule):
    """Weight-perturbed forward gradient (Baydin et al. 2022): g = (∇L · v) v, v ~ N(0, I).

    Symbols: θ all trainable parameters, v a direction with one N(0, 1) entry per parameter,
    L the batch-mean softmax cross-entropy, ∇L · v its directional derivative, carried as a
    forward-mode tangent (``common.tangents.forward_mode``) through
    ``torch.func.functional_call`` in the forward pass.

    Update (GrAPE paper Sec. 2.3; unbiased since E[v vᵀ] = I):
        g = (1/K) Σ_k (∇L · v_k) v_k,   written into every parameter's ``.grad``
    Its variance grows with the number of parameters: expect it to learn only small networks.

    Args:
        model: any ``nn.Module`` returning logits (n, c), without BatchNorm running statistics.
        perturbations: K, directions per batch, averaged; a positive int.
        seed: seed of the stream of directions (saved in ``state_dict()`` as ``stream.state``).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = FGWeight(MLP((784, 256, 10)), perturbations=4)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01)
        >>> rule.step(x, y); opt.step()

    Reference: Baydin, Pearlmutter, Syme, Wood, Torr, "Gradients without backpropagation",
    arXiv:2202.08587, 2022.
    """

    name = "fg-weight"
    perturbations = Option(1, POSITIVE_INT)
    seed = Option(0, SEED)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        for path, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                raise ValueError(
                    f"{self.name} cannot train {path!r} ({type(module).__name__}): its running "
                    "statistics cannot be updated inside its forward-mode pass; build it with "
                    "track_running_stats=False"
                )
        self.stream = RandomStream(self.seed, self.name)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        named = {name: p for name, p in self.model.named_parameters() if p.requires_grad}
        theta = {name: p.detach() for name, p in named.items()}

        def loss_of(params: dict[str, torch.Tensor]):
            output = torch.func.functional_call(self.model, params, (x,))
            return F.cross_entropy(output, y), output

        grads = {name: self.grads(p) for name, p in named.items()}
        reference = next(iter(theta.values()))
        for k in range(self.perturbations):
            if k == 0:  # v_1 is drawn into the gradients, which become (∇L · v_1) v_1 / K
                self.stream.normal_(list(grads.values()))
                v = grads
            else:
                draws = self.stream.normal([t.shape for t in theta.values()], reference)
                v = dict(zip(theta, draws, strict=True))
            with torch.no_grad(), forward_mode():
                dual = {name: fwAD.make_dual(theta[name], v[name]) for name in theta}
                loss_dual, output = loss_of(dual)
                loss, slope = fwAD.unpack_dual(loss_dual)
                output = fwAD.unpack_dual(output).primal
                weight = slope / self.perturbations
                for name, g in grads.items():
                    if k == 0:
                        g.mul_(weight)
                    else:
                        g.addcmul_(v[name], weight)  # + (∇L · v_k) v_k / K, in one pass
        return StepResult(loss.detach(), output)
