"""Diagnostics: how a rule's feedback and updates align with the forward weights and gradients."""

from bpfree.diagnostics.alignment import angle_degrees, cosine, norm_ratio
from bpfree.diagnostics.gradients import update_cosines

__all__ = ["angle_degrees", "cosine", "norm_ratio", "update_cosines"]
