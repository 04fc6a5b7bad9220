"""Weight norms and the Normal / Student-t fits of PEPITA's App. H, checked against torch."""

import json
import math

import pytest
import torch
from torch import nn

from bpfree.diagnostics import distribution_fit, weight_diagnostics, weight_norms
from bpfree.diagnostics.weights import _digamma

N = 200_000


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)
    )


def _student_t(df: float, loc: float, scale: float, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.distributions.StudentT(df, loc, scale).sample((N,)).double()


def _normal(mean: float, std: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(N, generator=generator, dtype=torch.float64)


def _t_loglik(x: torch.Tensor, loc: float, scale: float, df: float) -> float:
    df_, loc_, scale_ = torch.tensor([df, loc, scale], dtype=torch.float64)
    return float(torch.distributions.StudentT(df_, loc_, scale_).log_prob(x).mean())


def test_norms_are_the_frobenius_norms_of_the_weight_matrices_and_kernels() -> None:
    model = _model()
    norms = weight_norms(model)
    assert list(norms) == ["0.weight", "3.weight"]  # BatchNorm's 1-D weight and biases left out
    for name, value in norms.items():
        weight = dict(model.named_parameters())[name]
        assert value == pytest.approx(float(torch.linalg.norm(weight.detach().double().flatten())))
    assert {name: row["norm"] for name, row in weight_diagnostics(model).items()} == norms


def test_normal_fit_recovers_mean_and_std_and_reports_the_normal_log_likelihood() -> None:
    x = _normal(0.3, 0.02, seed=1)
    normal = distribution_fit(x, max_samples=None)["normal"]
    assert normal["mean"] == pytest.approx(0.3, rel=0.01)
    assert normal["std"] == pytest.approx(0.02, rel=0.01)
    mean, std = torch.tensor([normal["mean"], normal["std"]], dtype=torch.float64)
    direct = torch.distributions.Normal(mean, std).log_prob(x).mean()
    assert normal["loglik"] == pytest.approx(float(direct), abs=1e-9)


@pytest.mark.parametrize("df", [3.0, 8.0])
def test_t_fit_recovers_loc_scale_and_df(df: float) -> None:
    x = _student_t(df, loc=0.1, scale=0.05, seed=2)
    t = distribution_fit(x, max_samples=None)["student_t"]
    assert t["converged"]
    assert t["df"] == pytest.approx(df, rel=0.10)
    assert t["scale"] == pytest.approx(0.05, rel=0.03)
    assert t["loc"] == pytest.approx(0.1, abs=0.01 * 0.05)
    assert t["loglik"] == pytest.approx(_t_loglik(x, t["loc"], t["scale"], t["df"]), abs=1e-9)


def test_t_fit_is_a_maximum_of_the_likelihood() -> None:
    """Nudging any of loc, scale, df away from the fit lowers torch's t log-likelihood."""
    x = _student_t(4.0, loc=0.0, scale=1.0, seed=3)
    t = distribution_fit(x, max_samples=None)["student_t"]
    best = _t_loglik(x, t["loc"], t["scale"], t["df"])
    for factor in (0.98, 1.02):
        assert _t_loglik(x, t["loc"] + (factor - 1.0) * t["scale"], t["scale"], t["df"]) < best
        assert _t_loglik(x, t["loc"], t["scale"] * factor, t["df"]) < best
        assert _t_loglik(x, t["loc"], t["scale"], t["df"] * factor) < best


def test_normal_wins_on_gaussian_weights_and_t_wins_on_t3_weights() -> None:
    gaussian = distribution_fit(_normal(0.0, 0.02, seed=4))
    assert gaussian["better"] == "normal"
    assert gaussian["student_t"]["df"] > 100.0
    assert abs(gaussian["loglik_difference"]) < 1e-4
    heavy = distribution_fit(_student_t(3.0, loc=0.0, scale=0.02, seed=5))
    assert heavy["better"] == "student_t"
    assert heavy["loglik_difference"] > 0.1
    assert heavy["student_t"]["aic"] < heavy["normal"]["aic"] - 1000.0


@pytest.mark.parametrize("name", ["normal", "t3", "t30", "laplace", "scale_mixture"])
def test_t_log_likelihood_is_never_below_the_normals_beyond_noise(name: str) -> None:
    torch.manual_seed(6)
    samples = {
        "normal": lambda: torch.randn(N),
        "t3": lambda: torch.distributions.StudentT(3.0).sample((N,)),
        "t30": lambda: torch.distributions.StudentT(30.0).sample((N,)),
        "laplace": lambda: torch.distributions.Laplace(0.0, 1.0).sample((N,)),
        "scale_mixture": lambda: torch.randn(N) * torch.where(torch.rand(N) < 0.1, 5.0, 1.0),
    }
    fit = distribution_fit(samples[name]())
    assert fit["loglik_difference"] > -1e-5


@pytest.mark.parametrize("name", ["uniform", "two_bumps"])
def test_on_lighter_tailed_weights_the_df_bound_costs_at_most_the_documented_gap(name: str) -> None:
    """Kurtosis κ < 3: the t stops at df_max, below the Normal by ≈ (3 − κ)/(4·df_max)."""
    generator = torch.Generator().manual_seed(7)
    x = torch.rand(N, generator=generator, dtype=torch.float64)
    if name == "two_bumps":  # ½ N(−0.5, 1) + ½ N(0.5, 1), κ ≈ 2.92
        x = torch.randn(N, generator=generator, dtype=torch.float64) + (x < 0.5) - 0.5
    fit = distribution_fit(x, max_samples=None)
    kurtosis = float(((x - x.mean()) / x.std(correction=0)).pow(4).mean())
    assert fit["student_t"]["df"] == 1000.0
    assert fit["better"] == "normal"
    assert fit["loglik_difference"] == pytest.approx(-(3.0 - kurtosis) / 4000.0, rel=0.1, abs=1e-6)


def test_subsample_is_seeded_and_capped() -> None:
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(8))
    assert distribution_fit(x, max_samples=500, seed=1) == distribution_fit(
        x, max_samples=500, seed=1
    )
    assert distribution_fit(x, max_samples=500, seed=1)["n"] == 500
    assert distribution_fit(x, max_samples=None)["n"] == 10_000
    assert distribution_fit(x.reshape(100, 100), max_samples=None)["n"] == 10_000


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        (torch.tensor([]), {}, "empty"),
        (torch.tensor([0.1, float("nan"), 0.3, 0.4]), {}, "1 non-finite"),
        (torch.tensor([0.1, float("inf"), -float("inf")]), {}, "2 non-finite"),
        (torch.tensor([0.1, 0.2]), {}, "at least 3"),
        (torch.full((10,), 0.5), {}, "all equal"),
        (torch.randn(10, dtype=torch.complex64), {}, "real"),
        (torch.randn(10), {"max_samples": 2}, "max_samples"),
        (torch.randn(10), {"df_bounds": (10.0, 1.0)}, "df_bounds"),
        (torch.randn(10), {"df_bounds": (0.0, 10.0)}, "df_bounds"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(
    values: torch.Tensor, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        distribution_fit(values, **kwargs)


def test_weight_diagnostics_row_is_json_serialisable() -> None:
    row = weight_diagnostics(_model(), fit=True)
    assert set(row) == {"0.weight", "3.weight"}
    assert set(row["3.weight"]["fit"]) == {
        "n",
        "normal",
        "student_t",
        "loglik_difference",
        "better",
    }
    assert json.loads(json.dumps(row, allow_nan=False)) == row
    assert "fit" not in weight_diagnostics(_model())["0.weight"]


def test_digamma_matches_torch() -> None:
    points = torch.cat([torch.linspace(0.05, 12.0, 400), torch.linspace(12.0, 600.0, 200)])
    ours = torch.tensor([_digamma(float(p)) for p in points.double()], dtype=torch.float64)
    torch.testing.assert_close(ours, torch.special.digamma(points.double()), rtol=0, atol=1e-10)
    assert math.isclose(_digamma(1.0), -0.5772156649015329, abs_tol=1e-12)
