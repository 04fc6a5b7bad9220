"""The activation g(u) = erf(u/√2) and its Gaussian averages I₂, I₃, I₄ in closed form.

Index letters: a, b, c, d run over the n jointly Gaussian, zero-mean local fields u (student
fields λ first, then teacher fields ν, then the feedback field ρ); C (n, n) is their covariance.
The first ``k`` fields are the students'; the averages with g′ are only needed there.

    I₂(a, b)       = E[g(u_a) g(u_b)]
                   = (2/π) arcsin(C_ab / √((1 + C_aa)(1 + C_bb)))
    I₃(a, b, c)    = E[g′(u_a) u_b g(u_c)]
                   = (2/π) (C_bc (1 + C_aa) − C_ab C_ac) / ((1 + C_aa) √Λ₃),
                     Λ₃ = (1 + C_aa)(1 + C_cc) − C_ac²
    I₄(a, b, c, d) = E[g′(u_a) g′(u_b) g(u_c) g(u_d)]
                   = (4 / (π² √Λ₄)) arcsin(Λ₀ / √(Λ₁ Λ₂)),
                     Λ₄ = (1 + C_aa)(1 + C_bb) − C_ab²
                     Λ₀ = Λ₄ C_cd − C_bc C_bd (1 + C_aa) − C_ac C_ad (1 + C_bb)
                          + C_ab C_ac C_bd + C_ab C_ad C_bc
                     Λ₁ = Λ₄ (1 + C_cc) − C_bc² (1 + C_aa) − C_ac² (1 + C_bb) + 2 C_ab C_ac C_bc
                     Λ₂ = Λ₄ (1 + C_dd) − C_bd² (1 + C_aa) − C_ad² (1 + C_bb) + 2 C_ab C_ad C_bd
    J₃(a, b, c)    = E[g′(u_a) g(u_b) g(u_c)]
                   = √(2/π) (1 + C_aa)^(−½) I₂(b, c; C′),  C′_bc = C_bc − C_ab C_ac / (1 + C_aa)

g(u) = erf(u/√2), g′(u) = √(2/π) exp(−u²/2): the scaling of Saad & Solla (1995) and Goldt et al.
(2019), for which these forms are exact (docs/theory.md says why it is used, and how it maps
onto erf(u)).

Reference: Saad, Solla, "On-line learning in soft committee machines", Phys. Rev. E 52, 4225
(1995), eqs. (A1)-(A4); Goldt et al., "Dynamics of stochastic gradient descent for two-layer
neural networks in the teacher-student setup", NeurIPS 2019, App. A.
"""

from __future__ import annotations

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def activation(u: np.ndarray) -> np.ndarray:
    """g(u) = erf(u/√2), elementwise (float64)."""
    return _erf(np.asarray(u, dtype=np.float64) * _SQRT_HALF).astype(np.float64)


def activation_derivative(u: np.ndarray) -> np.ndarray:
    """g′(u) = √(2/π) exp(−u²/2), elementwise."""
    u = np.asarray(u, dtype=np.float64)
    return _SQRT_2_OVER_PI * np.exp(-0.5 * u * u)


def i2(cov: np.ndarray) -> np.ndarray:
    """I₂(a, b) = E[g(u_a) g(u_b)] for every pair of fields: (..., n, n) from C (..., n, n)."""
    d = 1.0 + np.diagonal(cov, axis1=-2, axis2=-1)
    return (2.0 / math.pi) * np.arcsin(cov / np.sqrt(d[..., :, None] * d[..., None, :]))


def i3(cov: np.ndarray, k: int) -> np.ndarray:
    """I₃(a, b, c) = E[g′(u_a) u_b g(u_c)] for a < k and all b, c: (k, n, n) from C (n, n)."""
    d = 1.0 + np.diag(cov)
    daa = d[:k, None, None]
    cab = cov[:k, :, None]
    cac = cov[:k, None, :]
    lambda3 = daa * d[None, None, :] - cac**2
    return (2.0 / math.pi) * (cov[None] * daa - cab * cac) / (daa * np.sqrt(lambda3))


def j3(cov: np.ndarray, k: int) -> np.ndarray:
    """J₃(a, b, c) = E[g′(u_a) g(u_b) g(u_c)] for a < k and all b, c: (k, n, n) from C (n, n).

    g′(u_a) = √(2/π) exp(−u_a²/2) tilts the Gaussian: the average is √(2/π) (1 + C_aa)^(−½)
    times I₂ under the covariance C′ = C − C_a· C_·a / (1 + C_aa) (Sherman-Morrison)."""
    daa = 1.0 + np.diag(cov)[:k, None, None]
    tilted = cov[None] - cov[:k, :, None] * cov[:k, None, :] / daa
    return _SQRT_2_OVER_PI / np.sqrt(daa) * i2(tilted)


def i4(cov: np.ndarray, k: int) -> np.ndarray:
    """I₄(a, b, c, d) = E[g′(u_a) g′(u_b) g(u_c) g(u_d)] for a, b < k: (k, k, n, n)."""
    diag = 1.0 + np.diag(cov)
    daa = diag[:k, None, None, None]
    dbb = diag[None, :k, None, None]
    dcc = diag[None, None, :, None]
    ddd = diag[None, None, None, :]
    cab = cov[:k, :k, None, None]
    cac = cov[:k, None, :, None]
    cad = cov[:k, None, None, :]
    cbc = cov[None, :k, :, None]
    cbd = cov[None, :k, None, :]
    ccd = cov[None, None, :, :]
    lambda4 = daa * dbb - cab**2
    lambda0 = lambda4 * ccd - cbc * cbd * daa - cac * cad * dbb + cab * cac * cbd + cab * cad * cbc
    lambda1 = lambda4 * dcc - cbc**2 * daa - cac**2 * dbb + 2.0 * cab * cac * cbc
    lambda2 = lambda4 * ddd - cbd**2 * daa - cad**2 * dbb + 2.0 * cab * cad * cbd
    # Λ₀ = √(Λ₁Λ₂) exactly when c = d; the clip keeps rounding from leaving arcsin's domain
    ratio = np.clip(lambda0 / np.sqrt(lambda1 * lambda2), -1.0, 1.0)
    return 4.0 / (math.pi**2 * np.sqrt(lambda4)) * np.arcsin(ratio)
