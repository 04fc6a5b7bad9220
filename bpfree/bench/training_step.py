"""What a benchmark times and measures: one training step of a ``TrainingState`` (the rule's
step, then SGD with momentum 0.9 over every parameter the rule trains) on a stored batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bpfree.bench.suites import Setting
from bpfree.training import TrainConfig, TrainingState


@dataclass
class TrainingStep:
    """A training state and the batch ``x`` (n, *input_shape), ``y`` (n,) that a call trains on."""

    state: TrainingState
    x: torch.Tensor
    y: torch.Tensor

    def __call__(self) -> None:
        """One training step on the stored batch."""
        self.state.step(self.x, self.y)


def bench_config(rule: str, setting: Setting, seed: int = 0) -> TrainConfig:
    """The config a benchmark trains under: the setting's model (MLPs: dropout 0.1 and the
    paper's activation for the rule), SGD at lr 0.01 with momentum 0.9, and weight mirror
    without its mirror phase (timed apart)."""
    options: dict[str, Any] = {"mirror_every": 0} if rule == "wm" else {}
    return TrainConfig(
        rule=rule,
        model=setting.model,
        hidden=list(setting.hidden or ()),
        dropout=0.1,
        lr=0.01,
        momentum=0.9,
        seed=seed,
        rule_options=options,
    ).resolved()


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
    """Rule ``rule`` on a fresh model of ``setting`` (``bench_config``), and ``batch``
    (default: ``random_batch``)."""
    state = TrainingState.from_config(
        bench_config(rule, setting, seed),
        input_shape=setting.model_input_shape,
        num_classes=setting.num_classes,
        device=device,
    )
    x, y = batch if batch is not None else random_batch(setting, device, seed)
    return TrainingStep(state, x, y)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
