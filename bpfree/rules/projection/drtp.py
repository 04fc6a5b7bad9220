"""Direct random target projection: hidden layers learn from the target alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bpfree.core.checks import one_of
from bpfree.rules.common.losses import one_hot
from bpfree.rules.common.options import Option
from bpfree.rules.projection.mechanism import ProjectionRule
from bpfree.rules.registry import register


@register
class DRTP(ProjectionRule):
    """Direct random target projection (Frenkel et al. 2021): δ_l = (B_l (−t)) ⊙ σ′(a_l).

    Symbols: t the one-hot target (n, c), B_l a fixed random (k_l, c) matrix per injection point,
    σ(a_L) the sigmoid output. The hidden updates never see the output error.

    Update:
        δ_L = ∂loss/∂a_L   (the output layer's true error, for the ``output_loss`` below)
        δ_l = (B_l (−t)) ⊙ σ′(a_l),   ΔW_l = δ_l h_{l−1}ᵀ
    As in the PEPITA paper's Table 1, use it with tanh hidden units (``MLP(activation="tanh")``).

    The output layer's loss on the sigmoid outputs σ(a_L), ``output_loss``:
        "bce": binary cross-entropy, δ_L = σ(a_L) − t (Frenkel et al.'s default).
        "ce": cross-entropy of the softmax of the sigmoid outputs, averaged over the batch,
            δ_L = (softmax(σ(a_L)) − t) ⊙ σ′(a_L) / n: the PEPITA paper's "cross entropy loss"
            with "sigmoid for the output layer" (ICML 2022 Sec. 4), which is what Frenkel et
            al.'s code computes with its CE loss and sigmoid output.

    The target projection is not the gradient of a loss, so how it is scaled against the output
    layer's gradient is a choice; ``scaling`` offers two:
        "reference": as in Frenkel et al.'s code, which made the PEPITA paper's DRTP numbers: the
            hidden updates sum δ_l h_{l−1}ᵀ over the batch, and the output layer descends the
            binary cross-entropy averaged over batch and classes (its gradient carries 1/(n c)).
        "mean": every update averaged over the batch, the cross-entropy summed over classes.
    At batch size n the reference scaling weighs the hidden layers n·c times more.

    Args: ``model``, an ``nn.Module`` with ``blocks`` (e.g. ``MLP``) or any model given
        ``points``, the options of every projection rule (``ProjectionRule``; the B_l are
        uniform in ±√(6 / k_l)), and
        scaling: ``"reference"`` (default) or ``"mean"``, see above.
        output_loss: ``"bce"`` (default) or ``"ce"``, see above.

    Example:
        >>> rule = DRTP(MLP((784, 1024, 10), activation="tanh"))
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01)
        >>> rule.step(x, y); opt.step()

    Reference: Frenkel, Lefebvre, Bol, "Learning without feedback: Fixed random learning signals
    allow for feedforward training of deep neural networks", Frontiers in Neuroscience, 2021.
    """

    name = "drtp"

    scaling = Option("reference", one_of("reference", "mean"))
    output_loss = Option("bce", one_of("bce", "ce"))

    def batch_power(self, param: torch.nn.Parameter) -> int:
        """With the reference scaling the hidden updates sum over the batch (k = 0); the output
        block's gradient is a mean (k = 1)."""
        hidden = any(param is p for module in self.point_modules for p in module.parameters())
        return 0 if self.scaling == "reference" and hidden else 1

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.output_loss == "ce":
            return F.cross_entropy(torch.sigmoid(output), y)
        t = one_hot(y, self.num_classes, output.dtype)
        loss = F.binary_cross_entropy_with_logits(output, t, reduction="sum") / y.shape[0]
        return loss / self.num_classes if self.scaling == "reference" else loss

    def projected_signal(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        minus_t = one_hot(y, self.num_classes, output.dtype).neg_()  # −t
        return minus_t if self.scaling == "reference" else minus_t.div_(y.shape[0])
