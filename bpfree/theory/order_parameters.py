"""The macroscopic state of the teacher-student network, and what is read off it.

Index letters: k, l student hidden units (K), m, n teacher hidden units (M), i input (D).
With student first-layer rows w_k, teacher rows w̃_m, the top-down feedback vector F (D) of
PEPITA/AFA, and the fixed feedback weights b_k of FA/DFA:

    Q_kl = w_k·w_l / D      R_km = w_k·w̃_m / D      T_mn = w̃_m·w̃_n / D
    S_k  = w_k·F / √D       S̃_m  = w̃_m·F / √D       P    = F·F
    v_k, ṽ_m                the second-layer weights,   b_k the FA feedback

S_k is the adaptive feedback (W₁F)_k / √D of AFA in the units of the local fields
λ_k = w_k·x/√D, ν_m = w̃_m·x/√D, and ρ = F·x: (λ, ν, ρ) is Gaussian with covariance

    C = [[Q, R, S], [Rᵀ, T, S̃], [Sᵀ, S̃ᵀ, P]]                                  (n = K + M + 1)

and ε_g = ½ E[(Σ_k v_k g(λ_k) − Σ_m ṽ_m g(ν_m))²] = ½ ωᵀ I₂(C) ω with ω = (v, −ṽ, 0).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from bpfree.theory.integrals import i2


@dataclasses.dataclass(frozen=True)
class OrderParameters:
    """One macroscopic state. Shapes: Q (K, K), R (K, M), S (K,), v (K,), T (M, M), S_teacher
    (M,), P scalar, v_teacher (M,), b (K,). T, S_teacher, P, v_teacher and b never change."""

    Q: np.ndarray
    R: np.ndarray
    S: np.ndarray
    v: np.ndarray
    T: np.ndarray
    S_teacher: np.ndarray
    P: float
    v_teacher: np.ndarray
    b: np.ndarray

    @classmethod
    def from_weights(
        cls,
        student_w: np.ndarray,
        student_v: np.ndarray,
        teacher_w: np.ndarray,
        teacher_v: np.ndarray,
        f: np.ndarray,
        b: np.ndarray,
    ) -> OrderParameters:
        """The overlaps of weights W (K, D), v (K,), W̃ (M, D), ṽ (M,), F (D,), b (K,)."""
        d = student_w.shape[1]
        return cls(
            Q=student_w @ student_w.T / d,
            R=student_w @ teacher_w.T / d,
            S=student_w @ f / math.sqrt(d),
            v=np.array(student_v, dtype=np.float64),
            T=teacher_w @ teacher_w.T / d,
            S_teacher=teacher_w @ f / math.sqrt(d),
            P=float(f @ f),
            v_teacher=np.array(teacher_v, dtype=np.float64),
            b=np.array(b, dtype=np.float64),
        )

    @property
    def K(self) -> int:
        """Number of student hidden units."""
        return len(self.v)

    @property
    def M(self) -> int:
        """Number of teacher hidden units."""
        return len(self.v_teacher)

    def covariance(self) -> np.ndarray:
        """C (n, n) of the fields (λ_1..λ_K, ν_1..ν_M, ρ)."""
        student = np.hstack([self.Q, self.R, self.S[:, None]])
        teacher = np.hstack([self.R.T, self.T, self.S_teacher[:, None]])
        feedback = np.concatenate([self.S, self.S_teacher, [self.P]])[None]
        return np.vstack([student, teacher, feedback])

    def output_weights(self) -> np.ndarray:
        """ω (n,) with e = Σ_a ω_a g(u_a) = ŷ − y: (v, −ṽ, 0)."""
        return np.concatenate([self.v, -self.v_teacher, [0.0]])

    def generalisation_error(self) -> float:
        """ε_g = ½ ωᵀ I₂(C) ω, exact for g = erf(·/√2)."""
        omega = self.output_weights()
        return 0.5 * float(omega @ i2(self.covariance()) @ omega)


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """Order parameters at times t (n_t,): Q (n_t, K, K), R (n_t, K, M), S (n_t, K), v (n_t, K);
    ``fixed`` holds the state at t = 0, whose T, S_teacher, P, v_teacher and b are constant."""

    times: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    S: np.ndarray
    v: np.ndarray
    fixed: OrderParameters

    @classmethod
    def stack(cls, times: np.ndarray, states: list[OrderParameters]) -> Trajectory:
        """A trajectory from one state per time; times past the last state (a run that
        diverged and stopped) get NaN states."""
        missing = len(times) - len(states)
        last = states[-1]
        states = (
            states
            + [
                dataclasses.replace(
                    last,
                    Q=np.full_like(last.Q, np.nan),
                    R=np.full_like(last.R, np.nan),
                    S=np.full_like(last.S, np.nan),
                    v=np.full_like(last.v, np.nan),
                )
            ]
            * missing
        )
        return cls(
            times=np.asarray(times, dtype=np.float64),
            Q=np.stack([s.Q for s in states]),
            R=np.stack([s.R for s in states]),
            S=np.stack([s.S for s in states]),
            v=np.stack([s.v for s in states]),
            fixed=states[0],
        )

    def state(self, index: int) -> OrderParameters:
        """The state at times[index]."""
        return dataclasses.replace(
            self.fixed, Q=self.Q[index], R=self.R[index], S=self.S[index], v=self.v[index]
        )

    def generalisation_error(self) -> np.ndarray:
        """ε_g(t) (n_t,)."""
        return np.array([self.state(i).generalisation_error() for i in range(len(self.times))])

    def angles(self) -> dict[str, np.ndarray]:
        """Alignment angles in degrees (n_t,) of the student's second layer v with: the
        teacher's ṽ (``v_teacher``), the closest of the teacher's equivalent second layers
        (``v_degenerate``, see `degenerate_angle`), the adaptive feedback S = W₁F/√D
        (``v_adaptive_feedback``) and the fixed FA feedback b (``v_feedback``)."""
        pairs = zip(self.v, self.S, strict=True)
        return {
            "v_teacher": np.array([angle(v, self.fixed.v_teacher) for v in self.v]),
            "v_degenerate": np.array([degenerate_angle(v, self.fixed.v_teacher) for v in self.v]),
            "v_adaptive_feedback": np.array([angle(v, s) for v, s in pairs]),
            "v_feedback": np.array([angle(v, self.fixed.b) for v in self.v]),
        }


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two vectors of one length; NaN when the lengths differ or one
    of them is zero or not finite."""
    if a.shape != b.shape:
        return math.nan
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b) / norms if norms > 0.0 else math.nan
    if not math.isfinite(cosine):
        return math.nan
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def degenerate_angle(v: np.ndarray, v_teacher: np.ndarray) -> float:
    """Smallest angle between v and s ⊙ ṽ_π over permutations π and signs s = ±1.

    g is odd, so flipping (w̃_m, ṽ_m) → (−w̃_m, −ṽ_m) or permuting the teacher's units leaves
    it unchanged: the student may converge to any of these K!·2^K second layers (K = M)."""
    if len(v) != len(v_teacher) or not np.any(v):
        return math.nan
    return min(
        angle(v, np.array(signs) * v_teacher[list(order)])
        for order in itertools.permutations(range(len(v_teacher)))
        for signs in itertools.product((1.0, -1.0), repeat=len(v_teacher))
    )
