"""Configs: YAML onto a typed dataclass, every bad key or value named."""

import pytest

from bpfree.training import ConfigError, TrainConfig


def test_paper_defaults_are_filled_in():
    config = TrainConfig(rule="drtp", dataset="cifar10").resolved()
    assert (config.lr, config.decay_epochs, config.activation) == (0.001, [60, 90], "tanh")
    config = TrainConfig(rule="pepita", dataset="mnist").resolved()
    assert (config.lr, config.decay_epochs, config.activation) == (0.1, [60], "relu")
    assert (config.batch_size, config.momentum, config.dropout, config.epochs) == (
        64,
        0.9,
        0.1,
        100,
    )


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("rule: fa\nhidden: [256, 256]\nlr: 1\nrule_options: {seed: 3}\n")
    config = TrainConfig.from_yaml(path)
    assert (config.rule, config.hidden, config.lr, config.rule_options) == (
        "fa",
        [256, 256],
        1.0,
        {"seed": 3},
    )
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_unknown_key_is_named_with_the_valid_ones(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("rule: fa\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate' in .*run.yaml.*valid keys"):
        TrainConfig.from_yaml(path)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": "ten"}, "'epochs' .* must be int"),
        ({"hidden": 1024}, "'hidden' .* must be a list"),
        ({"dropout": True}, "'dropout' .* must be float"),
    ],
)
def test_wrong_types_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(values)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"rule": "pepsi"}, "rule"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"dropout": 1.0}, "dropout"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -0.1}, "lr"),
        ({"activation": "gelu"}, "activation"),
    ],
)
def test_values_out_of_range_are_named(values, key):
    with pytest.raises(ConfigError, match=f"unknown {key}|'{key}' must be"):
        TrainConfig(**values).resolved()


@pytest.mark.parametrize("values", [{"optimizer": "adam"}, {"momentum": 0.0}])
def test_nesterov_needs_sgd_with_momentum(values):
    with pytest.raises(ConfigError, match="'nesterov' is a kind of SGD momentum; it needs"):
        TrainConfig(nesterov=True, **values).resolved()


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("rule: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")
