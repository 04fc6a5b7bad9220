"""Forward-only rules: two or more forward passes, no backward pass at all."""

from bpfree.rules.forward_only.mechanism import DenseLayer, ForwardOnlyRule, LayerStack
from bpfree.rules.forward_only.pepita import PEPITA

__all__ = ["PEPITA", "DenseLayer", "ForwardOnlyRule", "LayerStack"]
