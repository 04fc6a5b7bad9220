"""PEPITA-Hebbian: PEPITA split into a Hebbian clean-pass term and an anti-Hebbian modulated one."""

from __future__ import annotations

import torch
from torch import nn

from bpfree.rules.forward_only.mechanism import DenseLayer, write_outer_grad
from bpfree.rules.forward_only.pepita import PEPITA
from bpfree.rules.registry import register


@register
class PEPITAHebbian(PEPITA):
    """PEPITA-Hebbian (ICLR 2024 Sec. 5.1; the reference code's mode "mixed").

    Each update is the difference of two outer products, one per pass, with h_0 = x and
    h_0^err = x + s F e:
        ΔW_l = h_l h_{l−1}ᵀ − h_l^err (h_{l−1}^err)ᵀ,   l < L
        ΔW_L = y h_{L−1}ᵀ − t (h_{L−1}^err)ᵀ,           y = softmax(h_L)
    averaged over the batch. It equals PEPITA (presynaptic "modulated") wherever the
    presynaptic terms of the two passes coincide; in general
        ΔW_l(Hebbian) = ΔW_l(PEPITA) + h_l (h_{l−1} − h_{l−1}^err)ᵀ,
        ΔW_L(Hebbian) = ΔW_L(PEPITA) + y (h_{L−1} − h_{L−1}^err)ᵀ.
    A hidden layer's two products go through one matrix product, [h; −h^err]ᵀ [h_{l−1};
    h_{l−1}^err]; the first layer's through one product and a narrow one, (h_1 − h_1^err) xᵀ −
    s (h_1^err eᵀ) Fᵀ, without forming x + s F e.

    Args: as ``PEPITA``'s, without ``presynaptic`` and ``output_error`` (fixed by the rule);
    ``sign`` defaults to −1, the ICLR 2024 convention x − F e.
    """

    name = "pepita-hebbian"

    def __init__(
        self,
        model: nn.Module,
        *,
        sign: int = -1,
        f_scale: float = 0.05,
        perturbation: str = "error",
        amplitude: float = 0.0,
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(
            model,
            sign=sign,
            f_scale=f_scale,
            perturbation=perturbation,
            amplitude=amplitude,
            seed=seed,
            num_classes=num_classes,
        )

    uses_clean_presynaptic = True  # h_l h_{l−1}ᵀ

    def write_hidden(
        self,
        layer: DenseLayer,
        h: torch.Tensor,
        h_err: torch.Tensor,
        pre: torch.Tensor | None,
        pre_err: torch.Tensor,
        n: int,
    ) -> None:
        """ΔW_l = h_l h_{l−1}ᵀ − h_l^err (h_{l−1}^err)ᵀ."""
        write_outer_grad(layer, torch.cat([h, -h_err]), torch.cat([pre, pre_err]), n)

    def splits_first_layer(self, n: int, width: int) -> bool:
        """Always: split, h_1 xᵀ − h_1^err (x + s F e)ᵀ costs one (o, n, i) product and one
        (o, c, i), through x + s F e two (o, n, i) ones."""
        return True

    def first_layer_terms(
        self, h: torch.Tensor, h_err: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """h_1 xᵀ − h_1^err (x + s F e)ᵀ = (h_1 − h_1^err) xᵀ − h_1^err (s F e)ᵀ."""
        return h - h_err, -h_err

    def write_output(
        self, p: torch.Tensor, t: torch.Tensor, h: torch.Tensor, h_err: torch.Tensor, n: int
    ) -> None:
        """ΔW_L = y h_{L−1}ᵀ − t (h_{L−1}^err)ᵀ."""
        write_outer_grad(self.stack.output, torch.cat([p, -t]), torch.cat([h, h_err]), n)
