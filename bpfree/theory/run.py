"""Simulation and ODE of one teacher-student setting side by side: curves, measures, files.

A run draws the networks once from the seed (`draw_networks`), trains the student online with
each rule (`simulate`) and integrates each rule's ODE from the same initial order parameters
(`integrate`), on one time grid t = 0 and ``points − 1`` log-spaced times up to t_max.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bpfree.theory.model import check_rule, draw_networks, ode_rule
from bpfree.theory.odes import integrate
from bpfree.theory.order_parameters import Trajectory
from bpfree.theory.simulation import simulate

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


def time_grid(D: int, t_max: float, points: int) -> np.ndarray:
    """t = 0, then points − 1 log-spaced times from max(1/D, t_max·10⁻⁴) to t_max."""
    return np.concatenate([[0.0], np.geomspace(max(1.0 / D, t_max * 1e-4), t_max, points - 1)])


def run(
    rules: Sequence[str],
    *,
    D: int = 500,
    K: int = 2,
    M: int = 2,
    lr: float = 0.05,
    seed: int = 0,
    t_max: float = 2000.0,
    points: int = 120,
    streams: int = 1,
    kappa: float = 1.0,
    sigma_w: float = 1.0,
    sigma_v: float = 0.1,
    progress: Callable[[int], None] | None = None,
) -> TheoryRun:
    """Simulate each rule and integrate its ODE from the same initial networks.

    The defaults are the ICLR 2024 Fig. 2b setting (D = 500, η = 0.05, K = M = 2, erf).

    Args:
        rules: names from ``bpfree.theory.model.RULES``; dfa runs FA's dynamics.
        D, K, M: input dimension, student and teacher hidden units.
        lr: η > 0 (first layer η/√D, second layer η/D per step).
        seed: seed of the networks and (through another stream) of the data.
        t_max: last time, in steps / D.
        points: number of times recorded (≥ 2).
        streams: independent data streams simulated per rule (curves average them).
        kappa, sigma_w, sigma_v: see `draw_networks`.
        progress: called with the number of simulated steps done since its last call.
    """
    if not rules:
        raise ValueError("rules must name at least one rule")
    for rule in rules:
        check_rule(rule)
    if not lr > 0.0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if not t_max > 0.0:
        raise ValueError(f"t_max must be positive, got {t_max!r}")
    if not (isinstance(points, int) and points >= 2):
        raise ValueError(f"points must be an integer ≥ 2, got {points!r}")
    networks = draw_networks(D, K, M, seed=seed, sigma_w=sigma_w, sigma_v=sigma_v, kappa=kappa)
    times = time_grid(D, t_max, points)
    simulations = {
        rule: simulate(networks, rule, lr, times, seed=seed, streams=streams, progress=progress)
        for rule in dict.fromkeys(rules)
    }
    initial = networks.order_parameters()
    odes = {
        name: integrate(initial, name, lr, times) for name in dict.fromkeys(map(ode_rule, rules))
    }
    settings = {
        "rules": list(rules),
        "D": D,
        "K": K,
        "M": M,
        "lr": lr,
        "seed": seed,
        "t_max": t_max,
        "points": points,
        "streams": streams,
        "kappa": kappa,
        "sigma_w": sigma_w,
        "sigma_v": sigma_v,
    }
    return TheoryRun(settings=settings, simulations=simulations, odes=odes)


def save(result: TheoryRun, folder: Path) -> list[Path]:
    """Write ``curves.csv``, ``curves.json`` (settings, summary, curves; NaN as null) and, when
    matplotlib is installed, ``eps_g.png`` and ``angles.png`` into folder; return the paths."""
    from bpfree.theory.plots import plot_alignment, plot_generalisation_error

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    curves = result.curves()
    csv_path, json_path = folder / "curves.csv", folder / "curves.json"
    with csv_path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(curves)
        writer.writerows(np.column_stack(list(curves.values())).tolist())
    document = {
        "settings": result.settings,
        "summary": result.summary(),
        "curves": {name: values.tolist() for name, values in curves.items()},
    }
    json_path.write_text(json.dumps(_nan_to_none(document), indent=1) + "\n")
    written = [csv_path, json_path]
    for name, plot in (("eps_g.png", plot_generalisation_error), ("angles.png", plot_alignment)):
        if plot(result, folder / name):
            written.append(folder / name)
    return written


def _nan_to_none(value: Any) -> Any:
    """The value with every float NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
