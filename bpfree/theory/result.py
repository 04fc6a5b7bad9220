"""The result of a teacher-student run: its settings, simulated and integrated trajectories on
one time grid, the curves drawn from them and their summary measures."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from bpfree.theory.order_parameters import Trajectory

# The feedback whose angle with v each rule reports (BP has none).
FEEDBACK_ANGLE = {
    "bp": (),
    "fa": ("v_feedback",),
    "dfa": ("v_feedback",),
    "afa": ("v_adaptive_feedback",),
    "pepita": ("v_adaptive_feedback",),
}


@dataclasses.dataclass(frozen=True)
class TheoryRun:
    """The result of `run`: its settings, the simulations (rule → one `Trajectory` per data
    stream) and the ODE solutions (ODE rule → `Trajectory`), all on one time grid."""

    settings: dict[str, Any]
    simulations: dict[str, list[Trajectory]]
    odes: dict[str, Trajectory]

    @property
    def times(self) -> np.ndarray:
        """The time grid (n_t,)."""
        return next(iter(self.odes.values())).times

    def trajectories(self) -> dict[str, Trajectory | list[Trajectory]]:
        """Every source by label: ``sim/<rule>`` and ``ode/<rule>``."""
        sources: dict[str, Trajectory | list[Trajectory]] = {
            f"sim/{rule}": streams for rule, streams in self.simulations.items()
        }
        sources.update({f"ode/{rule}": trajectory for rule, trajectory in self.odes.items()})
        return sources

    def curves(self) -> dict[str, np.ndarray]:
        """Named curves (n_t,): ``t``; ``eps_g/<source>``; ``angle_<pair>/<source>`` in degrees
        for v with the teacher, the closest degenerate teacher and the rule's feedback (pairs of
        `Trajectory.angles`); ``norm_S/<source>`` = |W₁F|/√D. Simulated curves are means over
        the data streams."""
        curves = {"t": self.times}
        for label, source in self.trajectories().items():
            streams = source if isinstance(source, list) else [source]
            angles = [s.angles() for s in streams]
            curves[f"eps_g/{label}"] = np.mean([s.generalisation_error() for s in streams], 0)
            for pair in ("v_teacher", "v_degenerate", *FEEDBACK_ANGLE[label.split("/")[1]]):
                curves[f"angle_{pair}/{label}"] = np.mean([a[pair] for a in angles], 0)
            curves[f"norm_S/{label}"] = np.mean([np.linalg.norm(s.S, axis=1) for s in streams], 0)
        return curves

    def summary(self) -> dict[str, dict[str, float]]:
        """Per source: ε_g at t = 0 and t_max, the end of the initial plateau (`escape_time`)
        and, for AFA and PEPITA, the time v aligns with W₁F (`alignment_time`)."""
        curves, times = self.curves(), self.times
        summary = {}
        for label in self.trajectories():
            eps = curves[f"eps_g/{label}"]
            summary[label] = {
                "eps_g_start": float(eps[0]),
                "eps_g_end": float(eps[-1]),
                "plateau_end": escape_time(times, eps),
            }
            feedback = curves.get(f"angle_v_adaptive_feedback/{label}")
            if feedback is not None:
                summary[label]["alignment_time"] = alignment_time(times, feedback)
        return summary


def escape_time(times: np.ndarray, eps: np.ndarray, *, fraction: float = 0.9) -> float:
    """End of the initial plateau: the first t with ε_g(t) ≤ fraction·ε_g(0) (NaN if never)."""
    below = np.flatnonzero(eps <= fraction * eps[0])
    return float(times[below[0]]) if below.size else math.nan


def alignment_time(times: np.ndarray, angles: np.ndarray, *, threshold: float = 10.0) -> float:
    """First t at which an alignment angle (degrees) is at most ``threshold`` (NaN if never)."""
    aligned = np.flatnonzero(angles <= threshold)
    return float(times[aligned[0]]) if aligned.size else math.nan
