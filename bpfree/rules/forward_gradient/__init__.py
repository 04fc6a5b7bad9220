"""Forward gradients: gradient estimates from forward-mode directional derivatives, no backward."""

from bpfree.rules.forward_gradient.activity_perturbed import FGActivity
from bpfree.rules.forward_gradient.weight_perturbed import FGWeight

__all__ = ["FGActivity", "FGWeight"]
