"""The online simulation: PEPITA against AFA for a small F, DFA = FA, F = 0, seeds, divergence."""

import numpy as np
import pytest

from bpfree.theory import draw_networks, integrate, simulate


def _eps(networks, rule, times, **kwargs):
    return simulate(networks, rule, 1.0, times, **kwargs)[0].generalisation_error()


def test_afa_tracks_pepita_for_a_small_feedback():
    """Same networks and data: ε_g of PEPITA and AFA differ by < 1 % while ε_g falls by > 25 %
    (κ = 0.125), and by > 10 % when F is four times larger (κ = 0.5): the gap comes from F."""
    times = np.linspace(0.0, 40.0, 21)
    gaps = {}
    for kappa in (0.125, 0.5):
        networks = draw_networks(500, 2, 2, seed=3, sigma_v=1.0, kappa=kappa)
        afa, pepita = _eps(networks, "afa", times), _eps(networks, "pepita", times)
        gaps[kappa] = np.max(np.abs(pepita - afa) / afa)
        if kappa == 0.125:
            assert afa[-1] < 0.75 * afa[0]
    assert gaps[0.125] < 0.01
    assert gaps[0.5] > 0.1


def test_pepita_without_feedback_trains_only_the_second_layer():
    """F = 0: h^err = h and x_err = x, so ΔW₁ = 0 (the first layer never moves) and v learns."""
    networks = draw_networks(200, 2, 2, seed=0, kappa=0.0)
    run = simulate(networks, "pepita", 1.0, np.array([0.0, 5.0]))[0]
    np.testing.assert_array_equal(run.Q[1], run.Q[0])
    np.testing.assert_array_equal(run.R[1], run.R[0])
    assert np.abs(run.v[1] - run.v[0]).max() > 0.1


def test_dfa_is_fa_with_one_hidden_layer():
    networks = draw_networks(100, 3, 2, seed=0)
    times = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(_eps(networks, "dfa", times), _eps(networks, "fa", times))


def test_seed_reproduces_and_streams_differ():
    networks = draw_networks(100, 2, 2, seed=0)
    times = np.array([0.0, 2.0])
    first = simulate(networks, "bp", 1.0, times, seed=5, streams=2)
    again = simulate(networks, "bp", 1.0, times, seed=5, streams=2)
    np.testing.assert_array_equal(first[0].Q, again[0].Q)
    np.testing.assert_array_equal(first[0].Q[0], first[1].Q[0])  # same initial networks
    assert not np.array_equal(first[0].Q[1], first[1].Q[1])  # different data


def test_a_large_feedback_makes_pepita_diverge_in_simulation_and_ode():
    """κ = 3, η = 1: the modulated input grows W₁F exponentially (rate ≈ η κ² E[g′ e²]): the
    simulated weights explode and the ODE's state stops being finite (then NaN), with no
    floating-point warning on the way."""
    networks = draw_networks(500, 2, 2, seed=0, kappa=3.0)
    times = np.linspace(0.0, 10.0, 3)
    with np.errstate(all="raise"):
        run = simulate(networks, "pepita", 1.0, times)[0]
        ode = integrate(networks.order_parameters(), "pepita", 1.0, times)
    assert run.Q[-1].max() > 1e6 * run.Q[0].max()
    assert np.isnan(ode.Q[-1]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule": "sgd"}, "unknown rule 'sgd'"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"streams": 0}, "streams must be a positive integer"),
        ({"times": np.array([1.0, 0.5])}, "times must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    arguments = {"rule": "bp", "lr": 1.0, "times": np.array([0.0, 1.0]), **kwargs}
    networks = draw_networks(10, 2, 2)
    with pytest.raises(ValueError, match=message):
        simulate(
            networks,
            arguments.pop("rule"),
            arguments.pop("lr"),
            arguments.pop("times"),
            **arguments,
        )
