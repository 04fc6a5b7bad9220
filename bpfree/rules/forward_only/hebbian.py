"""PEPITA-Hebbian: PEPITA split into a Hebbian clean-pass term and an anti-Hebbian modulated one."""

from __future__ import annotations

from bpfree.core.checks import NON_NEGATIVE, SIGN, one_of
from bpfree.rules.common.options import Option
from bpfree.rules.forward_only.mechanism import Term, TwoPassTerms
from bpfree.rules.forward_only.two_pass import TwoPassRule
from bpfree.rules.registry import register

# ΔW_l = h_l h_{l−1}ᵀ − h_l^err (h_{l−1}^err)ᵀ,  ΔW_L = y h_{L−1}ᵀ − t (h_{L−1}^err)ᵀ
HEBBIAN_TERMS = TwoPassTerms(
    hidden=(Term("h", "h_prev"), Term("-h_err", "h_prev_err")),
    output=(Term("y", "h_prev"), Term("-t", "h_prev_err")),
)


@register
class PEPITAHebbian(TwoPassRule):
    """PEPITA-Hebbian (ICLR 2024 Sec. 5.1; the reference code's mode "mixed").

    Each update is the difference of two outer products, one per pass, with h_0 = x and
    h_0^err = x + s F e:
        ΔW_l = h_l h_{l−1}ᵀ − h_l^err (h_{l−1}^err)ᵀ,   l < L
        ΔW_L = y h_{L−1}ᵀ − t (h_{L−1}^err)ᵀ,           y = softmax(h_L)
    averaged over the batch (``HEBBIAN_TERMS``). It equals PEPITA (presynaptic "modulated")
    wherever the presynaptic terms of the two passes coincide; in general
        ΔW_l(Hebbian) = ΔW_l(PEPITA) + h_l (h_{l−1} − h_{l−1}^err)ᵀ,
        ΔW_L(Hebbian) = ΔW_L(PEPITA) + y (h_{L−1} − h_{L−1}^err)ᵀ.
    The fast form puts a hidden layer's two products through one matrix product, [h; −h^err]ᵀ
    [h_{l−1}; h_{l−1}^err], and the first layer's through (h_1 − h_1^err) xᵀ − s (h_1^err eᵀ) Fᵀ,
    without forming x + s F e.

    Args: as ``PEPITA``'s, without ``presynaptic``, ``output_error`` and ``conv_average`` (fixed
    by the rule); ``sign`` defaults to −1, the ICLR 2024 convention x − F e.
    """

    name = "pepita-hebbian"
    walks_conv_nets = True
    terms = HEBBIAN_TERMS

    sign = Option(-1, SIGN)
    perturbation = Option("error", one_of("error", "projected-random", "random"))
    amplitude = Option(0.0, NON_NEGATIVE)
