"""The training loop end to end on tiny generated MNIST files: run folder, resume, failures."""

import json

import pytest
import torch
import yaml

from bpfree.data import load_dataset
from bpfree.rules import StepResult, get_rule
from bpfree.rules.bp import BP
from bpfree.training import (
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    paper_defaults,
    train,
    trainer,
)
from bpfree.training.state import build_model, build_rule

METRIC_KEYS = {"epoch", "train_loss", "train_acc", "test_acc", "seconds", "lr"}


@pytest.fixture
def data_dir(tmp_path, make_mnist):
    make_mnist(tmp_path / "data" / "mnist", gzipped=True, n_train=40, n_test=10)
    return tmp_path / "data"


def tiny_config(data_dir, out, **changes):
    values = dict(
        rule="bp",
        dataset="mnist",
        hidden=[8],
        epochs=2,
        batch_size=16,
        data_dir=str(data_dir),
        out=str(out),
        decay_epochs=[1],
    )
    values.update(changes)
    return TrainConfig(**values)


RUN_RULES = ["bp", "fa", "dfa", "drtp", "pepita", "pepita-hebbian", "pepita-time-local"]
RUN_RULES += ["pepita-wm", "afa", "ff", "ff-topdown"]


@pytest.mark.parametrize("rule", RUN_RULES)
def test_a_run_writes_its_folder(rule, data_dir, tmp_path):
    result = train(tiny_config(data_dir, tmp_path / "run", rule=rule), progress=False)
    folder = tmp_path / "run"
    assert {p.name for p in folder.iterdir()} == {
        "config.yaml",
        "metrics.jsonl",
        "checkpoint.pt",
        "checkpoint.prev.pt",
        "curves.png",
        "alignment.png",
        ".lock",
    }
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    diagnostics = {"update_cosine", "weights"}
    diagnostics |= {"alignment"} if hasattr(get_rule(rule), "alignment") else set()
    assert all(set(r) == METRIC_KEYS | diagnostics for r in rows)
    first, last = rows[0]["weights"], rows[-1]["weights"]
    assert set(first) == {"blocks.0.0.weight", "head.weight"}
    assert all({"normal", "student_t", "better"} <= set(w["fit"]) for w in last.values())
    assert rows[-1]["update_cosine"].keys() == {"blocks.0.0.weight", "head.weight"}
    first_lr = paper_defaults.default_learning_rate("mnist", rule)
    assert [row["lr"] for row in rows] == pytest.approx([first_lr, first_lr / 10])
    assert result.test_acc == rows[-1]["test_acc"]
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert saved["rule"] == rule and saved["lr"] is not None and saved["activation"] is not None
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["metrics"] == rows
    assert set(checkpoint["training"]) == {"model", "rule", "optimizer", "scheduler", "random"}


