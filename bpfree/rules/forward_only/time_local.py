"""PEPITA time-local: each layer learns from each pass while the pass runs, keeping nothing."""

from __future__ import annotations

import torch
from torch import nn

from bpfree.rules.base import StepResult, one_hot
from bpfree.rules.forward_only.mechanism import (
    DenseLayer,
    ForwardOnlyRule,
    check_sign,
    write_outer_grad,
)
from bpfree.rules.forward_only.pepita import uniform_feedback
from bpfree.rules.registry import register


@register
class PEPITATimeLocal(ForwardOnlyRule):
    """PEPITA time-local (ICLR 2024 Sec. 5.1, Alg. S2; the reference code's mode "mixed_tl").

    PEPITA-Hebbian's two terms, each applied as soon as its pass reaches the layer:
        clean pass, layer l:      W_l ← W_l − η h_l h_{l−1}ᵀ            (output: y h_{L−1}ᵀ)
        modulated pass, layer l:  W_l ← W_l + η h_l^err (h_{l−1}^err)ᵀ   (output: t (h_{L−1}^err)ᵀ)
    with h_0 = x, h_0^err = x + s F e, e = y − t from the end of the clean pass, and the
    modulated pass running on the weights the clean pass already changed. A pass holds only the
    layer it is at: nothing of the clean pass is stored for the modulated one but x, e and the
    seed its dropout masks came from (the modulated pass redraws the same masks), so the memory
    of a step does not grow with depth.

    The updates are applied by the optimizer bound with ``bind_optimizer`` (the trainer binds
    its own): one optimizer step per layer and pass, each touching only that layer's parameters,
    so momentum sees both terms of a batch and weight decay acts twice per batch. ``step``
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
        model: a ``bpfree.models.MLP`` (or a model shaped like it).
        sign: s, −1 for x − F e (ICLR 2024, the default) or +1.
        f_scale: F is uniform in ±f_scale·√(6 / i).
        seed: seed of the generator drawing F.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.
    """

    name = "pepita-time-local"
    applies_own_updates = True

    def __init__(
        self,
        model: nn.Module,
        *,
        sign: int = -1,
        f_scale: float = 0.05,
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(model, num_classes=num_classes)
        check_sign(sign)
        self.sign = sign
        first = self.stack.layers[0].linear.weight
        F = uniform_feedback(first.shape[1], self.num_classes, f_scale, seed, self.name, first)
        self.register_buffer("F", F)
        object.__setattr__(self, "optimizer", None)

    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Keep the optimizer that applies each layer's term during the passes."""
        object.__setattr__(self, "optimizer", optimizer)

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x = self.model.flatten(x)
        self.check_batch(x, y)
        if self.optimizer is None:
            raise RuntimeError(
                f"{self.name} applies its updates during its passes: call "
                "rule.bind_optimizer(optimizer) before rule.step (bpfree's trainer does)"
            )
        n = x.shape[0]
        t = one_hot(y, self.num_classes, x.dtype)
        for p in self.model.parameters():
            p.grad = None
        # Both passes share each layer's dropout mask without holding them all.
        masks = self.stack.replayable_masks(n, x)

        h = x  # clean pass: + h_l h_{l−1}ᵀ at each layer
        for layer, mask in zip(self.stack.hidden, masks(), strict=True):
            h_prev, h = h, layer.forward(h, mask)
            self.apply(layer, h, h_prev, n)
        logits = self.stack.output.forward(h, None)
        log_p = torch.log_softmax(logits, dim=1)
        y_soft = log_p.exp()
        loss = -log_p.gather(1, y.unsqueeze(1)).mean()
        self.apply(self.stack.output, y_soft, h, n)
        e = y_soft - t

        h = torch.addmm(x, e, self.F.T, alpha=self.sign)  # modulated pass: x + s F e
        for layer, mask in zip(self.stack.hidden, masks(), strict=True):
            h_prev, h = h, layer.forward(h, mask)
            self.apply(layer, -h, h_prev, n)
        self.apply(self.stack.output, -t, h, n)
        return StepResult(loss.item(), logits)

    def apply(self, layer: DenseLayer, post: torch.Tensor, pre: torch.Tensor, n: int) -> None:
        """One optimizer step on this layer alone along ΔW = postᵀ pre / n."""
        write_outer_grad(layer, post, pre, n)
        self.optimizer.step()
        for p in (layer.linear.weight, layer.linear.bias):
            if p is not None:
                p.grad = None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sign={self.sign:+d}"
