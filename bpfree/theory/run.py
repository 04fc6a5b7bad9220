"""Simulation and ODE of one teacher-student setting side by side.

A run draws the networks once from the seed (`draw_networks`), trains the student online with
each rule (`simulate`) and integrates each rule's ODE from the same initial order parameters
(`integrate`), on one time grid t = 0 and ``points − 1`` log-spaced times up to t_max.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bpfree.theory.model import check_rule, draw_networks, ode_rule
from bpfree.theory.odes import integrate
from bpfree.theory.result import TheoryRun
from bpfree.theory.simulation import simulate


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
    _check_arguments(rules, lr, t_max, points)
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


def _check_arguments(rules: Sequence[str], lr: float, t_max: float, points: int) -> None:
    """A ``ValueError`` naming the first bad argument of ``run``."""
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
