"""The closed-form Gaussian averages of g(u) = erf(u/√2) against Monte Carlo estimates."""

import math

import numpy as np
import pytest
import torch

from bpfree.theory import activation, activation_derivative, i2, i3, i4, j3

SAMPLES = 2**24  # MC std of each average ≲ 0.5/√N ≈ 1.2e-4: 1e-3 is > 8 std
K = 2  # averages with g′ are taken over the first K fields


@pytest.fixture(scope="module")
def case():
    """A random covariance of n = 5 fields with O(1) entries, and MC averages from its samples."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, generator=generator, dtype=torch.float64) / math.sqrt(10)
    cov = a @ a.T + 0.3 * torch.eye(5, dtype=torch.float64)
    chol = torch.linalg.cholesky(cov).float()
    sums = {"i2": 0.0, "i3": [0.0] * K, "i4": [[0.0] * K for _ in range(K)], "j3": [0.0] * K}
    for _ in range(SAMPLES // 2**21):
        # float32 samples and products (twice as fast); the averages accumulate in float64
        u = torch.randn(2**21, 5, generator=generator) @ chol.T
        g = torch.special.erf(u / math.sqrt(2))
        gp = math.sqrt(2 / math.pi) * torch.exp(-0.5 * u * u)
        sums["i2"] += (g.T @ g).double()
        for a in range(K):
            gp_a_g = gp[:, a, None] * g
            sums["j3"][a] += (gp_a_g.T @ g).double()
            sums["i3"][a] += ((gp[:, a, None] * u).T @ g).double()
            for b in range(K):
                sums["i4"][a][b] += ((gp[:, b, None] * gp_a_g).T @ g).double()
    averages = {
        "i2": sums["i2"],
        "i3": torch.stack(sums["i3"]),
        "i4": torch.stack([torch.stack(row) for row in sums["i4"]]),
        "j3": torch.stack(sums["j3"]),
    }
    return cov.numpy(), {name: (total / SAMPLES).numpy() for name, total in averages.items()}


@pytest.mark.parametrize(
    ("name", "closed_form"),
    [
        ("i2", lambda c: i2(c)),
        ("i3", lambda c: i3(c, K)),
        ("i4", lambda c: i4(c, K)),
        ("j3", lambda c: j3(c, K)),
    ],
)
def test_closed_form_matches_monte_carlo(case, name, closed_form):
    cov, monte_carlo = case
    value = closed_form(cov)
    assert value.shape == monte_carlo[name].shape
    np.testing.assert_allclose(value, monte_carlo[name], atol=1e-3, rtol=0)


def test_monte_carlo_tolerance_would_catch_the_erf_scaling():
    """The test above can fail: I₂ for g = erf(u) instead of erf(u/√2) is off by ≫ 1e-3."""
    cov = np.array([[1.0, 0.5], [0.5, 1.0]])
    erf_unscaled = (2 / math.pi) * np.arcsin(
        2 * cov / np.sqrt(np.outer(1 + 2 * np.diag(cov), 1 + 2 * np.diag(cov)))
    )
    assert np.abs(erf_unscaled - i2(cov)).max() > 1e-2


def test_activation_and_its_derivative():
    u = np.linspace(-4, 4, 81)
    expected = torch.special.erf(torch.from_numpy(u) / math.sqrt(2)).numpy()
    np.testing.assert_allclose(activation(u), expected, rtol=0, atol=1e-15)
    step = 1e-5
    numeric = (activation(u + step) - activation(u - step)) / (2 * step)
    np.testing.assert_allclose(activation_derivative(u), numeric, rtol=0, atol=1e-9)


def test_i4_is_finite_on_repeated_fields():
    """c = d makes Λ₀ = √(Λ₁Λ₂) exactly; rounding must not take arcsin out of its domain."""
    cov = np.full((3, 3), 0.7) + 0.3 * np.eye(3)
    assert np.isfinite(i4(cov, 2)).all()
