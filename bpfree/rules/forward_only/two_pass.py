"""A two-pass rule computed from its terms (``mechanism``), by the equations or the fast form."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from bpfree.core.checks import one_of
from bpfree.rules.base import StepResult
from bpfree.rules.common.options import Option
from bpfree.rules.common.walk import ConvLayer
from bpfree.rules.forward_only import equations, fast
from bpfree.rules.forward_only.mechanism import ModulatedInputRule, TwoPassTerms


class TwoPassRule(ModulatedInputRule):
    """A rule of the family defined by its ``terms`` over the two passes (see the module's
    docstring), computed by the ``implementation`` option: ``"fast"`` or ``"equations"``.

    ``modulation`` is ``"exact"`` (the modulated pass is run) or ``"linear"`` (its first-order
    difference h − h^err is chained through σ′: AFA). ``perturbation`` (where a rule offers it)
    replaces F e: ``"projected-random"`` is F (k r), ``"random"`` is k r without F.
    """

    terms: ClassVar[TwoPassTerms]
    modulation: ClassVar[str] = "exact"
    perturbation: str = "error"
    amplitude: float = 0.0
    conv_average: str = "products"
    conv_sign: str = "paper"

    implementation = Option("fast", one_of("fast", "equations"))

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        self.stack.average_conv_updates(self.conv_average, self.conv_sign)
        if self.modulation == "linear" and not self.terms.reads_clean_inputs:
            raise ValueError(f"{self.name}: a linear modulated pass has no h_err to multiply")

    def batch_power(self, param: nn.Parameter) -> int:
        """2 for a convolution whose filter update is divided by n² (``conv_average`` of the ICML
        code), else 1 (a mean over the batch)."""
        if self.conv_average == "products":
            return 1
        convs = [layer.conv for layer in self.stack.hidden if isinstance(layer, ConvLayer)]
        return 2 if any(param is p for conv in convs for p in conv.parameters()) else 1

    @torch.no_grad()
    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        if self.implementation == "equations":
            return equations.step(self, x, y)
        return fast.step(self, x, y)
