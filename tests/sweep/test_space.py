"""The search space: a parameter conditional on the rule is suggested only for its rules, the
rule first; settings land on config keys and on rule and model options; the final runs take
``final``'s epochs, split and schedule over the trials'."""

import pytest

from bpfree.sweep import load_spec
from bpfree.sweep.spec import shipped_specs

optuna = pytest.importorskip("optuna")

SPACE = {
    "rule": {"type": "categorical", "choices": ["pepita", "fa"]},
    "rule_options.f_scale": {"type": "float", "low": 0.01, "high": 0.1, "rules": ["pepita"]},
    "batch_size": {"type": "int", "low": 8, "high": 32, "step": 8},
}


@pytest.mark.parametrize(
    ("rule", "searched"),
    [("pepita", {"rule", "rule_options.f_scale", "batch_size"}),
     ("fa", {"rule", "batch_size"})],
)  # fmt: skip
def test_a_parameter_for_some_rules_is_searched_for_those_only(write_spec, rule, searched):
    spec = load_spec(write_spec(space=SPACE))
    given = {"rule": rule, "rule_options.f_scale": 0.05, "batch_size": 16}
    params = spec.suggest(optuna.trial.FixedTrial(given))
    assert set(params) == searched
    config = spec.config_for(params)
    assert config.rule == rule and config.batch_size == 16
    assert config.rule_options == ({"f_scale": 0.05} if rule == "pepita" else {})


def test_an_int_parameter_keeps_its_step(write_spec):
    spec = load_spec(write_spec(space={"batch_size": SPACE["batch_size"]}))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        value = spec.suggest(study.ask())["batch_size"]
        assert value in (8, 16, 24, 32)


def test_the_final_runs_take_their_own_schedule_and_the_trials_keep_the_base(write_spec):
    final = {"seeds": [0, 1], "epochs": 10, "decay_epochs": [6, 9]}
    spec = load_spec(write_spec(final=final))
    params = {"lr": 0.01, "momentum": 0.9, "rule_options.f_scale": 0.05}
    trial = spec.config_for(params).resolved()
    assert (trial.epochs, trial.decay_epochs, trial.val_fraction) == (3, [2], 0.25)
    run = spec.final_config(params, seed=1).resolved()
    assert (run.epochs, run.decay_epochs, run.val_fraction, run.seed) == (10, [6, 9], 0.0, 1)
    assert (run.lr, run.momentum, run.rule_options) == (0.01, 0.9, {"f_scale": 0.05})
    unscheduled = load_spec(write_spec(final={"seeds": [0], "epochs": 10}))
    assert unscheduled.final_config(params, seed=0).resolved().decay_epochs == [2]


@pytest.mark.parametrize("name", shipped_specs())
def test_every_shipped_spec_loads_and_its_final_runs_build(name):
    spec = load_spec(name)  # checks every range at both ends, and the final runs' config
    assert spec.name == name and spec.base["val_fraction"] > 0
    final = spec.final_config({}, seed=0).resolved()
    assert final.epochs == spec.final_epochs and final.val_fraction == spec.final.val_fraction
