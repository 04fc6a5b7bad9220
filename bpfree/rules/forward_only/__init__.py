"""Forward-only rules: two or more forward passes, no backward pass at all."""

from bpfree.rules.forward_only.afa import AFA
from bpfree.rules.forward_only.hebbian import PEPITAHebbian
from bpfree.rules.forward_only.mechanism import DenseLayer, ForwardOnlyRule, LayerStack
from bpfree.rules.forward_only.pepita import PEPITA
from bpfree.rules.forward_only.pepita_wm import PEPITAWeightMirror
from bpfree.rules.forward_only.time_local import PEPITATimeLocal

__all__ = [
    "AFA",
    "PEPITA",
    "DenseLayer",
    "ForwardOnlyRule",
    "LayerStack",
    "PEPITAHebbian",
    "PEPITATimeLocal",
    "PEPITAWeightMirror",
]
