"""Language-model runs on a generated Shakespeare archive: the run folder of a text run, its
perplexities, exact resume for BP, DFA and GrAPE in both settings, and bad settings refused."""

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from bpfree import cli
from bpfree.data.text import load_text_dataset
from bpfree.testing import assert_same
from bpfree.training import ConfigError, TrainConfig, train
from bpfree.training.state import build_model

pytest.importorskip("tokenizers")

SIZES = {"d_model": 8, "n_heads": 2, "n_layers": 2, "d_ff": 12}
DATA = {"tokens": 8, "vocab_size": 300, "train_tokens": 1200}


@pytest.fixture
def text_dir(tmp_path, make_shakespeare):
    make_shakespeare(tmp_path / "data" / "shakespeare")
    return tmp_path / "data"


def lm_config(text_dir, out, **changes) -> TrainConfig:
    values = dict(
        rule="bp",
        dataset="shakespeare",
        data_options=DATA,
        model="transformer-lm",
        model_options=SIZES,
        optimizer="adam",
        lr=3e-3,
        epochs=2,
        batch_size=16,
        data_dir=str(text_dir),
        out=str(out),
    )
    return TrainConfig(**{**values, **changes})


def test_a_text_run_logs_perplexities_and_keeps_its_tokenizer(text_dir, tmp_path):
    result = train(lm_config(text_dir, tmp_path / "run", rule="grape"), progress=False)
    folder = tmp_path / "run"
    assert (folder / "tokenizer.json").is_file() and (folder / "curves.png").is_file()
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        assert {"train_ppl", "val_ppl", "test_ppl", "val_acc", "test_acc"} <= set(row)
        assert row["train_ppl"] == pytest.approx(math.exp(row["train_loss"]))
    assert rows[-1]["val_ppl"] < rows[0]["train_ppl"] < 300  # it learnt from a uniform guess
    # the logged validation perplexity is exp(mean cross-entropy per token) of the saved model
    config = lm_config(text_dir, tmp_path / "run", rule="grape").resolved()
    data = load_text_dataset(
        "shakespeare", text_dir, options=DATA, saved_tokenizer=folder / "tokenizer.json"
    )
    model = build_model(config, data.input_shape, data.num_classes)
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    model.load_state_dict(checkpoint["training"]["model"])
    with torch.no_grad():
        logits = model.eval()(data.valid_x)
    loss = F.cross_entropy(logits.flatten(0, 1), data.valid_y.flatten())
    assert rows[-1]["val_ppl"] == pytest.approx(math.exp(float(loss)), rel=1e-5)
    assert result.metrics == rows


@pytest.mark.parametrize(
    "rule, points",
    [("bp", None), ("dfa", "macro"), ("dfa", "micro"), ("grape", "macro"), ("grape", "micro")],
)
def test_a_resumed_text_run_equals_an_uninterrupted_one(rule, points, text_dir, tmp_path):
    options = {} if points is None else {"points": points}
    whole = lm_config(
        text_dir, tmp_path / "whole", rule=rule, rule_options=options, diagnostics=False
    )
    train(whole, progress=False)
    part = dataclasses.replace(whole, out=str(tmp_path / "part"))
    train(dataclasses.replace(part, epochs=1), progress=False)
    train(part, progress=False)
    saved = [
        torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["training"]
        for name in ("whole", "part")
    ]
    assert_same(saved[0]["model"], saved[1]["model"])
    assert_same(saved[0]["rule"], saved[1]["rule"])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"rule": "pepita"}, "rule pepita does not train a language model.*bp, dfa, grape"),
        ({"model": "mlp", "model_options": {}}, "model mlp reads images, shakespeare is text"),
        ({"val_fraction": 0.1}, "has its own validation split"),
        ({"data_options": {"context": 8}}, "unknown option 'context'"),
        ({"dataset": "mnist"}, "'data_options' are options of text datasets"),
        ({"dataset": "wikitext-5"}, "unknown dataset 'wikitext-5'"),
        ({"standardize": True}, "'standardize' scales image channels; shakespeare is text"),
    ],
)
def test_bad_text_settings_are_refused_before_anything_runs(changes, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        train(lm_config(tmp_path, tmp_path / "run", **changes), progress=False)
    assert not (tmp_path / "run").exists()


def test_the_command_trains_a_language_model_and_prints_its_perplexity(text_dir, tmp_path, capsys):
    status = cli.main(
        [
            "train",
            "--no-progress",
            "--rule=dfa",
            "--dataset=shakespeare",
            "--model=transformer-lm",
            "--option=points=micro",
            *(f"--model-option={k}={v}" for k, v in SIZES.items()),
            "--data-option=tokens=8",
            "--data-option=train_tokens=2000",
            "--data-option=tokenizer=bytes",
            "--optimizer=adam",
            "--lr=0.003",
            "--epochs=1",
            f"--data-dir={text_dir}",
            f"--out={tmp_path / 'run'}",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "val ppl" in out and out.strip().splitlines()[-1].startswith("test perplexity: ")
    assert TrainConfig().default_out().name == "mnist-pepita-1024-seed0"
    named = lm_config(text_dir, None, rule="dfa", rule_options={"points": "micro"})
    assert named.default_out().name == "shakespeare-dfa-micro-lm2x8-seed0"
