"""Diagnostics: how a rule's feedback and updates align with the forward weights and gradients,
and the norms and distributions of the trained weights."""

from bpfree.diagnostics.alignment import angle_degrees, cosine, norm_ratio
from bpfree.diagnostics.gradients import update_cosines
from bpfree.diagnostics.weights import distribution_fit, weight_diagnostics, weight_norms

__all__ = [
    "angle_degrees",
    "cosine",
    "distribution_fit",
    "norm_ratio",
    "update_cosines",
    "weight_diagnostics",
    "weight_norms",
]
