"""Data-parallel training on real ``torch.distributed`` replicas (gloo on 127.0.0.1): two
replicas step as one process on the whole batch, for every rule, and hold the same state."""

import dataclasses
import importlib
import sys
from pathlib import Path

import pytest
import torch

from bpfree.rules import RULES
from bpfree.training import TrainConfig, train
from bpfree.training.trainer import computing_threads

sys.path.insert(0, str(Path(__file__).parent))  # helpers the forkserver imports by name
cases = importlib.import_module("cases")
run_replicas = importlib.import_module("replicas").run_replicas

CONV_RULES = ["bp", "fa", "usf", "frsf", "brsf", "kp", "wm", "pfa", "pfa-o", "dfa", "drtp"]
CONV_RULES += ["grape", "fg-activity", "fg-weight", "pepita", "pepita-hebbian"]
VARIANTS = [
    ("drtp", {"scaling": "mean"}),
    ("grape", {"perturbations": 2}),
    ("wm", {"pre_mirror_steps": 2}),
    ("pepita-wm", {"pre_mirror_steps": 2}),
]


def all_cases():
    found = [(rule, "mlp", {}, opt) for rule in sorted(RULES) for opt in cases.OPTIMIZERS]
    found += [(rule, "pepita-conv", {}, "sgd") for rule in CONV_RULES]
    found += [("pepita", "pepita-conv", {"conv_average": "reference-code"}, "sgd")]
    found += [(rule, "mlp", options, "sgd") for rule, options in VARIANTS]
    return found


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor) and a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], rtol=1e-10, atol=1e-10, msg=key)
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("batch", [64, 63], ids=["even split", "uneven split"])
def test_two_replicas_train_as_one_process_on_the_whole_batch(batch):
    """5 steps of a global batch on 2 replicas against 1 process, float64, to 1e-10: every rule
    with its defaults and the options with extra state, SGD with momentum and Adam, an MLP and
    the conv net; 63 rows split 32 + 31 check the weighting of uneven shares."""
    chosen = all_cases() if batch == 64 else [c for c in all_cases() if c[3] == "sgd"][:12]
    with computing_threads(1):  # as the replicas: PFA-o's QR differs with the thread count
        alone = cases.train_cases(None, chosen, batch)
    first, second = run_replicas(cases.train_cases, 2, chosen, batch)
    for case in chosen:
        key = repr(case)
        for part in (0, 1):  # the model's state, the rule's state
            assert_close(alone[key][part], first[key][part])
            assert_close(first[key][part], second[key][part])  # identical on both replicas


def test_two_compiled_replicas_train_as_one_eager_process():
    """Rules that draw from their streams per sample (their replica's rows of the whole
    batch's draw) and GrAPE, which sums Ḡ over the replicas inside its step, compiled on 2
    replicas: the state of one eager process, float64, to 1e-10."""
    chosen = [(rule, "mlp", {}, "sgd") for rule in ("grape", "fg-activity", "ff")]
    alone = cases.train_cases(None, chosen, 64)
    first, second = run_replicas(cases.train_cases, 2, chosen, 64, True)
    for case in chosen:
        for part in (0, 1):
            assert_close(alone[repr(case)][part], first[repr(case)][part])
            assert_close(first[repr(case)][part], second[repr(case)][part])


def test_ff_hybrid_negatives_pair_within_a_replica_but_keep_the_replicas_identical():
    """Hybrid negatives mix two images of the batch, which on a replica means two of its own
    rows: not the one-process step, but every replica holds the same state."""
    chosen = [("ff", "mlp", {"negatives": "hybrid"}, "sgd")]
    with computing_threads(1):
        alone = cases.train_cases(None, chosen, 64)[repr(chosen[0])]
    first, second = run_replicas(cases.train_cases, 2, chosen, 64)
    first, second = first[repr(chosen[0])], second[repr(chosen[0])]
    assert_close(first[0], second[0])
    assert_close(first[1], second[1])
    assert not torch.allclose(first[0]["blocks.0.0.weight"], alone[0]["blocks.0.0.weight"])


