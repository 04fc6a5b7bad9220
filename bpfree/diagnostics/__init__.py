"""Diagnostics: how a rule's feedback and updates align with the forward weights and gradients."""

from bpfree.diagnostics.alignment import angle_degrees, cosine, norm_ratio

__all__ = ["angle_degrees", "cosine", "norm_ratio"]
