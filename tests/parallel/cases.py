"""What the replicas of the data-parallel tests run (importable by name by the forkserver)."""

import torch

import bpfree
from bpfree.models import build_model
from bpfree.parallel import DataParallel
from bpfree.rules import rule_options

INPUTS = {"mlp": (1, 2, 5), "pepita-conv": (1, 8, 8)}
CLASSES, STEPS = 3, 5
OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}),
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
}


def build(rule: str, model_name: str, options: dict, optimizer: str):
    """A float64 model without dropout or BatchNorm, the rule and its optimizer."""
    extra = {"hidden": [12, 8], "dropout": 0.0} if model_name == "mlp" else {}
    generator = torch.Generator().manual_seed(0)
    model = build_model(
        model_name,
        input_shape=INPUTS[model_name],
        num_classes=CLASSES,
        generator=generator,
        **extra,
    ).double()
    options = dict(options)
    if model_name != "mlp" and "example_input" in rule_options(rule):
        options["example_input"] = INPUTS[model_name]
    if rule == "ff" and options.get("negatives") == "hybrid":
        options["image_shape"] = INPUTS[model_name][1:]
    learner = bpfree.build(rule, model, **options).double()
    cls, hyper = OPTIMIZERS[optimizer]
    return model, learner, bpfree.optimizer(learner, cls, **hyper)


def global_batches(model_name: str, batch: int):
    data = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        x = torch.randn(batch, *INPUTS[model_name], generator=data, dtype=torch.float64)
        yield x, torch.randint(0, CLASSES, (batch,), generator=data)


def train_cases(replicas, cases: list, batch: int, compiled: bool = False) -> dict:
    """Each case trained for ``STEPS`` steps of global batches of ``batch``: the model's and the
    rule's state after them, by case. ``compiled``: the rule's step through ``torch.compile``
    (AOT autograd's graph, torch's kernels)."""
    states = {}
    for case in cases:
        rule, model_name, options, optimizer = case
        torch.manual_seed(0)
        model, learner, learner_optimizer = build(rule, model_name, options, optimizer)
        step = bpfree.compiled_step(learner, learner_optimizer, backend="aot_eager")
        stepper = DataParallel(
            learner, learner_optimizer, replicas, compiled=step if compiled else None
        )
        for x, y in global_batches(model_name, batch):
            stepper.step(x, y)
        states[repr(case)] = (model.state_dict(), learner.state_dict())
    return states


def step_without_backward(replicas, rules: list) -> bool:
    """Each forward-only rule steps on two replicas with autograd's backward made to fail."""

    def fail(*args, **kwargs):
        raise AssertionError("a backward pass ran")

    torch.autograd.backward = torch.autograd.grad = torch.Tensor.backward = fail
    for rule in rules:
        _, learner, learner_optimizer = build(rule, "mlp", {}, "sgd")
        stepper = DataParallel(learner, learner_optimizer, replicas)
        for x, y in global_batches("mlp", 16):
            stepper.step(x, y)
    return True


def train_with_writes_only_on_rank_0(replicas, config) -> list:
    """``bpfree.training.train(config)``; on ranks other than 0 every file write of the run
    folder fails, so the run passes only if rank 0 alone writes."""
    from bpfree.training import run_folder, train

    if not replicas.is_main:

        def refuse(*args, **kwargs):
            raise AssertionError(f"rank {replicas.rank} touched the run folder")

        for name in ("writing", "write_config", "write_metrics", "save_checkpoint"):
            setattr(run_folder.RunFolder, name, refuse)
    return train(config, progress=False).metrics


def parallel_bench_tables(replicas) -> list:
    """The data-parallel benchmark on a tiny MLP and a tiny conv net, one round of two steps."""
    from bpfree.bench.parallel import parallel_tables
    from bpfree.bench.suites import Setting

    settings = (Setting("mlp", (12,), 8, (6,)), Setting("pepita-conv", (1, 8, 8), 8))
    return parallel_tables(["bp", "pepita", "ff"], replicas, rounds=1, steps=2, settings=settings)
