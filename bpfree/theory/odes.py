"""The closed ODEs of the order parameters for D → ∞, integrated with fixed-step RK4.

Index letters: k, l student units (K); m teacher units (M); a, b, c, d all n = K + M + 1 fields
u = (λ, ν, ρ) with covariance C (`OrderParameters.covariance`) and output weights
ω = (v, −ṽ, 0), so e = Σ_c ω_c g(u_c). The first-layer update of every rule is
Δw_k = −(η/√D) β_k g′(λ_k) e x with the feedback

    β = v (bp),   β = b (fa, dfa),   β = S = W₁F/√D (afa, pepita)

and Δv_k = −(η/D) e g(λ_k). Averaging the increments of the overlaps over x, and counting
D steps per unit of t (Saad & Solla 1995; Goldt et al. 2019; Refinetti et al. 2021 for FA):

    dv_k/dt  = −η Σ_c ω_c I₂(k, c)
    dR_km/dt = −η β_k G_k(ν_m)            G_k(u_b) = E[g′(λ_k) u_b e] = Σ_c ω_c I₃(k, b, c)
    dS_k/dt  = −η β_k G_k(ρ)
    dQ_kl/dt = −η β_k G_k(λ_l) − η β_l G_l(λ_k) + η² β_k β_l Σ_cd ω_c ω_d I₄(k, l, c, d)

The η² term is the only one left by the square Δw_k·Δw_l, since |x|²/D → 1; T, S̃, P, ṽ, b are
constant. F enters as one more "teacher" vector √D F with zero output weight, so S obeys R's
equation with ν_m replaced by ρ = F·x; for AFA the feedback S is then itself an order parameter.

PEPITA, to first order in h − h^err = g′(λ) S e (the expansion that gives AFA) but keeping its
modulated presynaptic input x_err = x − F e and h^err in the second layer (ICLR eqs. 3, 5),
shifts each field by x_err: u_b → u_b − e C_ρb, and g(λ_k) → g(λ_k) − g′(λ_k) S_k e:

    G_k(u_b) → G_k(u_b) − C_ρb J_k,   E[g(λ_k) e] → E[g(λ_k) e] − S_k J_k,
    J_k = E[g′(λ_k) e²] = Σ_cd ω_c ω_d J₃(k, c, d)

with C_ρb = (S_l, S̃_m, P). In dS_k/dt this adds +η P J_k S_k ≥ 0: the modulated input keeps
pushing w_k along F, a growth of the adaptive feedback that AFA lacks (docs/theory.md).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bpfree.theory.integrals import i2, i3, i4, j3
from bpfree.theory.model import ode_rule
from bpfree.theory.order_parameters import OrderParameters, Trajectory


def derivatives(state: OrderParameters, rule: str, lr: float) -> OrderParameters:
    """d/dt of (Q, R, S, v) at ``state`` (the constant parts are returned as zeros)."""
    k, m = state.K, state.M
    cov, omega = state.covariance(), state.output_weights()
    rule = ode_rule(rule)
    feedback = {"bp": state.v, "fa": state.b, "afa": state.S, "pepita": state.S}[rule]
    grad = i3(cov, k) @ omega  # (k, b): E[g′(λ_k) u_b e]
    second_layer = i2(cov)[:k] @ omega  # (k,): E[g(λ_k) e]
    if rule == "pepita":
        # x_err = x − F e shifts each field u_b by −e C_ρb; h^err = h − g′(λ) S e
        modulation = j3(cov, k) @ omega @ omega  # (k,): E[g′(λ_k) e²]
        grad = grad - modulation[:, None] * cov[-1][None, :]
        second_layer = second_layer - state.S * modulation
    curvature = i4(cov, k) @ omega @ omega  # (k, l): E[g′(λ_k) g′(λ_l) e²]
    first = feedback[:, None] * grad[:, :k]
    return dataclasses.replace(
        state,
        Q=-lr * (first + first.T) + lr**2 * np.outer(feedback, feedback) * curvature,
        R=-lr * feedback[:, None] * grad[:, k : k + m],
        S=-lr * feedback * grad[:, k + m],
        v=-lr * second_layer,
        T=np.zeros_like(state.T),
        S_teacher=np.zeros_like(state.S_teacher),
        P=0.0,
        v_teacher=np.zeros_like(state.v_teacher),
        b=np.zeros_like(state.b),
    )


def _axpy(state: OrderParameters, h: float, slope: OrderParameters) -> OrderParameters:
    """state + h·slope on the evolving parts (Q, R, S, v)."""
    return dataclasses.replace(
        state,
        Q=state.Q + h * slope.Q,
        R=state.R + h * slope.R,
        S=state.S + h * slope.S,
        v=state.v + h * slope.v,
    )


def _rk4_step(state: OrderParameters, rule: str, lr: float, h: float) -> OrderParameters:
    """One classical Runge-Kutta step of length h."""
    k1 = derivatives(state, rule, lr)
    k2 = derivatives(_axpy(state, h / 2, k1), rule, lr)
    k3 = derivatives(_axpy(state, h / 2, k2), rule, lr)
    k4 = derivatives(_axpy(state, h, k3), rule, lr)
    state = _axpy(state, h / 6, k1)
    state = _axpy(state, h / 3, k2)
    state = _axpy(state, h / 3, k3)
    return _axpy(state, h / 6, k4)


def integrate(
    initial: OrderParameters,
    rule: str,
    lr: float,
    times: np.ndarray,
    *,
    dt: float | None = None,
) -> Trajectory:
    """Integrate the ODEs of ``rule`` from ``initial`` (at t = times[0]) to each of ``times``.

    Args:
        initial: the order parameters at times[0], e.g. ``draw_networks(...).order_parameters()``.
        rule: one of ``bpfree.theory.model.RULES`` (dfa integrates FA's ODE).
        lr: η > 0.
        times: non-decreasing times (n_t,).
        dt: RK4 step, 0.1/η by default (10 % of the time scale 1/η of the dynamics; halving
            it changes ε_g by < 1e-7, tests/theory/test_odes.py).

    Returns:
        The `Trajectory`; if the state stops being finite (PEPITA with a large F diverges),
        that time and the later ones are NaN.
    """
    ode_rule(rule)
    if not lr > 0.0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or np.any(np.diff(times) < 0):
        raise ValueError("times must be a non-decreasing 1-d array")
    dt = 0.1 / lr if dt is None else dt
    if not dt > 0.0:
        raise ValueError(f"dt must be positive, got {dt!r}")
    state, states = initial, [initial]
    with np.errstate(over="ignore", invalid="ignore"):
        for span in np.diff(times):
            steps = math.ceil(span / dt - 1e-9)
            for _ in range(steps):
                state = _rk4_step(state, rule, lr, span / steps)
            if not np.isfinite(state.Q).all():
                break
            states.append(state)
    return Trajectory.stack(times, states)
