"""The training loop: a rule writes gradients, SGD applies them, each epoch is logged and saved."""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from bpfree import models
from bpfree.data import Batches, Dataset, load_dataset
from bpfree.diagnostics import update_cosines, weight_diagnostics
from bpfree.rules import Rule, build
from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.plots import plot_alignment, plot_curves
from bpfree.training.run_folder import RunFolder

logger = logging.getLogger(__name__)

# Keys that may change when a run is resumed; any other difference is a different run.
RESUMABLE_CHANGES = frozenset({"epochs", "device", "data_dir", "out"})


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the message says where and which checkpoint was kept."""


@dataclass
class RunResult:
    """A finished run: its folder, its per-epoch metrics, and the last test accuracy."""

    folder: Path
    metrics: list[dict[str, Any]]

    @property
    def test_acc(self) -> float:
        return self.metrics[-1]["test_acc"]


def default_run_folder(config: TrainConfig) -> Path:
    """``runs/<dataset>-<rule>-<model>-seed<seed>``: the same run lands in the same folder.

    The MLP is named by its hidden widths, e.g. ``runs/mnist-pepita-1024-seed0``.
    """
    model = "x".join(map(str, config.hidden)) or "linear" if config.model == "mlp" else config.model
    return Path("runs") / f"{config.dataset}-{config.rule}-{model}-seed{config.seed}"


def build_model(config: TrainConfig, data: Dataset) -> nn.Module:
    """The config's network for the dataset, seeded."""
    options = dict(config.model_options)
    if config.model == "mlp":
        mlp = {"hidden": config.hidden, "activation": config.activation, "dropout": config.dropout}
        options = {**mlp, "bias": config.bias, **options}
    try:
        return models.build_model(
            config.model,
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            generator=torch.Generator().manual_seed(config.seed),
            **options,
        )
    except ValueError as error:
        raise ConfigError(f"model_options: {error}") from None


def build_rule(
    config: TrainConfig, model: nn.Module, data_shape: tuple[int, ...] | None = None
) -> Rule:
    """The config's rule on ``model``, seeded by the run's seed unless its options say otherwise."""
    options = dict(config.rule_options)
    from bpfree.rules import get_rule

    parameters = inspect.signature(get_rule(config.rule).__init__).parameters
    if "seed" in parameters:
        options.setdefault("seed", config.seed)
    if "example_input" in parameters and config.model != "mlp":
        options.setdefault("example_input", data_shape)  # conv injection points need map shapes
    try:
        return build(config.rule, model, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"rule_options: {error}") from None


