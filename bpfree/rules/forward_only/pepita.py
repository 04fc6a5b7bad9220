"""PEPITA: the output error modulates the input of a second forward pass."""

from __future__ import annotations

from typing import Any

from torch import nn

from bpfree.core.checks import NON_NEGATIVE, one_of
from bpfree.rules.common.options import Option
from bpfree.rules.common.walk import CONV_AVERAGES, CONV_SIGNS
from bpfree.rules.forward_only.mechanism import Term, TwoPassTerms
from bpfree.rules.forward_only.two_pass import TwoPassRule
from bpfree.rules.registry import register


@register
class PEPITA(TwoPassRule):
    """Present the Error to Perturb the Input To modulate Activity (ICML 2022, Algorithm 1).

    Symbols: x the input (n, i), W_l the layer weights, h_l = σ_l(W_l h_{l−1}) the clean pass,
    e = softmax(h_L) − t the output error (n, c), F a fixed random (i, c) matrix, s = ±1 the sign
    of the modulation, h_l^err the modulated pass.

    Update (ICML eqs. 1-5; the ICLR 2024 paper writes x − F e, i.e. s = −1):
        h_l^err = σ_l(W_l h_{l−1}^err),  h_0^err = x + s F e                         (eq. 2)
        ΔW_1 = (h_1 − h_1^err) (x + s F e)ᵀ                                          (eq. 3)
        ΔW_l = (h_l − h_l^err) (h_{l−1}^err)ᵀ,   1 < l < L                            (eq. 4)
        ΔW_L = e (h_{L−1}^err)ᵀ                                                      (eq. 5)
    averaged over the batch, with one dropout mask shared by both passes. As terms over the two
    passes (``mechanism``): ΔW_l = (h_l − h_l^err)ᵀ ⊗ h_{l−1}^err, ΔW_L = e ⊗ h_{L−1}^err.
    ``implementation="fast"`` (the default, ``fast.py``) reuses the clean pass in the modulated
    one's first layer; ``"equations"`` (``equations.py``) runs both passes as written.

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
            ``"reference-code-sqrt"``, n²·√p (that code's --sqrt_conv). Each divides the
            update Sec. 3.3 defines, with the sign of eqs. 3-4, whatever ``conv_sign`` is.
        conv_sign: the sign of the filter update: ``"paper"`` (that of Sec. 3.3 and eqs. 3-4,
            W ← W − η ΔW like the dense layers) or ``"reference-code"`` (−ΔW: the ICML code
            moves its filters by +η ΔW while its dense layers move by −η ΔW; main_pytorch.py
            l.443-503).
        seed: seed of the generator drawing F.
        implementation: ``"fast"`` or ``"equations"`` (the same updates; see above).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> model = MLP((784, 1024, 10), dropout=0.1)
        >>> rule = PEPITA(model)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.1, momentum=0.9)
        >>> rule.step(x, y); opt.step()

    Reference: Dellaferrera, Kreiman, "Error-driven Input Modulation: Solving the Credit
    Assignment Problem without a Backward Pass", ICML 2022.
    """

    name = "pepita"
    walks_conv_nets = True

    presynaptic = Option("modulated", one_of("modulated", "clean"))
    output_error = Option("clean", one_of("clean", "modulated"))
    perturbation = Option("error", one_of("error", "projected-random", "random"))
    amplitude = Option(0.0, NON_NEGATIVE)
    conv_average = Option("products", one_of(*CONV_AVERAGES))
    conv_sign = Option("paper", one_of(*CONV_SIGNS))

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        # Eqs. 3-5, with the presynaptic activity and the output error the options choose.
        pre = "h_prev_err" if self.presynaptic == "modulated" else "h_prev"
        error = "e" if self.output_error == "clean" else "e_err"
        self.terms = TwoPassTerms(hidden=(Term("h - h_err", pre),), output=(Term(error, pre),))
