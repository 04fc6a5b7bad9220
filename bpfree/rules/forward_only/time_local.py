"""PEPITA time-local: each layer learns from each pass while the pass runs, keeping nothing."""

from __future__ import annotations

import torch

from bpfree.core.checks import SIGN, one_of
from bpfree.rules.base import StepResult
from bpfree.rules.common.losses import cross_entropy_error, one_hot
from bpfree.rules.common.options import Option
from bpfree.rules.common.walk import WalkLayer
from bpfree.rules.forward_only.mechanism import ModulatedInputRule
from bpfree.rules.registry import register


@register
class PEPITATimeLocal(ModulatedInputRule):
    """PEPITA time-local (ICLR 2024 Sec. 5.1, Alg. S2; the reference code's mode "mixed_tl").

    PEPITA-Hebbian's two terms (``HEBBIAN_TERMS``), each applied as soon as its pass reaches the
    layer:
        clean pass, layer l:      W_l ← W_l − η h_l h_{l−1}ᵀ            (output: y h_{L−1}ᵀ)
        modulated pass, layer l:  W_l ← W_l + η h_l^err (h_{l−1}^err)ᵀ   (output: t (h_{L−1}^err)ᵀ)
    with h_0 = x, h_0^err = x + s F e, e = y − t from the end of the clean pass, and the
    modulated pass running on the weights the clean pass already changed. A pass holds only the
    layer it is at: nothing of the clean pass is stored for the modulated one but x, e and the
    seed its dropout masks came from (the modulated pass redraws the same masks, unless
    ``modulated_masks="redrawn"``), so the memory of a step does not grow with depth.

    The updates are applied by the optimizer built with ``bpfree.optimizer(rule, ...)`` (the
    trainer builds its own so): one optimizer step per layer and pass, each touching only that
    layer's parameters, so momentum sees both terms of a batch and weight decay acts twice per
    batch. ``step``
    leaves every ``.grad`` at ``None``, so the caller's own ``optimizer.step()`` changes nothing.
    As the learning rate goes to 0 the two steps add up to PEPITA-Hebbian's update; at a
    finite one they do not, and the learning rate must stay small. The clean-pass step moves
    W_1 by −(η/n) Σ_j h_j x_jᵀ before the modulated pass reads it, which shifts that pass's
    pre-activation of sample i by −(η/n) Σ_j h_j (x_j · x_i^err), an anti-Hebbian term
    proportional to η that the error signal s W_1 F e must outweigh. On an MNIST batch of 64
    at initialisation (784-1024-10, f_scale 0.05) the shift is 285x that signal at η = 0.1,
    28x at 1e-2 and 2.8x at 1e-3: at η = 0.1 the network stays near chance, at 1e-3 it learns
    (85 % after 3 epochs). Momentum helps: it multiplies the learning speed by 1 / (1 − β)
    while the shift, made by one step, stays proportional to η.

    Args:
        model: a ``bpfree.models.MLP`` (or a model that describes its dense layers alike).
        sign: s, −1 for x − F e (ICLR 2024, the default) or +1.
        modulated_masks: the dropout masks of the modulated pass: ``"shared"`` (the clean
            pass's, as PEPITA shares them; the default) or ``"redrawn"`` (fresh ones, as the ICLR
            code's "mixed_tl" mode draws them: its second forward call, FCnet.py l.190, runs
            its dropout layers again).
        f_scale: F is uniform in ±f_scale·√(6 / i).
        seed: seed of the generator drawing F.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.
    """

    name = "pepita-time-local"
    uncapturable = (
        "it applies the optimizer to each layer inside its step, and torch's optimizer step "
        "breaks a graph by design (to set the grad mode)"
    )
    applies_own_updates = True

    sign = Option(-1, SIGN)
    modulated_masks = Option("shared", one_of("shared", "redrawn"))

    @torch.no_grad()
    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x = self.stack.inputs(x)
        if self.attached_optimizer is None:
            raise RuntimeError(
                f"{self.name} applies its updates during its passes: build its optimizer with "
                "bpfree.optimizer(rule, torch.optim.SGD, lr=...) before rule.step (bpfree's "
                "trainer does)"
            )
        n, hidden, output = x.shape[0], self.stack.hidden, self.stack.output
        t = one_hot(y, self.num_classes, x.dtype)
        # Both passes share each layer's dropout mask without holding them all (or the
        # modulated pass draws its own).
        masks = self.stack.replayable_masks(n, x)
        redrawn = self.modulated_masks == "redrawn"

        h = x  # clean pass: the terms h_l h_{l−1}ᵀ and y h_{L−1}ᵀ
        for layer, mask in zip(hidden, masks(), strict=True):
            h_prev, h = h, layer.forward(h, mask)
            self.apply(layer, h, h_prev, n)
        logits = output.forward(h, None)
        loss, y_soft, e = cross_entropy_error(logits, t, y)
        self.apply(output, y_soft, h, n)

        h = torch.addmm(x, e, self.F.T, alpha=self.sign)  # modulated pass on x + s F e:
        modulated_masks = self.stack.dropout_mask_stream(n, x) if redrawn else masks()
        for layer, mask in zip(hidden, modulated_masks, strict=True):  # −h_l^err (h_{l−1}^err)ᵀ
            h_prev, h = h, layer.forward(h, mask)
            self.apply(layer, -h, h_prev, n)
        self.apply(output, -t, h, n)  # −t (h_{L−1}^err)ᵀ
        return StepResult(loss.detach(), logits)

    def apply(self, layer: WalkLayer, post: torch.Tensor, pre: torch.Tensor, n: int) -> None:
        """One optimizer step on this layer alone along ΔW = postᵀ pre / n."""
        layer.write_grad(post, pre, n)
        self.attached_optimizer.step()
        for p in (layer.linear.weight, layer.linear.bias):
            if p is not None:
                p.grad = None
