"""The plateau fit (ICML eq. 7-8) recovers its parameters, and its protocol fits only the epochs
before the first learning-rate decay."""

import numpy as np
import pytest

from bpfree.reproduce import plateau_fit, slowness_protocol


@pytest.mark.parametrize(("max_accuracy", "slowness"), [(98.6, 0.026), (55.3, 0.659), (24.9, 4.24)])
def test_fit_recovers_a_plateau_curve_within_one_percent(max_accuracy, slowness):
    epochs = np.arange(0, 61)
    noise = np.random.default_rng(0).normal(0.0, 0.05, epochs.shape)
    accuracy = max_accuracy * epochs / (slowness + epochs) + noise * (epochs > 0)
    fit = plateau_fit(epochs, accuracy)
    assert fit.max_accuracy == pytest.approx(max_accuracy, rel=0.01)
    assert fit.slowness == pytest.approx(slowness, rel=0.01)
    assert fit.rmse < 0.1


def test_protocol_ignores_the_jump_after_the_first_decay_and_adds_chance_at_epoch_0():
    epochs = np.arange(1, 101)
    curve = 50.0 * epochs / (0.7 + epochs)
    curve[60:] += 4.0  # the decay at epoch 60 lifts every later epoch
    fit = slowness_protocol(curve.tolist(), first_decay=60, num_classes=10)
    assert fit.slowness == pytest.approx(0.7, rel=1e-4)
    assert fit.max_accuracy == pytest.approx(50.0, rel=1e-4)
    assert fit.epochs_fitted == 60
    assert fit.rmse == pytest.approx(np.sqrt(10.0**2 / 61), rel=1e-3)  # only the chance point

    unprotected = slowness_protocol(curve.tolist(), first_decay=None, num_classes=10)
    assert unprotected.max_accuracy > 51.0


@pytest.mark.parametrize(
    ("epochs", "accuracy"),
    [([0, 1], [10.0, 50.0]), ([1, 2, 3], [1.0, 2.0]), ([1, 2], [1.0, float("nan")])],
)
def test_bad_curves_are_errors(epochs, accuracy):
    with pytest.raises(ValueError, match="plateau_fit needs"):
        plateau_fit(epochs, accuracy)
