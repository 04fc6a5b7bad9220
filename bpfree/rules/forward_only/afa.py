"""Adaptive feedback alignment: PEPITA's first-order limit, a DFA whose feedback is W_1 F."""

from __future__ import annotations

from typing import Any

from torch import nn

from bpfree.rules.common.activations import activation_of
from bpfree.rules.forward_only.mechanism import Term, TwoPassTerms
from bpfree.rules.forward_only.two_pass import TwoPassRule
from bpfree.rules.registry import register


@register
class AFA(TwoPassRule):
    """Adaptive feedback alignment (ICLR 2024 Sec. 3.1, eq. 6).

    For a small modulation s F e, PEPITA's first hidden layer sees
        h_1 − h_1^err = σ(W_1 x) − σ(W_1 x + s W_1 F e) ≈ −s σ'(a_1) ⊙ (W_1 F e),
    a DFA signal whose feedback matrix W_1 F follows W_1 as it learns. AFA applies that limit,
    with the feedback recomputed every step, and chains it to deeper layers
    (h_l − h_l^err ≈ σ'(a_l) ⊙ W_l (h_{l−1} − h_{l−1}^err)):
        δ_1 = −s σ'(a_1) ⊙ (W_1 F e),   δ_l = σ'(a_l) ⊙ (W_l δ_{l−1}),  1 < l < L
        ΔW_l = δ_l h_{l−1}ᵀ,   ΔW_L = e h_{L−1}ᵀ
    averaged over the batch, with dropout masks inside σ' and no autograd: PEPITA's terms with
    the clean presynaptic activity, over the first-order (``modulation = "linear"``) modulated
    pass. As ‖F e‖ → 0, PEPITA's update (same F, same sign) approaches this one. σ' is taken from
    the model's activation (ReLU, tanh, sigmoid or identity); models with activity
    normalisation are refused, since the chained limit through a norm is not a diagonal factor.

    Args:
        model: a ``bpfree.models.MLP`` (or a model that describes its dense layers alike).
        sign: s of the PEPITA modulation it approximates (+1: x + F e, −1: x − F e).
        f_scale: F is uniform in ±f_scale·√(6 / i), as PEPITA's.
        seed: seed of the generator drawing F (the same seed gives PEPITA's F).
        implementation: ``"fast"`` or ``"equations"`` (the same updates).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.
    """

    name = "afa"
    feedback_stream = "pepita"  # AFA and PEPITA with the same seed share F
    modulation = "linear"
    terms = TwoPassTerms(hidden=(Term("h - h_err", "h_prev"),), output=(Term("e", "h_prev"),))

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        for l, layer in enumerate(self.stack.hidden):
            if layer.normalize is not None:
                raise ValueError(
                    "AFA does not support activity normalisation; use a model without it"
                )
            activation_of(layer.activation, self.name, f"hidden layer {l}")
