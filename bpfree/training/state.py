"""One training run's moving parts in one object: the model, the rule, the optimizer and the
learning-rate schedule, built from a config, stepped together and saved together.

``train()``, the benchmarks and the data-parallel trainer all build a ``TrainingState``:

>>> state = TrainingState.from_config(config, input_shape=(1, 28, 28), num_classes=10)
>>> result = state.step(x, y)             # rule.step, then optimizer.step
>>> torch.save(state.state_dict(), path)  # model, rule, optimizer, scheduler, random state
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bpfree.models import MODELS
from bpfree.models import build_model as build_network
from bpfree.rules import Rule, StepResult, build, optimizer, rule_options
from bpfree.training.config import ConfigError, TrainConfig

# Config keys that shape a model directly, passed to every model that takes them (the MLP).
MODEL_SHORTHANDS = ("hidden", "activation", "dropout", "bias")


@dataclass
class TrainingState:
    """A model, the rule that trains it, the optimizer applying the rule's gradients, and the
    learning-rate schedule; ``state_dict()`` holds all of them and torch's random generators
    (dropout masks are drawn from those)."""

    model: nn.Module
    rule: Rule
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    @classmethod
    def from_config(
        cls,
        config: TrainConfig,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        device: torch.device | str = "cpu",
    ) -> TrainingState:
        """The config's model (seeded by its seed), rule, optimizer and schedule, on ``device``."""
        model = build_model(config, input_shape, num_classes).to(device)
        rule = build_rule(config, model, input_shape).to(device)
        learner = build_optimizer(config, rule)
        return cls(model, rule, learner, build_scheduler(config, learner))

    def step(self, x: torch.Tensor, y: torch.Tensor, *, check: bool = True) -> StepResult:
        """One training step: the rule writes the gradients, the optimizer applies them (the
        batch checked first unless ``check`` is False, as in ``Rule.step``)."""
        result = self.rule.step(x, y, check=check)
        self.optimizer.step()
        return result

    def state_dict(self) -> dict[str, Any]:
        """``{"model", "rule", "optimizer", "scheduler", "random"}``: everything that decides
        how training continues."""
        return {
            "model": self.model.state_dict(),
            "rule": self.rule.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "random": random_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` saved."""
        self.model.load_state_dict(state["model"])
        self.rule.load_state_dict(state["rule"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_random_state(state["random"])


def random_state() -> dict[str, Any]:
    """torch's CPU generator and, where CUDA is in use, every GPU's generator."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any]) -> None:
    """Restore ``random_state()``'s generators (the GPUs' where they were saved and exist)."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_model(config: TrainConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The config's network for inputs of ``input_shape``, seeded by the config's seed."""
    spec = MODELS.lookup(config.model)
    options = {key: getattr(config, key) for key in MODEL_SHORTHANDS if key in spec.options}
    options.update(config.model_options)
    try:
        model = build_network(
            config.model,
            input_shape=input_shape,
            num_classes=num_classes,
            generator=torch.Generator().manual_seed(config.seed),
            **options,
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model_options: {error}") from None
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if config.sync_batchnorm else model


def build_rule(config: TrainConfig, model: nn.Module, input_shape: tuple[int, ...]) -> Rule:
    """The config's rule on ``model``, seeded by the run's seed unless its options say
    otherwise; a rule with injection points reads their shapes from ``input_shape``."""
    options = dict(config.rule_options)
    takes = rule_options(config.rule)
    if "seed" in takes:
        options.setdefault("seed", config.seed)
    if "example_input" in takes:
        options.setdefault("example_input", tuple(input_shape))
    try:
        return build(config.rule, model, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"cannot build rule {config.rule!r} on model {config.model!r} with rule_options "
            f"{dict(config.rule_options)}: {error}"
        ) from None


def build_optimizer(config: TrainConfig, rule: Rule) -> torch.optim.Optimizer:
    """SGD with momentum (the papers' default; Nesterov's with ``nesterov``) or Adam, with the
    config's weight decay, over every parameter the rule trains (plastic feedback too: KP's B,
    PFA's R)."""
    if config.optimizer == "adam":
        return optimizer(rule, torch.optim.Adam, lr=config.lr, weight_decay=config.weight_decay)
    return optimizer(
        rule,
        torch.optim.SGD,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


def build_scheduler(
    config: TrainConfig, learner: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """×lr_decay at each of decay_epochs (``step``) or after every epoch (``exponential``)."""
    if config.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(learner, gamma=config.lr_decay)
    return torch.optim.lr_scheduler.MultiStepLR(
        learner, milestones=config.decay_epochs, gamma=config.lr_decay
    )
