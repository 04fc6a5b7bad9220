"""What a benchmark times and measures: one training step, ``rule.step(x, y)`` then
``optimizer.step()`` (SGD, momentum 0.9, over the model's and the rule's parameters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bpfree.bench.suites import Setting
from bpfree.models import build_model
from bpfree.rules import Rule, build, rule_options


@dataclass
class TrainingStep:
    """A rule on its model with its optimizer, and the batch ``x`` (n, *input_shape), ``y`` (n,)
    that ``step()`` trains on."""

    rule: Rule
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor

    def __call__(self) -> None:
        """One training step on the stored batch."""
        self.train(self.x, self.y)

    def train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One training step on the batch ``x``, ``y``."""
        self.rule.step(x, y)
        self.optimizer.step()


def bench_options(rule: str, setting: Setting) -> dict[str, Any]:
    """Options that make ``rule.step`` the rule's whole training step on ``setting``: weight
    mirror without its mirror phase (timed apart), and for a projection rule on an image model
    the input shape its injection points are traced with."""
    options: dict[str, Any] = {}
    if rule == "wm":
        options["mirror_every"] = 0
    if setting.model != "mlp" and "example_input" in rule_options(rule):
        options["example_input"] = setting.input_shape
    return options


def random_batch(
    setting: Setting, device: torch.device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of uniform inputs (batch, *input_shape) and random labels (batch,) on device."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(setting.batch, *setting.input_shape, generator=generator)
    y = torch.randint(0, setting.num_classes, (setting.batch,), generator=generator)
    return x.to(device), y.to(device)


def build_step(
    rule: str,
    setting: Setting,
    device: torch.device,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
) -> TrainingStep:
    """Rule ``rule`` on a fresh model of ``setting`` (MLPs: dropout 0.1, ReLU, tanh for DRTP as
    in the PEPITA paper), its SGD optimizer, and ``batch`` (default: ``random_batch``)."""
    generator = torch.Generator().manual_seed(seed)
    if setting.model == "mlp":
        activation = "tanh" if rule == "drtp" else "relu"
        options = {"hidden": list(setting.hidden or ()), "dropout": 0.1, "activation": activation}
        input_shape = (1, 1, setting.input_shape[0])
    else:
        options, input_shape = {}, setting.input_shape
    model = build_model(
        setting.model,
        input_shape=input_shape,
        num_classes=setting.num_classes,
        generator=generator,
        **options,
    ).to(device)
    learner = build(rule, model, **bench_options(rule, setting)).to(device)
    optimizer = torch.optim.SGD([*model.parameters(), *learner.parameters()], lr=0.01, momentum=0.9)
    learner.bind_optimizer(optimizer)
    x, y = batch if batch is not None else random_batch(setting, device, seed)
    return TrainingStep(learner, optimizer, x, y)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
