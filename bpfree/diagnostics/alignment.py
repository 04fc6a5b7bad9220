"""Alignment between two weight tensors (re-exported from ``bpfree.rules.common.alignment``,
where the rules' ``alignment()`` computes it)."""

from bpfree.rules.common.alignment import alignment_of, angle_degrees, cosine, norm_ratio

__all__ = ["alignment_of", "angle_degrees", "cosine", "norm_ratio"]
