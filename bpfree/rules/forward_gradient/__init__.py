"""Forward gradients: gradient estimates from forward-mode directional derivatives, no backward.

A forward gradient is g = (∇f · v) v for a random direction v ~ N(0, I): since E[v vᵀ] = I it is
an unbiased estimate of ∇f, and ∇f · v is one Jacobian-vector product, carried as a
forward-mode tangent alongside the forward pass (Baydin et al. 2022; ``common.directional``,
``common.tangents``). No reverse-mode graph is built and no backward pass runs. The directions
come from a ``RandomStream`` whose position is rule state, so a resumed run draws what it would
have drawn.
"""

from bpfree.rules.forward_gradient.activity_perturbed import FGActivity
from bpfree.rules.forward_gradient.weight_perturbed import FGWeight

__all__ = ["FGActivity", "FGWeight"]
