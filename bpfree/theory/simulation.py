"""Online SGD of the student on the teacher: one fresh Gaussian sample per step, t = steps / D.

Index letters: s stream (independent data, same initial networks), k student unit (K),
m teacher unit (M), i input (D). Per step, with x ~ N(0, I_D), λ_k = w_k·x/√D, h_k = g(λ_k),
e = Σ_k v_k h_k − y and learning rate η (first layer η/√D, second layer η/D, so that the order
parameters move by O(η) per unit of t; Saad & Solla 1995, Goldt et al. 2019):

    bp        w_k ← w_k − (η/√D) v_k g′(λ_k) e x          v_k ← v_k − (η/D) e h_k
    fa, dfa   w_k ← w_k − (η/√D) b_k g′(λ_k) e x          v_k ← v_k − (η/D) e h_k
    afa       w_k ← w_k − (η/√D) a_k g′(λ_k) e x          v_k ← v_k − (η/D) e h_k       (eq. 6)
    pepita    w_k ← w_k − (η/√D) (h_k − h_k^err) x_err    v_k ← v_k − (η/D) e h_k^err   (eqs. 3, 5)

with the adaptive feedback a_k = (W₁F)_k/√D = S_k, the modulated input x_err = x − F e
(ICLR 2024 sign) and h_k^err = g(w_k·x_err/√D) = g(λ_k − a_k e). For a small F,
h_k − h_k^err = g′(λ_k) a_k e + O(F²): PEPITA's first-layer update is AFA's to first order.
(DFA sends e to the hidden layer through b: with a scalar output that is FA.)

The generalisation error is read off the simulated weights' order parameters with the exact
ε_g = ½ ωᵀ I₂(C) ω (`OrderParameters.generalisation_error`), not estimated on a test set.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bpfree.theory.integrals import activation, activation_derivative
from bpfree.theory.model import Networks, check_rule
from bpfree.theory.order_parameters import OrderParameters, Trajectory

_CHUNK = 512  # samples drawn (and teacher outputs computed) per block of steps


def simulate(
    networks: Networks,
    rule: str,
    lr: float,
    times: np.ndarray,
    *,
    seed: int = 0,
    streams: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[Trajectory]:
    """Train copies of the student online and record their order parameters.

    Args:
        networks: the initial teacher, student and feedback (`draw_networks`).
        rule: one of ``bpfree.theory.model.RULES``.
        lr: η > 0.
        times: increasing times t ≥ 0 at which to record (n_t,); step ⌊t·D + ½⌋.
        seed: seed of the data (independent of the networks' seed).
        streams: number of independent data streams trained side by side from the same
            initial networks (a batch axis, which amortises the per-step overhead).
        progress: called with the number of steps done since its last call.

    Returns:
        One `Trajectory` per stream. A stream whose weights stop being finite (PEPITA with a
        large F diverges) is stopped: its later states are NaN.
    """
    rule, times = _checked(rule, lr, times, streams)
    d = networks.D
    record_steps = np.floor(times * d + 0.5).astype(np.int64)
    rng = np.random.default_rng([seed, 1])
    w = np.repeat(networks.student_w[None], streams, axis=0)  # (s, k, i)
    v = np.repeat(networks.student_v[None], streams, axis=0)  # (s, k)
    teacher, b, f = (networks.teacher_w, networks.teacher_v), networks.b, networks.f
    lr1, lr2, inv_sqrt_d = lr / math.sqrt(d), lr / d, 1.0 / math.sqrt(d)
    states: list[list[OrderParameters]] = [[] for _ in range(streams)]
    step, reported, next_record = 0, 0, 0
    x_block = y_block = np.empty(0)
    with np.errstate(over="ignore", invalid="ignore"):
        while next_record < len(record_steps):
            while next_record < len(record_steps) and record_steps[next_record] == step:
                for s, stream in enumerate(states):
                    stream.append(OrderParameters.from_weights(w[s], v[s], *teacher, f, b))
                next_record += 1
            if next_record == len(record_steps):
                break
            j = step % _CHUNK
            if j == 0:
                if not np.isfinite(w).all():
                    break
                if progress is not None and step > reported:
                    progress(step - reported)
                    reported = step
                # float32 draws are twice as fast; the samples are then used in float64
                x_block = rng.standard_normal((_CHUNK, streams, d), dtype=np.float32).astype(float)
                y_block = activation(x_block @ teacher[0].T * inv_sqrt_d) @ teacher[1]  # (c, s)
            _sgd_step(rule, w, v, x_block[j], y_block[j], f, b, (lr1, lr2, inv_sqrt_d))
            step += 1
    if progress is not None and step > reported:
        progress(step - reported)
    return [Trajectory.stack(times, s) for s in states]


def _checked(rule: str, lr: float, times: np.ndarray, streams: int) -> tuple[str, np.ndarray]:
    """The rule's name and the times as an array, or a ``ValueError`` naming the bad argument."""
    rule = check_rule(rule)
    if not lr > 0.0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if streams < 1:
        raise ValueError(f"streams must be a positive integer, got {streams!r}")
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or np.any(times < 0) or np.any(np.diff(times) < 0):
        raise ValueError("times must be a non-decreasing 1-d array of non-negative times")
    return rule, times


def _sgd_step(
    rule: str,
    w: np.ndarray,
    v: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    f: np.ndarray,
    b: np.ndarray,
    scales: tuple[float, float, float],
) -> None:
    """One step of every stream on its sample x (s, i) with teacher output y (s,), in place
    (the updates of the module's docstring); ``scales`` = (η/√D, η/D, 1/√D)."""
    lr1, lr2, inv_sqrt_d = scales
    lam = (w @ x[:, :, None])[:, :, 0] * inv_sqrt_d  # (s, k)
    h = activation(lam)
    e = np.einsum("sk,sk->s", v, h) - y
    if rule == "pepita":
        a = (w @ f) * inv_sqrt_d
        h_err = activation(lam - e[:, None] * a)
        x_err = x - e[:, None] * f
        w -= lr1 * (h - h_err)[:, :, None] * x_err[:, None, :]
        v -= lr2 * e[:, None] * h_err
        return
    if rule == "bp":
        feedback = v
    elif rule == "fa":
        feedback = b
    else:  # afa
        feedback = (w @ f) * inv_sqrt_d
    delta = feedback * activation_derivative(lam) * e[:, None]
    w -= lr1 * delta[:, :, None] * x[:, None, :]
    v -= lr2 * e[:, None] * h
