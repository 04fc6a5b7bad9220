"""Step-time benchmark: ratios to BP, samples per second, medians of bursts, the suites."""

import pytest
import torch

from bpfree.bench import step_time
from bpfree.bench.step_time import WM_MIRROR, median_step_seconds, step_rows, time_setting
from bpfree.bench.suites import SUITES, Setting, get_suite, partition_rules
from bpfree.bench.training_step import build_step, random_batch

CPU = torch.device("cpu")
TINY = Setting("mlp", (12,), 8, (16,))


def test_ratio_is_median_over_bp_median_and_samples_are_batch_over_time():
    medians = {"bp": 0.02, "fa": 0.03, "pepita": 0.019, WM_MIRROR: 0.004}
    rows = {row.rule: row for row in step_rows(medians, batch=64)}
    assert rows["bp"].ratio == 1.0
    for rule, seconds in medians.items():
        assert rows[rule].seconds == seconds
        assert rows[rule].ratio == seconds / medians["bp"]
    assert rows["fa"].samples_per_second == 64 / 0.03
    assert rows[WM_MIRROR].samples_per_second is None  # the mirror phase trains on no batch


def test_step_rows_need_bp():
    with pytest.raises(ValueError, match="bp"):
        step_rows({"fa": 0.01}, batch=8)


def test_step_time_is_the_median_of_the_round_robin_bursts(monkeypatch):
    bursts = iter([1.0, 2.0, 5.0, 9.0, 3.0, 4.0])  # bp, fa, bp, fa, bp, fa
    monkeypatch.setattr(step_time, "seconds_per_call", lambda fn, device, calls: next(bursts))
    assert median_step_seconds(["bp", "fa"], TINY, CPU, rounds=3, steps=1) == {
        "bp": 3.0,
        "fa": 4.0,
    }


def test_time_setting_on_a_tiny_mlp():
    times = time_setting(["fa", "wm", "no-such-rule"], TINY, CPU, rounds=2, steps=2)
    assert [row.rule for row in times.rows] == ["bp", "fa", "wm", WM_MIRROR]
    assert times.missing == ("no-such-rule",)
    bp = times.rows[0]
    assert bp.ratio == 1.0
    for row in times.rows:
        assert row.seconds > 0
        assert row.ratio == row.seconds / bp.seconds
        if row.rule != WM_MIRROR:
            assert row.samples_per_second == TINY.batch / row.seconds


def test_a_rule_that_cannot_train_the_model_is_listed_with_why_not_timed():
    conv = Setting("pepita-conv", (1, 28, 28), 4)
    times = time_setting(["fa", "pepita-wm"], conv, CPU, rounds=1, steps=1)
    assert [row.rule for row in times.rows] == ["bp", "fa"]
    assert list(times.untrainable) == ["pepita-wm"]
    assert "nn.Linear layers only" in times.untrainable["pepita-wm"]


@pytest.mark.parametrize("name", ["rounds", "steps"])
def test_rounds_and_steps_must_be_positive(name):
    counts = {"rounds": 1, "steps": 1, name: 0}
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got 0"):
        median_step_seconds(["bp"], TINY, CPU, **counts)


def test_unknown_suite_is_named_with_the_valid_ones():
    valid = "foundation, feedback, projection, forward-only, language-model, conv"
    with pytest.raises(ValueError, match=rf"'nope'.*{valid}"):
        get_suite("nope")


def test_rules_bpfree_lacks_are_set_apart_and_bp_comes_first():
    assert partition_rules(["pepita", "some-future-rule", "bp"]) == (
        ("bp", "pepita"),
        ("some-future-rule",),
    )


def _small(setting: Setting) -> Setting:
    if setting.model == "mlp":
        return Setting("mlp", (setting.input_shape[0],), 2, (8,) * len(setting.hidden or ()))
    if setting.tokens:
        return Setting(setting.model, (8,), 2, num_classes=20, model_options=LM_SIZES)
    return Setting(setting.model, setting.input_shape, 2)


LM_SIZES = (("d_model", 8), ("n_heads", 2), ("n_layers", 2), ("d_ff", 12))


def test_a_language_model_setting_times_each_rule_with_its_points():
    setting = Setting("transformer-lm", (8,), 4, num_classes=20, model_options=LM_SIZES)
    x, y = random_batch(setting, CPU)
    assert x.shape == y.shape == (4, 8) and not x.is_floating_point() and int(x.max()) < 20
    times = time_setting(["dfa points=macro", "grape points=micro"], setting, CPU, 1, 1)
    assert [row.rule for row in times.rows] == ["bp", "dfa points=macro", "grape points=micro"]
    grape = build_step("grape points=micro", setting, CPU).state.rule
    assert len(grape.points) == 6 and grape.positions == (8,)
    assert "transformer-lm d_model=8" in setting.network and "vocabulary 20" in setting.network
    with pytest.raises(ValueError, match="options are KEY=VALUE, got 'micro'"):
        build_step("dfa micro", setting, CPU)


@pytest.mark.parametrize(
    ("rule", "setting"),
    [(r, _small(s)) for suite in SUITES.values() for s in suite.settings for r in suite.rules],
    ids=lambda value: value.network if isinstance(value, Setting) else value,
)
def test_every_suite_rule_trains_on_its_suite_models(rule, setting):
    run = build_step(rule, setting, CPU, random_batch(setting, CPU))
    before = [p.detach().clone() for p in run.state.optimizer.param_groups[0]["params"]]
    run()
    after = run.state.optimizer.param_groups[0]["params"]
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
