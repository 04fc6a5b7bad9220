"""The teacher-student model: the two networks, the feedback, and the learning rules' names.

Index letters: k student hidden units (K), m teacher hidden units (M), i input (D).

    teacher  y = Σ_m ṽ_m g(ν_m),  ν_m = w̃_m·x/√D
    student  ŷ = Σ_k v_k g(λ_k),  λ_k = w_k·x/√D,     x ~ N(0, I_D),  g(u) = erf(u/√2)

Initial weights (each a fixed function of the seed): w̃_mi ~ N(0, 1) so T ≈ I; ṽ_m = 1 (the soft
committee machine of Saad & Solla, whose degenerate solutions are its sign flips and
permutations); w_ki ~ N(0, σ_w²); v_k ~ N(0, σ_v²); the FA/DFA feedback b_k ~ N(0, 1); the
PEPITA/AFA feedback F_i ~ N(0, κ²/D) (ICLR 2024 Sec. 3.1: entries of std κ/√D).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bpfree.theory.order_parameters import OrderParameters

RULES = ("bp", "fa", "dfa", "afa", "pepita")

# DFA projects the output error straight to the hidden layer through b; with one hidden layer
# and a scalar output that is exactly FA's b·e, so DFA is FA here.
_SAME_DYNAMICS = {"dfa": "fa"}
_ODE_OF = {"dfa": "fa"}


def check_rule(rule: str) -> str:
    """The rule's canonical simulated form (``dfa`` → ``fa``); ValueError naming it if unknown."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}: choose one of {', '.join(RULES)}")
    return _SAME_DYNAMICS.get(rule, rule)


def ode_rule(rule: str) -> str:
    """The rule whose ODE describes ``rule`` in the limit D → ∞ (``dfa`` → ``fa``)."""
    check_rule(rule)
    return _ODE_OF.get(rule, rule)


@dataclasses.dataclass(frozen=True)
class Networks:
    """Microscopic initial state: student_w (K, D), student_v (K,), teacher_w (M, D), teacher_v
    (M,), b (K,) the FA/DFA feedback, f (D,) the PEPITA/AFA feedback vector F."""

    student_w: np.ndarray
    student_v: np.ndarray
    teacher_w: np.ndarray
    teacher_v: np.ndarray
    b: np.ndarray
    f: np.ndarray

    @property
    def D(self) -> int:
        """Input dimension."""
        return self.student_w.shape[1]

    def order_parameters(self) -> OrderParameters:
        """The overlaps of these weights (the ODE's initial condition)."""
        return OrderParameters.from_weights(
            self.student_w, self.student_v, self.teacher_w, self.teacher_v, self.f, self.b
        )


def draw_networks(
    D: int,
    K: int,
    M: int,
    *,
    seed: int = 0,
    sigma_w: float = 1.0,
    sigma_v: float = 0.1,
    kappa: float = 1.0,
) -> Networks:
    """Draw teacher, student and feedback from ``seed`` (see the module docstring).

    Args:
        D: input dimension; K, M: student and teacher hidden units.
        seed: seed of the generator (the data of a simulation come from another stream).
        sigma_w, sigma_v: std of the student's first- and second-layer weights.
        kappa: κ, F_i ~ N(0, κ²/D) so that P = F·F ≈ κ².
    """
    for name, value in (("D", D), ("K", K), ("M", M)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("sigma_w", sigma_w), ("sigma_v", sigma_v), ("kappa", kappa)):
        if not value >= 0.0:
            raise ValueError(f"{name} must be non-negative, got {value!r}")
    rng = np.random.default_rng([seed, 0])
    return Networks(
        student_w=sigma_w * rng.standard_normal((K, D)),
        student_v=sigma_v * rng.standard_normal(K),
        teacher_w=rng.standard_normal((M, D)),
        teacher_v=np.ones(M),
        b=rng.standard_normal(K),
        f=kappa / math.sqrt(D) * rng.standard_normal(D),
    )
