"""Order parameters and what is read off them: ε_g, the alignment angles."""

import math

import numpy as np
import pytest

from bpfree.theory import activation, angle, degenerate_angle, draw_networks


def test_generalisation_error_matches_a_test_set_estimate():
    """ε_g = ½ ωᵀ I₂(C) ω against ½ mean (ŷ − y)² over 200 000 fresh inputs (± 4 std)."""
    networks = draw_networks(100, 3, 2, seed=0, sigma_v=1.0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200_000, 100))
    y_hat = activation(x @ networks.student_w.T / 10.0) @ networks.student_v
    y = activation(x @ networks.teacher_w.T / 10.0) @ networks.teacher_v
    half_squares = 0.5 * (y_hat - y) ** 2
    standard_error = half_squares.std() / math.sqrt(len(x))
    exact = networks.order_parameters().generalisation_error()
    assert exact == pytest.approx(half_squares.mean(), abs=4 * standard_error)


def test_order_parameters_of_the_draw():
    """T ≈ I (w̃ ~ N(0, 1)), P ≈ κ², S and S̃ are O(κ/√D)."""
    state = draw_networks(4000, 2, 3, seed=0, kappa=2.0).order_parameters()
    np.testing.assert_allclose(state.T, np.eye(3), atol=0.1)
    assert abs(state.P - 4.0) < 0.4
    assert np.abs(state.S_teacher).max() < 5 * 2.0 / math.sqrt(4000)
    assert state.covariance().shape == (6, 6)
    np.testing.assert_allclose(state.covariance(), state.covariance().T)


def test_degenerate_angle_is_zero_at_every_equivalent_teacher():
    v_teacher = np.array([1.0, 2.0])
    for v in ([1.0, 2.0], [-1.0, 2.0], [2.0, -1.0], [-2.0, -1.0]):
        assert degenerate_angle(np.array(v), v_teacher) == pytest.approx(0.0, abs=1e-5)
    assert degenerate_angle(np.array([1.0, 0.0]), v_teacher) == pytest.approx(
        angle(np.array([1.0, 0.0]), np.array([2.0, 1.0]))
    )
    assert math.isnan(degenerate_angle(np.ones(3), v_teacher))


def test_angle():
    assert angle(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(90.0)
    assert angle(np.array([1.0, 1.0]), np.array([-2.0, -2.0])) == pytest.approx(180.0)
    assert math.isnan(angle(np.zeros(2), np.ones(2)))
    assert math.isnan(angle(np.array([np.nan, 1.0]), np.ones(2)))
