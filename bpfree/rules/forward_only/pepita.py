"""PEPITA: the output error modulates the input of a second forward pass."""

from __future__ import annotations

import math

import torch
from torch import nn

from bpfree.rules.base import StepResult, feedback_generator, one_hot
from bpfree.rules.forward_only.mechanism import (
    DenseLayer,
    ForwardOnlyRule,
    check_sign,
    first_layer_maps,
    write_outer_grad,
)
from bpfree.rules.registry import register

PERTURBATIONS = ("error", "projected-random", "random")


def uniform_feedback(
    n_inputs: int, n_classes: int, f_scale: float, seed: int, rule_name: str, like: torch.Tensor
) -> torch.Tensor:
    """F (i, c), uniform in ±f_scale·√(6 / i) (ICML 2022 Table 2: f_scale = 0.05), so that
    std(F) = f_scale·√(2 / i)."""
    if not f_scale >= 0.0:
        raise ValueError(f"f_scale must be non-negative, got {f_scale!r}")
    bound = f_scale * math.sqrt(6.0 / n_inputs)
    F = torch.empty(n_inputs, n_classes, dtype=like.dtype)
    F.uniform_(-bound, bound, generator=feedback_generator(seed, rule_name))
    return F.to(like.device)


@register
class PEPITA(ForwardOnlyRule):
    """Present the Error to Perturb the Input To modulate Activity (ICML 2022, Algorithm 1).

    Symbols: x the input (n, i), W_l the layer weights, h_l = σ_l(W_l h_{l−1}) the clean pass,
    e = softmax(h_L) − t the output error (n, c), F a fixed random (i, c) matrix, s = ±1 the sign
    of the modulation, h_l^err the modulated pass.

    Update (ICML eqs. 1-5; the ICLR 2024 paper writes x − F e, i.e. s = −1):
        h_l^err = σ_l(W_l h_{l−1}^err),  h_0^err = x + s F e                         (eq. 2)
        ΔW_1 = (h_1 − h_1^err) (x + s F e)ᵀ                                          (eq. 3)
        ΔW_l = (h_l − h_l^err) (h_{l−1}^err)ᵀ,   1 < l < L                            (eq. 4)
        ΔW_L = e (h_{L−1}^err)ᵀ                                                      (eq. 5)
    averaged over the batch, with one dropout mask shared by both passes. The first layer is
    linear in its input, so W_1 (x + s F e) = W_1 x + s (W_1 F) e reuses the clean pass: the
    modulated pass costs one (o, c) product there instead of a full (n, i, o) one; and for
    batches at least as large as the first layer, ΔW_1 = (h_1 − h_1^err) xᵀ + s ((h_1 − h_1^err)
    eᵀ) Fᵀ does not form the modulated input (n, i) at all.

    Deeper PEPITA (ICLR 2024 Sec. 4.1) is the same rule on an MLP with more hidden layers; its
    weight decay is the optimizer's and its activation normalisation the model's
    (``MLP(..., normalization="frobenius" | "per-sample")``), applied in both passes.

    Ablations (ICML App. D), k = ``amplitude``, r drawn afresh for every sample of every batch
    (from torch's global generator, like the dropout masks, so that a resumed run continues
    the same stream); the last layer still learns from e (eq. 5):
        F = 0:                  ``f_scale=0``, only the last layer learns (eq. 10)
        "projected-random":     h_0^err = x + s F (k r), r uniform in [0, 1)^c   (eq. 11)
        "random":               h_0^err = x + k r, r uniform in [−1, 1)^i        (Fig. 5's caption)

    Args:
        model: a ``bpfree.models.MLP`` (or a model shaped like it).
        sign: s, +1 for x + F e (ICML 2022), −1 for x − F e (ICLR 2024).
        presynaptic: ``"modulated"`` (eqs. 3-5) or ``"clean"`` (h_{l−1} and x instead; the ICML
            paper reports no difference).
        output_error: ``"clean"`` (e of eq. 5, Algorithm 1) or ``"modulated"`` (softmax(h_L^err)
            − t, as the ICML tutorial code does).
        f_scale: F is uniform in ±f_scale·√(6 / i) (ICML Table 2: 0.05).
        perturbation: ``"error"`` (PEPITA), ``"projected-random"`` or ``"random"`` (the App. D
            ablations above).
        amplitude: k of the random perturbations.
        conv_average: on a conv net, what a filter's summed products are divided by:
            ``"products"``, their number n·p (Sec. 3.3 step 3); ``"reference-code"``, n²·p, as
            the ICML code does (it averages over batch and positions, then divides by the batch
            size again: at batch 100 the filters learn 100 times slower); or
            ``"reference-code-sqrt"``, n²·√p (that code's --sqrt_conv).
        seed: seed of the generator drawing F.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> model = MLP((784, 1024, 10), dropout=0.1)
        >>> rule, opt = PEPITA(model), torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> rule.step(x, y); opt.step()

    Reference: Dellaferrera, Kreiman, "Error-driven Input Modulation: Solving the Credit
    Assignment Problem without a Backward Pass", ICML 2022.
    """

    name = "pepita"
    walks_conv_nets = True

    def __init__(
        self,
        model: nn.Module,
        *,
        sign: int = 1,
        presynaptic: str = "modulated",
        output_error: str = "clean",
        f_scale: float = 0.05,
        perturbation: str = "error",
        amplitude: float = 0.0,
        conv_average: str = "products",
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(model, num_classes=num_classes)
        check_sign(sign)
        self.stack.average_conv_updates(conv_average)
        if presynaptic not in ("modulated", "clean"):
            raise ValueError(f"presynaptic must be 'modulated' or 'clean', got {presynaptic!r}")
        if output_error not in ("clean", "modulated"):
            raise ValueError(f"output_error must be 'clean' or 'modulated', got {output_error!r}")
        if perturbation not in PERTURBATIONS:
            raise ValueError(
                f"perturbation must be one of {', '.join(PERTURBATIONS)}, got {perturbation!r}"
            )
        if not amplitude >= 0.0:
            raise ValueError(f"amplitude must be non-negative, got {amplitude!r}")
        self.sign, self.presynaptic, self.output_error = sign, presynaptic, output_error
        self.perturbation, self.amplitude, self.f_scale = perturbation, amplitude, f_scale
        self.conv_average = conv_average
        first = self.stack.layers[0].weight
        self.init_feedback(self.stack.input_features, f_scale, seed, first)

    def init_feedback(self, n_inputs: int, f_scale: float, seed: int, like: torch.Tensor) -> None:
        """Register the feedback state; ``self.F`` must then be the (i, c) matrix."""
        F = uniform_feedback(n_inputs, self.num_classes, f_scale, seed, self.name, like)
        self.register_buffer("F", F)

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x = self.stack.inputs(x)
        self.check_batch(x, y)
        n, c, s, F = x.shape[0], self.num_classes, self.sign, self.F
        first, *hidden = self.stack.hidden
        masks = self.stack.shared_masks(n, x)  # the same mask per layer in both passes
        t = one_hot(y, c, x.dtype)

        # Clean pass (eq. 1), and W_1 F (F's columns shaped like inputs) for the modulated pass.
        through_F = self.perturbation != "random"
        if through_F:
            a_1, W1_F = first_layer_maps(first, x, F.T.reshape(c, *x.shape[1:]))
        else:
            a_1 = first.add_bias(first.linear_map(x))
        # h_1 is not held through the clean pass: the modulated pass recomputes it from a_1,
        # which that pass needs anyway, so the step holds one activity fewer.
        clean_masks = masks.first_pass()
        h, clean = first.activate(a_1, next(clean_masks)), [None]
        for layer in hidden:  # next(): no loop variable holds a mask beyond its layer
            h = layer.forward(h, next(clean_masks))
            clean.append(h)
        logits = self.stack.output.forward(h, None)
        del h
        log_p = torch.log_softmax(logits, dim=1)
        p = log_p.exp()
        e = p - t  # e = softmax(h_L) − t
        loss = -log_p.gather(1, y.unsqueeze(1)).mean()
        if self.perturbation == "projected-random":  # eq. 11: F (k r) in F e's place
            projected = torch.rand(n, c, dtype=x.dtype, device=x.device).mul_(self.amplitude)
        else:
            projected = e  # what F projects onto the input: the error

        # Modulated pass (eq. 2): W_1 (x + s F e) = W_1 x + s (W_1 F) e, formed in a_1's place
        # (once h_1 is recomputed from it, and unless h_1 is a_1 itself) so the step holds one
        # pre-activation.
        modulated_masks = masks.second_pass()
        mask = next(modulated_masks)
        clean[0] = first.activate(a_1, mask)
        if clean[0].untyped_storage().data_ptr() == a_1.untyped_storage().data_ptr():
            a_1 = a_1.clone()
        if through_F:
            a_1.view(n, -1).addmm_(projected, W1_F.view(c, -1), alpha=s)  # 'nc,c...->n...'
        else:  # ICML App. D: x + k r
            kr = torch.empty_like(x).uniform_(-1.0, 1.0).mul_(self.amplitude)
            a_1.add_(first.linear_map(kr))
        h_err = first.activate_(a_1, mask)
        del a_1, mask
        if through_F and not self.stack.conv and self.splits_first_layer(n, h_err.shape[1]):
            # Eq. 3 without forming x + s F e (n, i): for terms postᵀ x + post_errᵀ (x + s F e),
            # add s (post_errᵀ e) Fᵀ to postᵀ x (+ post_errᵀ x).
            post, post_err = self.first_layer_terms(clean[0], h_err)
            write_outer_grad(first, post, x, n)
            if post_err is not None:
                first.weight.grad.addmm_(post_err.T.mm(projected), F.T, alpha=s / n)
            del post, post_err
        else:
            x_err = x + (projected.mm(F.T).view_as(x).mul_(s) if through_F else kr)
            self.write_hidden(first, clean[0], h_err, x, x_err, n)  # eq. 3
        for l, layer in enumerate(hidden, start=1):
            pre = clean[l - 1] if self.uses_clean_presynaptic else None
            clean[l - 1] = None  # each clean activity is freed once its layers are done
            h_prev_err, h_err = h_err, layer.forward(h_err, next(modulated_masks))
            self.write_hidden(layer, clean[l], h_err, pre, h_prev_err, n)  # eq. 4
            del pre, h_prev_err
        self.write_output(p, t, clean[-1], h_err, n)  # eq. 5
        return StepResult(loss.item(), logits)

    @property
    def uses_clean_presynaptic(self) -> bool:
        """Whether ``write_hidden`` reads the clean pass's presynaptic activity h_{l−1}."""
        return self.presynaptic == "clean"

    def write_hidden(
        self,
        layer: DenseLayer,
        h: torch.Tensor,
        h_err: torch.Tensor,
        pre: torch.Tensor | None,
        pre_err: torch.Tensor,
        n: int,
    ) -> None:
        """Eqs. 3-4: ΔW_l = (h_l − h_l^err) (h_{l−1}^err)ᵀ (or h_{l−1} with presynaptic clean).
        The difference is formed in h's place unless h is read again as a presynaptic term."""
        post = h - h_err if self.uses_clean_presynaptic else h.sub_(h_err)
        write_outer_grad(layer, post, self.presynaptic_of(pre_err, pre), n)

    def splits_first_layer(self, n: int, width: int) -> bool:
        """Whether eq. 3 is written as postᵀ x + s (post_errᵀ e) Fᵀ rather than through the
        modulated input x + s F e (n, i): an extra (o, c, i) product against an (n, c, i) one,
        the cheaper once the batch n is at least as wide as the layer (o)."""
        return n >= width

    def first_layer_terms(
        self, h: torch.Tensor, h_err: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(post, post_err) of eq. 3 written as postᵀ x + post_errᵀ (s F e): PEPITA's
        (h_1 − h_1^err)ᵀ (x + s F e), or (h_1 − h_1^err)ᵀ x with presynaptic "clean"; the
        difference formed in h's place unless h is read again as a presynaptic term."""
        delta = h - h_err if self.uses_clean_presynaptic else h.sub_(h_err)
        return delta, delta if self.presynaptic == "modulated" else None

    def write_output(
        self, p: torch.Tensor, t: torch.Tensor, h: torch.Tensor, h_err: torch.Tensor, n: int
    ) -> None:
        """Eq. 5: ΔW_L = e (h_{L−1}^err)ᵀ, e from the clean pass (or the modulated one)."""
        if self.output_error == "modulated":
            e = torch.softmax(self.stack.output.forward(h_err, None), dim=1).sub_(t)
        else:
            e = p - t
        write_outer_grad(self.stack.output, e, self.presynaptic_of(h_err, h), n)

    def forward_product(self) -> torch.Tensor:
        """(W_L ⋯ W_1)ᵀ, shaped (i, c) like F."""
        product = self.stack.layers[0].weight.T
        for layer in self.stack.layers[1:]:
            product = product @ layer.weight.T
        return product

    def alignment(self) -> dict[str, dict[str, float]]:
        """Angle between F and the product of the forward weights (W_L ⋯ W_1)ᵀ (ICML Fig. 3b:
        near 90° at the start, growing toward 120° with + F e), and their norm ratio; nothing
        for a conv net, whose layers have no such product."""
        from bpfree.diagnostics import angle_degrees, norm_ratio

        if self.stack.conv:
            return {}
        with torch.no_grad():
            product = self.forward_product()
            F = self.F
            return {"F": {"angle": angle_degrees(F, product), "norm_ratio": norm_ratio(F, product)}}

    def presynaptic_of(self, modulated: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """The presynaptic term: the modulated-pass activity (eqs. 3-5) or the clean one."""
        return modulated if self.presynaptic == "modulated" else clean

    def extra_repr(self) -> str:
        text = (
            f"{super().extra_repr()}, sign={self.sign:+d}, presynaptic={self.presynaptic!r}, "
            f"output_error={self.output_error!r}"
        )
        if self.perturbation != "error":
            text += f", perturbation={self.perturbation!r}, amplitude={self.amplitude}"
        if self.conv_average != "products":
            text += f", conv_average={self.conv_average!r}"
        return text
