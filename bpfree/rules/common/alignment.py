"""Alignment between two weight tensors: the angle of their flattened vectors and their norm ratio.

As in Xiao et al. 2018 and the PFA paper (Sec. 3): both tensors are flattened, and the angle is
arccos of their cosine similarity, in degrees (0 = aligned, 90 = orthogonal, 180 = opposite).
"""

from __future__ import annotations

import math

import torch


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of the flattened tensors (0 when either is zero)."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    denominator = a.norm() * b.norm()
    return 0.0 if denominator == 0 else float((a @ b) / denominator)


def angle_degrees(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle in degrees between the flattened tensors."""
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine(a, b)))))


def norm_ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a‖ / ‖b‖ (Frobenius)."""
    return float(a.double().norm() / b.double().norm())


def alignment_of(feedback: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``{"angle": …, "norm_ratio": …}`` of a feedback tensor against what it stands for."""
    return {"angle": angle_degrees(feedback, target), "norm_ratio": norm_ratio(feedback, target)}
