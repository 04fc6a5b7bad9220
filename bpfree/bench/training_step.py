"""What a benchmark times and measures: one training step of a ``TrainingState`` (the rule's
step, then SGD with momentum 0.9 over every parameter the rule trains) on a stored batch, its
check skipped as the trainer skips it (the data is checked where it is loaded)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bpfree.bench.suites import Setting, rule_entry
from bpfree.rules import CompiledStep
from bpfree.rules.compiled import mode_for
from bpfree.training import ConfigError, TrainConfig, TrainingState


@dataclass
class TrainingStep:
    """A training state and the batch ``x`` (n, *input_shape), ``y`` (n,) that a call trains on;
    with ``compiled``, the rule's step runs through it (``bpfree.rules.compiled``)."""

    state: TrainingState
    x: torch.Tensor
    y: torch.Tensor
    compiled: CompiledStep | None = None

    def __call__(self) -> None:
        """One training step on the stored batch."""
        self.on(self.x, self.y)

    def on(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One training step on (x, y), compiled or not, unchecked as the trainer steps."""
        if self.compiled is None:
            self.state.step(x, y, check=False)
        else:
            self.compiled(x, y)


def bench_config(entry: str, setting: Setting, seed: int = 0) -> TrainConfig:
    """The config a benchmark trains under: the rule entry's rule and options
    (``suites.rule_entry``), the setting's model (MLPs: dropout 0.1 and the paper's activation
    for the rule), SGD at lr 0.01 with momentum 0.9, and weight mirror without its mirror phase
    (timed apart)."""
    rule, options = rule_entry(entry)
    if rule == "wm":
        options.setdefault("mirror_every", 0)
    return TrainConfig(
        rule=rule,
        model=setting.model,
        model_options=dict(setting.model_options),
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
    """A batch of uniform inputs (batch, *input_shape) and random labels (batch,) on device; of
    a language model, random token ids (batch, L) and next tokens (batch, L)."""
    generator = torch.Generator().manual_seed(seed)
    if setting.tokens:
        shape = (setting.batch, *setting.input_shape)
        x = torch.randint(0, setting.num_classes, shape, generator=generator)
        y = torch.randint(0, setting.num_classes, shape, generator=generator)
        return x.to(device), y.to(device)
    x = torch.rand(setting.batch, *setting.input_shape, generator=generator)
    y = torch.randint(0, setting.num_classes, (setting.batch,), generator=generator)
    return x.to(device), y.to(device)


def build_step(
    rule: str,
    setting: Setting,
    device: torch.device,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    compile: bool = False,
) -> TrainingStep:
    """Rule ``rule`` on a fresh model of ``setting`` (``bench_config``), and ``batch``
    (default: ``random_batch``); with ``compile``, its step compiled (CUDA graphs on a GPU)."""
    state = TrainingState.from_config(
        bench_config(rule, setting, seed),
        input_shape=setting.model_input_shape,
        num_classes=setting.num_classes,
        device=device,
    )
    x, y = batch if batch is not None else random_batch(setting, device, seed)
    compiled = CompiledStep(state.rule, state.optimizer, mode=mode_for(device)) if compile else None
    return TrainingStep(state, x, y, compiled)


def cannot_train(entry: str, setting: Setting, device: torch.device) -> str | None:
    """Why rule entry ``entry`` cannot train ``setting``'s model (a forward-only rule on a
    ResNet, a Linear-only rule on convolutions, an option the rule does not take), or None
    where it can."""
    try:
        build_step(entry, setting, device)
    except ConfigError as error:
        return str(error)
    return None


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
