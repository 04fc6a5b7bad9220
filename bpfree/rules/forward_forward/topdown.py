"""Forward-Forward with top-down feedback: PEPITA's error-modulated input as the negative."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bpfree.core.checks import NON_NEGATIVE, SEED, SIGN
from bpfree.rules.base import StepResult
from bpfree.rules.common.buffers import addmm_into
from bpfree.rules.common.init import uniform_feedback
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import seeded_generator
from bpfree.rules.common.walk import first_layer_maps
from bpfree.rules.forward_forward import mechanism as ff
from bpfree.rules.registry import register


@register
class FFTopDown(ff.ForwardForwardRule):
    """Forward-Forward whose negative sample is the input modulated by the output error
    (ICLR 2024, Sec. 5.2: PEPITA seen as FF with top-down feedback).

    Symbols: x the input (n, i), h_l the hidden activities of the clean pass, ĥ_l = √o h_l /
    (‖h_l‖₂ + ε) what layer l+1 receives, e = softmax(W_L ĥ_{L−1}) − t the output error (n, c),
    F a fixed random (i, c) matrix, s = ±1 the sign of the modulation, G_l = Σ_o h_{l,o}² the
    goodness and θ_l the threshold of layer l.

    Update:
        positive x,  negative x + s F e        (s = −1: x − F e, ICLR 2024 eq. 2)
        hidden layers: FF's goodness loss, positive raised, negative lowered (Hinton 2022):
            δ_l = −σ(θ_l − G_l⁺) · 2 h_l⁺ ⊙ σ′(a_l⁺) ⊙ m_l  on the positive pass,
                   σ(G_l⁻ − θ_l) · 2 h_l⁻ ⊙ σ′(a_l⁻) ⊙ m_l  on the negative one,
            ΔW_l = Σ_± δ_lᵀ ĥ_{l−1} / n
        head: ΔW_L = eᵀ ĥ_{L−1} / n, the clean pass's activity (as PEPITA's eq. 5)
    No label is embedded: the error reaches the hidden layers only through F e. Both passes share
    one dropout mask. The first layer is linear in its input, so W₁ (x + s F e) = W₁ x + s (W₁ F) e
    reuses the clean pass, and its update Σ_± δᵀ x± = (δ⁺ + δ⁻)ᵀ x + s (δ⁻ᵀ e) Fᵀ costs one
    (n, i, o) product, as in PEPITA. ``predict`` runs the network training ran: hidden layers
    normalised between them, head on ĥ_{L−1}; it differs from ``model(x)``, which skips the
    normalisation.

    Args:
        model: a ``bpfree.models.MLP`` (or a model shaped like it), at least one hidden layer.
        sign: s, −1 for x − F e (ICLR 2024), +1 for x + F e (ICML 2022).
        threshold: θ for every layer, > 0; default each layer's number of units.
        f_scale: F is uniform in ±f_scale·√(6 / i). The default 0.5 is ten times PEPITA's
            (ICML Table 2: 0.05): the goodness loss only sees the difference between the two
            passes, and with PEPITA's scale the negative sample is nearly the positive one.
        seed: seed of the generator drawing F.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> model = MLP((784, 1024, 10))
        >>> rule = FFTopDown(model)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01)
        >>> rule.step(x, y); opt.step()

    References: Srinivasan, Mignacco, Sorbaro, Refinetti, Cooper, Kreiman, Dellaferrera,
    "Forward Learning with Top-Down Feedback: Empirical and Analytical Characterization",
    ICLR 2024, Sec. 5.2; Hinton, "The Forward-Forward Algorithm", arXiv:2212.13345, 2022.
    """

    name = "ff-topdown"

    sign = Option(-1, SIGN)
    threshold = Option(None, ff.THRESHOLD)
    f_scale = Option(0.5, NON_NEGATIVE)
    seed = Option(0, SEED)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        self.thresholds = ff.thresholds(self.stack.hidden, self.threshold)
        first = self.stack.hidden[0].weight
        generator = seeded_generator(self.seed, self.name)
        F = uniform_feedback(first.shape[1], self.num_classes, self.f_scale, generator, first)
        self.register_buffer("F", F)

    @torch.no_grad()
    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x = self.stack.inputs(x)
        n, s = x.shape[0], self.sign
        first, *rest = self.stack.hidden
        # The same masks for both passes, drawn once: the clean pass is held whole anyway.
        masks = self.stack.shared_masks(n, x)
        clean_masks = masks.first_pass()
        sign = x.new_tensor(ff.SIGNS).unsqueeze(1)

        # Clean (positive) pass, and (W₁ F)ᵀ for the negative pass.
        a_1, W1_F_T = first_layer_maps(first, x, self.F.T)
        clean = [(x, a_1, first.activate(a_1, next(clean_masks)))]
        clean += ff.walk(rest, ff.normalise(clean[0][2]), clean_masks)
        features = ff.normalise(clean[-1][2])
        logits = self.stack.output.forward(features, None)
        loss, e = ff.head_error(logits, y, self.num_classes)
        self.stack.output.write_grad(e, features, n)  # ΔW_L = eᵀ ĥ_{L−1} / n

        # Negative pass on x + s F e, each layer trained as soon as both its passes are known.
        negative_masks = masks.second_pass()
        pre_neg = h_neg = None
        for l, (layer, theta, (pre, a, h)) in enumerate(
            zip(self.stack.hidden, self.thresholds, clean, strict=True)
        ):
            mask = next(negative_masks)
            if l == 0:
                a_neg = torch.addmm(a_1, e, W1_F_T, alpha=s)  # W₁ (x + s F e) = W₁ x + s (W₁ F) e
            else:
                pre_neg = ff.normalise(h_neg)
                a_neg = layer.linear.forward(pre_neg)
            h_neg = layer.activate(a_neg, mask)
            layer_loss, dG = ff.ff_loss(
                torch.stack([ff.goodness(h), ff.goodness(h_neg)]), sign, theta, n
            )
            delta = ff.goodness_delta(layer, a, h, dG[0], mask)
            delta_neg = ff.goodness_delta(layer, a_neg, h_neg, dG[1], mask)
            loss += layer_loss
            if l > 0:
                ff.write_summed_grad(layer, n, (delta, pre), (delta_neg, pre_neg))
                continue
            # ΔW₁ = (δ⁺ᵀ x + δ⁻ᵀ (x + s F e)) / n = ((δ⁺ + δ⁻)ᵀ x + s (δ⁻ᵀ e) Fᵀ) / n
            ff.write_summed_grad(layer, n, (delta + delta_neg, x))
            addmm_into(layer.linear.weight.grad, delta_neg.T.mm(e), self.F.T, beta=1.0, alpha=s / n)
        return StepResult(loss.detach(), logits)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The head's logits on ĥ_{L−1}: the network ``step`` trains, normalised between layers."""
        x = self.stack.inputs(x)
        masks = self.stack.dropout_mask_stream(x.shape[0], x)
        return ff.head_logits(self.stack.hidden, self.stack.output, x, masks)
