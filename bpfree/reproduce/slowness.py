"""The plateau fit of learning curves (ICML 2022 eq. 7-8, App. C) and its protocol.

    accuracy(epochs) = max_accuracy · epochs / (slowness + epochs)

``slowness`` is the number of epochs to reach half of ``max_accuracy``. The paper fits the test
curve averaged over runs, on the epochs before the first learning-rate decay, with the chance
level added as a point at epoch 0. (The model is 0 at epoch 0 whatever its parameters, so that
point adds a constant to the squared error and leaves the fit unchanged; it is added anyway, as
the protocol says.)

For a fixed slowness s the best max_accuracy is linear least squares in closed form,
A(s) = Σ aᵢ gᵢ / Σ gᵢ² with gᵢ = tᵢ / (s + tᵢ); the fit minimises the remaining squared error
over s, on a logarithmic grid and then by golden-section search inside the best bracket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class PlateauFit:
    """Eq. 7's parameters and the fit's root-mean-square residual (accuracy points)."""

    max_accuracy: float
    slowness: float
    rmse: float
    epochs_fitted: int

    def __call__(self, epochs: np.ndarray | float) -> np.ndarray | float:
        return self.max_accuracy * epochs / (self.slowness + epochs)


def plateau_fit(
    epochs: Sequence[float],
    accuracy: Sequence[float],
    *,
    slowness_range: tuple[float, float] = (1e-4, 1e4),
) -> PlateauFit:
    """Least-squares fit of eq. 7 to (epochs, accuracy) points."""
    t = np.asarray(epochs, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if t.shape != a.shape or t.ndim != 1 or int((t > 0).sum()) < 2:
        raise ValueError("plateau_fit needs matching 1-D epochs and accuracies, two with epoch > 0")
    if not (np.isfinite(t).all() and np.isfinite(a).all()) or (t < 0).any():
        raise ValueError("plateau_fit needs finite accuracies at epochs >= 0")

    def best_max_accuracy(s: float) -> float:
        g = t / (s + t)
        return float(a @ g / (g @ g))

    def squared_error(log_s: float) -> float:
        s = math.exp(log_s)
        residual = a - best_max_accuracy(s) * t / (s + t)
        return float(residual @ residual)

    low, high = (math.log(v) for v in slowness_range)
    grid = np.linspace(low, high, 401)
    errors = [squared_error(v) for v in grid]
    i = int(np.argmin(errors))
    left, right = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for _ in range(100):  # golden-section search on log s inside [left, right]
        inner_left = right - GOLDEN * (right - left)
        inner_right = left + GOLDEN * (right - left)
        if squared_error(inner_left) < squared_error(inner_right):
            right = inner_right
        else:
            left = inner_left
    log_s = (left + right) / 2.0
    s = math.exp(log_s)
    return PlateauFit(
        max_accuracy=best_max_accuracy(s),
        slowness=s,
        rmse=math.sqrt(squared_error(log_s) / len(t)),
        epochs_fitted=int((t > 0).sum()),
    )


def slowness_protocol(
    test_curve: Sequence[float], *, first_decay: int | None, num_classes: int
) -> PlateauFit:
    """ICML App. C: fit eq. 8 to a mean test curve (``test_curve[k]`` is epoch k + 1), on the
    epochs up to the first learning-rate decay, with chance level (100 / classes) at epoch 0."""
    last = len(test_curve) if first_decay is None else min(first_decay, len(test_curve))
    epochs = [0.0, *range(1, last + 1)]
    accuracy = [100.0 / num_classes, *test_curve[:last]]
    return plateau_fit(epochs, accuracy)
