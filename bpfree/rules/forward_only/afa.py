"""Adaptive feedback alignment: PEPITA's first-order limit, a DFA whose feedback is W_1 F."""

from __future__ import annotations

import torch
from torch import nn

from bpfree.rules.base import StepResult, one_hot
from bpfree.rules.forward_only.mechanism import (
    ForwardOnlyRule,
    check_sign,
    first_layer_maps,
    write_outer_grad,
)
from bpfree.rules.forward_only.pepita import uniform_feedback
from bpfree.rules.registry import register


@register
class AFA(ForwardOnlyRule):
    """Adaptive feedback alignment (ICLR 2024 Sec. 3.1, eq. 6).

    For a small modulation s F e, PEPITA's first hidden layer sees
        h_1 − h_1^err = σ(W_1 x) − σ(W_1 x + s W_1 F e) ≈ −s σ'(a_1) ⊙ (W_1 F e),
    a DFA signal whose feedback matrix W_1 F follows W_1 as it learns. AFA applies that limit,
    with the feedback recomputed every step, and chains it to deeper layers
    (h_l − h_l^err ≈ σ'(a_l) ⊙ W_l (h_{l−1} − h_{l−1}^err)):
        δ_1 = −s σ'(a_1) ⊙ (W_1 F e),   δ_l = σ'(a_l) ⊙ (W_l δ_{l−1}),  1 < l < L
        ΔW_l = δ_l h_{l−1}ᵀ,   ΔW_L = e h_{L−1}ᵀ
    averaged over the batch, with dropout masks inside σ' and no autograd. As ‖F e‖ → 0, PEPITA's
    update (same F, same sign) approaches this one. σ' is taken from the model's activation
    (ReLU, tanh, sigmoid or identity); models with activity normalisation are refused, since the
    chained limit through a norm is not a diagonal factor.

    Args:
        model: a ``bpfree.models.MLP`` (or a model shaped like it).
        sign: s of the PEPITA modulation it approximates (+1: x + F e, −1: x − F e).
        f_scale: F is uniform in ±f_scale·√(6 / i), as PEPITA's.
        seed: seed of the generator drawing F (the same seed gives PEPITA's F).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.
    """

    name = "afa"

    def __init__(
        self,
        model: nn.Module,
        *,
        sign: int = 1,
        f_scale: float = 0.05,
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(model, num_classes=num_classes)
        check_sign(sign)
        if any(layer.normalize is not None for layer in self.stack.hidden):
            raise ValueError("AFA does not support activity normalisation; use a model without it")
        for layer in self.stack.hidden:
            derivative(layer.activation, torch.zeros(1))  # refuse unknown activations now
        self.sign = sign
        first = self.stack.layers[0].linear.weight
        # Drawn from PEPITA's stream, so AFA and PEPITA with the same seed share F.
        F = uniform_feedback(first.shape[1], self.num_classes, f_scale, seed, "pepita", first)
        self.register_buffer("F", F)

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x = self.model.flatten(x)
        self.check_batch(x, y)
        n, c = x.shape[0], self.num_classes
        masks = self.stack.dropout_masks(n, x)
        first = self.stack.hidden[0]
        a_1, W1_F = first_layer_maps(first, x, self.F.T)  # W_1 x + b_1 and (W_1 F)ᵀ (c, o)
        h, slopes, inputs = x, [], []
        for l, (layer, mask) in enumerate(zip(self.stack.hidden, masks, strict=True)):
            a = a_1 if l == 0 else layer.add_bias(layer.linear_map(h))
            slope = derivative(layer.activation, a)
            inputs.append(h)
            slopes.append(slope if mask is None else slope * mask)  # σ'(a_l) ⊙ mask
            h = layer.activate(a, mask)
        logits = self.stack.output.forward(h, None)
        log_p = torch.log_softmax(logits, dim=1)
        e = log_p.exp() - one_hot(y, c, x.dtype)
        loss = -log_p.gather(1, y.unsqueeze(1)).mean()

        delta = e.mm(W1_F).mul_(slopes[0]).mul_(-self.sign)  # δ_1 = −s σ'(a_1) ⊙ (W_1 F e)
        for l, layer in enumerate(self.stack.hidden):
            if l > 0:
                delta = delta.mm(layer.linear.weight.T).mul_(slopes[l])  # δ_l
            write_outer_grad(layer, delta, inputs[l], n)
        write_outer_grad(self.stack.output, e, h, n)  # ΔW_L = e h_{L−1}ᵀ
        return StepResult(loss.item(), logits)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sign={self.sign:+d}"


def derivative(activation: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """σ'(a) of the MLP's activations, in closed form."""
    if isinstance(activation, nn.ReLU):
        return (a > 0).to(a.dtype)
    if isinstance(activation, nn.Tanh):
        return 1.0 - torch.tanh(a) ** 2
    if isinstance(activation, nn.Sigmoid):
        s = torch.sigmoid(a)
        return s * (1.0 - s)
    if isinstance(activation, nn.Identity):
        return torch.ones_like(a)
    raise ValueError(f"AFA has no closed-form derivative of {type(activation).__name__}")