def test_a_forward_only_rule_calls_no_backward_under_data_parallelism():
    rules = ["pepita", "pepita-hebbian", "pepita-time-local", "pepita-wm", "afa", "ff"]
    assert run_replicas(cases.step_without_backward, 2, rules) == [True, True]


def test_rank_0_alone_writes_the_run_folder(tmp_path, data_dir):
    config = TrainConfig(
        rule="pepita",
        hidden=[8],
        epochs=2,
        batch_size=16,
        decay_epochs=[1],
        data_dir=str(data_dir),
        out=str(tmp_path / "run"),
        threads=1,
    )
    first, second = run_replicas(cases.train_with_writes_only_on_rank_0, 2, config)
    shared = ("epoch", "train_loss", "train_acc", "test_acc", "lr")  # reduced over the replicas
    assert [{k: row[k] for k in shared} for row in first] == [
        {k: row[k] for k in shared} for row in second
    ]
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and len(saved["replica_random"]) == 2


def test_the_parallel_benchmark_times_every_rule_alone_and_replicated():
    tables, elsewhere = run_replicas(cases.parallel_bench_tables, 2)
    assert elsewhere == []  # rank 0 alone reports
    mlp, conv = tables
    header = "| rule | 1 process | 2 replicas | speed-up | communication / step | bound | "
    assert header + "overlapped |" in mlp
    assert all(f"| {rule} | " in mlp for rule in ("bp", "pepita", "ff"))
    assert "| pepita | " in conv and "| ff | " not in conv  # FF walks no convolutions


def test_sync_batchnorm_converts_every_batchnorm_of_the_model():
    import dataclasses

    from bpfree.training.state import build_model

    config = dataclasses.replace(TrainConfig(model="resnet20").resolved(), sync_batchnorm=True)
    model = build_model(config, (3, 8, 8), 10)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)


@pytest.mark.parametrize("rule, points", [("dfa", "micro"), ("grape", "macro")])
def test_two_replicas_train_a_language_model_as_one_process(
    rule, points, tmp_path, make_shakespeare
):
    """A text run on 2 replicas: rank 0 alone trains the BPE, saves it and sends it to rank 1,
    and without dropout the weights are those of one process on the whole batch (float32: to
    rounding)."""
    pytest.importorskip("tokenizers")
    make_shakespeare(tmp_path / "data" / "shakespeare")
    config = TrainConfig(
        rule=rule,
        rule_options={"points": points},
        dataset="shakespeare",
        data_options={"tokens": 8, "vocab_size": 300, "train_tokens": 1200},
        model="transformer-lm",
        model_options={"d_model": 8, "n_heads": 2, "n_layers": 2, "d_ff": 12, "dropout": 0.0},
        lr=0.1,  # SGD: Adam would scale the key biases' rounding noise (their gradient is 0)
        epochs=2,
        batch_size=16,
        threads=1,
        diagnostics=False,
        data_dir=str(tmp_path / "data"),
        out=str(tmp_path / "parallel"),
    )
    first, second = run_replicas(cases.train_with_writes_only_on_rank_0, 2, config)
    assert [row["val_ppl"] for row in first] == [row["val_ppl"] for row in second]
    alone = dataclasses.replace(config, out=str(tmp_path / "alone"))
    with computing_threads(1):
        train(alone, progress=False)
    tokenizers = [
        (tmp_path / name / "tokenizer.json").read_text() for name in ("parallel", "alone")
    ]
    assert tokenizers[0] == tokenizers[1]
    states = [
        torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["training"]
        for name in ("parallel", "alone")
    ]
    for part in ("model", "rule"):
        for key, value in states[0][part].items():
            torch.testing.assert_close(value, states[1][part][key], rtol=1e-4, atol=1e-5, msg=key)
