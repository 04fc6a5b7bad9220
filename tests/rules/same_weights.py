"""The weights every registered rule reaches after five seeded steps, as sha256 digests.

Run as a script it prints ``{case: digest}`` as JSON; ``test_same_weights.py`` runs it in a
fresh process whose CPU kernels are pinned (one thread, ATen's portable kernels, MKL's
conditional numerical reproducibility), so that the digests do not depend on which vector
instructions the machine has, and compares them with the table recorded before the package's
redesign. A case is a rule with some options on a model (an MLP, PEPITA's conv net, LeNet-5
and ResNet-20 where the rule trains it), in float64, with SGD (momentum, weight decay) over
the model's and the rule's parameters.

The digest covers the model's state and the rule's floating-point state (feedback matrices and
what they learn from); the rule's counters and random-stream positions are checked by the resume
tests, which continue a run from them.
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch

import bpfree
from bpfree.models import build_model
from bpfree.rules import RULES, rule_options

STEPS = 5
BATCH = 8
CLASSES = 3
MODELS = {
    "mlp": (1, 2, 5),
    "pepita-conv": (1, 8, 8),
    "lenet": (1, 12, 12),
    "resnet20": (2, 4, 4),
}
# Options that hold extra state or take another path, beside every rule's defaults.
VARIANTS: dict[str, list[dict]] = {
    "fa": [{"sparsity": 0.5}, {"scale": 0.5}, {"feedback_init": "xavier-uniform"}],
    "wm": [{"pre_mirror_steps": 2}],
    "pfa": [{"sparsity": 0.5}],
    "pfa-o": [{"expansion": 2.0}],
    "drtp": [{"output_loss": "ce"}, {"scaling": "mean"}],
    "grape": [{"perturbations": 2}],
    "fg-activity": [{"perturbations": 2}],
    "fg-weight": [{"perturbations": 2}],
    "pepita": [
        {"sign": -1, "presynaptic": "clean", "output_error": "modulated"},
        {"perturbation": "random", "amplitude": 0.1},
        {"perturbation": "projected-random", "amplitude": 0.1},
        {"conv_average": "reference-code"},
        {"conv_average": "reference-code", "conv_sign": "reference-code"},
    ],
    "pepita-wm": [{"pre_mirror_steps": 2, "mirror_every": 2}],
    "pepita-time-local": [{"modulated_masks": "redrawn"}],
    "ff": [{"negatives": "hybrid"}],
}


def cases() -> list[tuple[str, str, dict]]:
    """(rule, model, options) of every case, in a fixed order."""
    return [
        (rule, model, options)
        for rule in sorted(RULES)
        for options in [{}, *VARIANTS.get(rule, [])]
        for model in MODELS
    ]


def case_name(rule: str, model: str, options: dict) -> str:
    shown = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{rule}[{shown}] on {model}"


def make_model(rule: str, model: str) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(0)
    options = {}
    if model == "mlp":
        activation = "tanh" if rule == "drtp" else "relu"
        options = {"hidden": [16, 12], "activation": activation, "dropout": 0.1}
    return build_model(
        model,
        input_shape=MODELS[model],
        num_classes=CLASSES,
        generator=generator,
        **options,
    ).double()


def train(rule: str, model_name: str, options: dict) -> str | None:
    """The case's digest after ``STEPS`` steps, or None where the rule does not take the model."""
    torch.manual_seed(0)
    model = make_model(rule, model_name)
    options = dict(options)
    if model_name != "mlp" and "example_input" in rule_options(rule):
        options["example_input"] = MODELS[model_name]
    if rule == "ff" and options.get("negatives") == "hybrid" and model_name == "mlp":
        options["image_shape"] = MODELS["mlp"][1:]
    try:
        learner = bpfree.build(rule, model, **options)
    except ValueError:
        return None
    learner = learner.double()
    optimizer = make_optimizer(learner)
    data = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        x = torch.randn(BATCH, *MODELS[model_name], generator=data, dtype=torch.float64)
        y = torch.randint(0, CLASSES, (BATCH,), generator=data)
        learner.step(x, y)
        optimizer.step()
    return digest(model, learner)


def make_optimizer(learner) -> torch.optim.Optimizer:
    return bpfree.optimizer(learner, torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=1e-4)


def digest(model: torch.nn.Module, learner) -> str:
    sha = hashlib.sha256()
    for prefix, state in (("model", model.state_dict()), ("rule", learner.state_dict())):
        for key in sorted(state):
            value = state[key]
            if not isinstance(value, torch.Tensor):
                continue
            if prefix == "rule" and not value.is_floating_point():
                continue
            sha.update(f"{prefix}.{key}:{value.dtype}:{tuple(value.shape)}".encode())
            sha.update(value.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def main() -> None:
    torch.set_num_threads(1)
    table = {}
    for rule, model, options in cases():
        result = train(rule, model, options)
        if result is not None:
            table[case_name(rule, model, options)] = result
    json.dump(table, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