def build_optimizer(config: TrainConfig, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD with momentum (the papers' default) or Adam, with the config's weight decay."""
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """×lr_decay at each of decay_epochs (``step``) or after every epoch (``exponential``)."""
    if config.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=config.decay_epochs, gamma=config.lr_decay
    )


def diagnose(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """The epoch's diagnostics: the cosine between each parameter's update and its true gradient
    on a fixed batch, feedback alignment (where the rule has feedback), and each weight matrix's
    norm (ICML 2022 Fig. 3c) with its Normal and Student-t fits (App. H)."""
    row: dict[str, Any] = {
        "update_cosine": update_cosines(rule, x, y),
        "weights": weight_diagnostics(rule.model, fit=True),
    }
    alignment = getattr(rule, "alignment", None)
    if alignment is not None:
        row["alignment"] = alignment()
    return row


def evaluate(
    predictor: nn.Module | Rule, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> float:
    """Accuracy in percent on (x, y) of a model, or of a rule's ``predict`` (Forward-Forward
    predicts by goodness, not by the model's logits), in eval mode without autograd."""
    model = predictor.model if isinstance(predictor, Rule) else predictor
    predict = predictor.predict if isinstance(predictor, Rule) else predictor
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    with torch.no_grad():
        for xb, yb in Batches(x, y, batch_size, shuffle=False):
            correct += (predict(xb).argmax(dim=1) == yb).sum()
    return 100.0 * correct.item() / len(y)


def train(
    config: TrainConfig,
    *,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train as ``config`` says, resuming from the run folder's checkpoint when there is one.

    Each epoch appends a row to ``metrics.jsonl`` (``epoch``, ``train_loss``, ``train_acc``,
    ``test_acc``, ``seconds``, ``lr``), replaces ``checkpoint.pt`` and redraws ``curves.png``.
    A non-finite loss stops the run with ``TrainingDiverged``; the last epoch's checkpoint stays.
    """
    config = config.resolved()
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device; use cpu")
    data = load_dataset(config.dataset, config.data_dir, device=device)
    folder = RunFolder(config.out or default_run_folder(config))
    torch.manual_seed(config.seed)
    model = build_model(config, data).to(device)
    rule = build_rule(config, model, data.input_shape).to(device)
    # Plastic feedback (KP's B, PFA's R) learns with the model's optimizer and weight decay.
    optimizer = build_optimizer(config, [*model.parameters(), *rule.parameters()])
    rule.bind_optimizer(optimizer)
    scheduler = build_scheduler(config, optimizer)
    order = torch.Generator().manual_seed(config.seed)
    batches = Batches(data.train_x, data.train_y, config.batch_size, shuffle=True, generator=order)
    probe = (data.train_x[:256], data.train_y[:256])  # the fixed batch diagnostics look at

    metrics: list[dict[str, Any]] = []
    checkpoint = folder.load_checkpoint(map_location=device)
    if checkpoint is None:
        folder.write_config(config.to_dict())
        folder.write_metrics([])
    else:
        _check_resumable(checkpoint["config"], config, folder.path)
        model.load_state_dict(checkpoint["model"])
        rule.load_state_dict(checkpoint["rule"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        order.set_state(checkpoint["order_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        metrics = [row for row in folder.read_metrics() if row["epoch"] <= checkpoint["epoch"]]
        folder.write_config(config.to_dict())
        folder.write_metrics(metrics)
        logger.info("resuming %s after epoch %d", folder.path, checkpoint["epoch"])

    for epoch in range(len(metrics) + 1, config.epochs + 1):
        warmup = epoch == 1 and config.warmup_weight_decay is not None
        for group in optimizer.param_groups:
            group["weight_decay"] = config.warmup_weight_decay if warmup else config.weight_decay
        row = _train_epoch(rule, optimizer, batches, epoch, config.epochs, progress)
        row["lr"] = optimizer.param_groups[0]["lr"]
        scheduler.step()
        row["test_acc"] = evaluate(rule, data.test_x, data.test_y)
        if config.diagnostics:
            row.update(diagnose(rule, *probe))
        metrics.append(row)
        folder.write_metrics(metrics)
        folder.save_checkpoint(
            {
                "epoch": epoch,
                "config": config.to_dict(),
                "model": model.state_dict(),
                "rule": rule.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "order_rng": order.get_state(),
                "torch_rng": torch.get_rng_state(),
            }
        )
        if on_epoch is not None:
            on_epoch(row)
    if metrics:
        model_name = f"hidden {config.hidden}" if config.model == "mlp" else config.model
        title = f"{config.rule} on {config.dataset}, {model_name}, seed {config.seed}"
        plot_curves(metrics, folder.curves, title)
        if any("update_cosine" in row for row in metrics):
            plot_alignment(metrics, folder.alignment, title)
    return RunResult(folder.path, metrics)


def _train_epoch(
    rule: Rule,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    epoch: int,
    epochs: int,
    progress: bool,
) -> dict[str, Any]:
    """One pass over the training set; the row of metrics it produced (without test accuracy)."""
    rule.model.train()
    total_loss, seen = 0.0, 0
    correct = torch.zeros((), dtype=torch.long, device=batches.y.device)
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress)
    for step, (x, y) in enumerate(bar, start=1):
        result = rule.step(x, y)
        if not math.isfinite(result.loss):
            bar.close()
            raise TrainingDiverged(
                f"the loss became {result.loss} at epoch {epoch}, step {step}: training stopped; "
                f"the checkpoint of epoch {epoch - 1} is kept (lower the learning rate?)"
            )
        optimizer.step()
        total_loss += result.loss * len(y)
        seen += len(y)
        correct += (result.output.argmax(dim=1) == y).sum()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    bar.close()
    return {
        "epoch": epoch,
        "train_loss": total_loss / seen,
        "train_acc": 100.0 * correct.item() / seen,
        "seconds": time.perf_counter() - start,
    }


def changed_settings(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """Keys on which ``config`` is a different run from the saved one.

    A key the saved config lacks (written before the key existed) counts as its default.
    """
    defaults = TrainConfig().to_dict()
    return sorted(
        key
        for key, value in config.to_dict().items()
        if key not in RESUMABLE_CHANGES and saved.get(key, defaults[key]) != value
    )


def _check_resumable(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    changed = changed_settings(saved, config)
    if changed:
        raise ConfigError(
            f"{path} holds a run with different settings ({', '.join(changed)}); "
            "pass --out with a new folder to start another run"
        )