def test_a_resumed_run_equals_an_uninterrupted_one(data_dir, tmp_path):
    whole = train(
        tiny_config(data_dir, tmp_path / "whole", rule="pepita", epochs=3), progress=False
    )
    train(tiny_config(data_dir, tmp_path / "parts", rule="pepita", epochs=1), progress=False)
    resumed = train(
        tiny_config(data_dir, tmp_path / "parts", rule="pepita", epochs=3), progress=False
    )
    drop_time = [{k: v for k, v in row.items() if k != "seconds"} for row in whole.metrics]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.metrics] == drop_time
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["training"]["model"]
    b = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)["training"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resuming_with_other_settings_names_them(data_dir, tmp_path):
    train(tiny_config(data_dir, tmp_path / "run", epochs=1), progress=False)
    with pytest.raises(ConfigError, match=r"different settings \(lr, seed\)"):
        train(tiny_config(data_dir, tmp_path / "run", lr=0.5, seed=3), progress=False)


def test_a_non_finite_loss_stops_and_keeps_the_last_checkpoint(data_dir, tmp_path, monkeypatch):
    config = tiny_config(data_dir, tmp_path / "run", epochs=3)
    train(dataclass_replace(config, epochs=1), progress=False)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    real_step, calls = BP.step, []

    def step(self, x, y, **options):
        calls.append(1)
        result = real_step(self, x, y, **options)
        return StepResult(torch.tensor(float("nan")), result.output) if len(calls) == 2 else result

    monkeypatch.setattr(BP, "step", step)
    monkeypatch.setattr(trainer, "READ_EVERY", 1)  # the loss read at every step: the exact step
    with pytest.raises(
        TrainingDiverged, match=r"loss became non-finite at epoch 2, step 2.*checkpoint of epoch 1"
    ):
        train(config, progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
    assert not list((tmp_path / "run").glob(".*tmp"))


def test_an_interrupt_loses_nothing(data_dir, tmp_path, monkeypatch):
    config = tiny_config(data_dir, tmp_path / "run", epochs=3)
    train(dataclass_replace(config, epochs=1), progress=False)
    kept = ("checkpoint.pt", "metrics.jsonl", "curves.png")
    files = {name: (tmp_path / "run" / name).read_bytes() for name in kept}

    def interrupted(self, x, y, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(BP, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    assert {name: (tmp_path / "run" / name).read_bytes() for name in kept} == files
    assert not list((tmp_path / "run").glob(".*tmp"))


def dataclass_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def test_diagnostics_do_not_change_the_run(data_dir, tmp_path):
    runs = [
        train(tiny_config(data_dir, tmp_path / str(d), rule="brsf", diagnostics=d), progress=False)
        for d in (True, False)
    ]
    weights = [
        torch.load(r.folder / "checkpoint.pt", weights_only=True)["training"]["model"] for r in runs
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert "alignment" in runs[0].metrics[-1] and "alignment" not in runs[1].metrics[-1]


def test_plastic_feedback_learns_with_the_optimizer(data_dir, tmp_path):
    """KP in the trainer: W − Bᵀ decays by (1 − ηλ) per step, exactly, whatever the gradients."""
    settings = dict(rule="kp", lr=0.2, weight_decay=0.5, momentum=0.0, decay_epochs=[9])
    config = tiny_config(data_dir, tmp_path / "run", **settings).resolved()
    data = load_dataset("mnist", data_dir)
    shape, classes = data.input_shape, data.num_classes
    w0 = build_model(config, shape, classes).head.weight.detach()
    b0 = build_rule(config, build_model(config, shape, classes), shape).B[1].detach()
    train(config, progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["training"]
    steps = 2 * 3  # 2 epochs of 40 samples in batches of 16
    expected = (1 - config.lr * 0.5) ** steps * (w0 - b0.T)
    torch.testing.assert_close(state["model"]["head.weight"] - state["rule"]["B.1"].T, expected)


def test_warmup_weight_decay_acts_in_the_first_epoch_only(data_dir, tmp_path, monkeypatch):
    seen = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["weight_decay"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    config = tiny_config(data_dir, tmp_path / "r", weight_decay=1e-4, warmup_weight_decay=0.03)
    train(config, progress=False)
    assert set(seen[:3]) == {0.03} and set(seen[3:]) == {1e-4}


def test_a_named_model_trains_with_a_feedback_rule(data_dir, tmp_path):
    config = tiny_config(data_dir, tmp_path / "run", rule="pfa", model="lenet", epochs=1)
    rows = train(config, progress=False).metrics
    assert rows[0]["alignment"].keys() == {"blocks.1.0", "blocks.2.1", "blocks.3.0", "head"}


def test_bad_model_and_rule_options_are_named(data_dir, tmp_path):
    config = tiny_config(data_dir, tmp_path / "r", model="lenet", model_options={"stem": "x"})
    with pytest.raises(ConfigError, match=r"model_options.*stem"):
        train(config, progress=False)
    config = tiny_config(data_dir, tmp_path / "r", rule="pfa", rule_options={"expansion": 0.5})
    with pytest.raises(ConfigError, match=r"rule_options.*expansion must be a number at least 1"):
        train(config, progress=False)
    config = tiny_config(
        data_dir, tmp_path / "r", rule="pepita", model_options={"input_dropout": 0.1}
    )
    with pytest.raises(ConfigError, match=r"'pepita' on model 'mlp'.*MLP with input_dropout"):
        train(config, progress=False)


@pytest.mark.parametrize("rule", ["dfa", "grape"])
def test_projection_rules_train_a_conv_net(rule, data_dir, tmp_path):
    config = tiny_config(data_dir, tmp_path / "run", rule=rule, model="lenet", epochs=1)
    rows = train(config, progress=False).metrics
    assert rows[0]["update_cosine"].keys() >= {"blocks.0.0.weight", "head.weight"}


def test_a_compiled_run_of_a_rule_that_cannot_be_captured_trains_as_the_eager_run(
    data_dir, tmp_path, caplog
):
    """--compile reaches the step: PFA says why it stays eager and trains what it would."""
    eager = train(tiny_config(data_dir, tmp_path / "eager", rule="pfa"), progress=False)
    with caplog.at_level("WARNING", logger="bpfree.rules.compiled"):
        compiled = train(
            tiny_config(data_dir, tmp_path / "compiled", rule="pfa", compile=True),
            progress=False,
        )
    assert "pfa's step runs eagerly, not compiled: it writes R's gradient" in caplog.text
    assert [row["train_loss"] for row in compiled.metrics] == [
        row["train_loss"] for row in eager.metrics
    ]


@pytest.mark.parametrize("rule", ["pepita", "grape"])
def test_a_compiled_run_resumed_equals_the_uninterrupted_compiled_run(rule, data_dir, tmp_path):
    """Each epoch's first step is eager in both, and each batch shape its own graph; GrAPE's
    graph advances its stream of perturbations, a buffer of the checkpoint."""
    config = tiny_config(data_dir, tmp_path / "whole", rule=rule, compile=True, epochs=2)
    train(config, progress=False)
    parts = tiny_config(data_dir, tmp_path / "parts", rule=rule, compile=True, epochs=1)
    train(parts, progress=False)
    train(dataclass_replace(parts, epochs=2), progress=False)
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["training"]
    resumed = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)["training"]
    for part in ("model", "rule"):
        for name, value in whole[part].items():
            assert torch.equal(resumed[part][name], value), name


def test_frenkels_conventions_reach_the_run(data_dir, tmp_path):
    """DRTP as Frenkel et al.'s code trains it: biases, PyTorch's initialisation, dropped
    pixels, standardized inputs and Nesterov momentum, each where the run uses it."""
    model_options = {"init": "torch-default", "input_dropout": 0.1}
    settings = dict(bias=True, standardize=True, nesterov=True, model_options=model_options)
    config = tiny_config(data_dir, tmp_path / "run", rule="drtp", **settings).resolved()
    data = trainer.load_data(config, torch.device("cpu"), None, None)
    pixels = data.train_x.double()
    torch.testing.assert_close(pixels.mean(), torch.tensor(0.0, dtype=torch.float64))
    torch.testing.assert_close(pixels.std(correction=0), torch.tensor(1.0, dtype=torch.float64))
    model = build_model(config, data.input_shape, data.num_classes)
    assert model.input_dropout.p == 0.1
    train(config, progress=False)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["training"]
    assert saved["optimizer"]["param_groups"][0]["nesterov"] is True
    assert saved["model"]["blocks.0.0.bias"].abs().max() > 0
