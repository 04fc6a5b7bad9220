"""The training loop: a rule writes gradients, the optimizer applies them, each epoch is logged
and saved, and a run resumes where its checkpoint stopped."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bpfree.data import Batches, load_dataset
from bpfree.diagnostics import update_cosines, weight_diagnostics
from bpfree.rules import Rule
from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.plots import plot_alignment, plot_curves
from bpfree.training.run_folder import RunFolder, RunFolderError
from bpfree.training.state import TrainingState

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss or the weights became non-finite; the message says where and which checkpoint
    was kept."""


@dataclass
class RunResult:
    """A finished run: its folder, its per-epoch metrics, and the last test accuracy."""

    folder: Path
    metrics: list[dict[str, Any]]

    @property
    def test_acc(self) -> float:
        return self.metrics[-1]["test_acc"]


def train(
    config: TrainConfig,
    *,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train as ``config`` says, resuming from the run folder's checkpoint when there is one.

    Each epoch saves the checkpoint (with every epoch's metrics), then appends its row to
    ``metrics.jsonl`` (``epoch``, ``train_loss``, ``train_acc``, ``test_acc``, ``seconds``,
    ``lr`` and the diagnostics); the plots are drawn before the last row is written, so a run
    whose metrics are complete has its plots. A non-finite loss or weights stop the run with
    ``TrainingDiverged``; the last finite epoch's checkpoint stays.
    """
    config = config.resolved()
    device = training_device(config.device)
    data = load_dataset(config.dataset, config.data_dir, device=device)
    torch.manual_seed(config.seed)
    state = TrainingState.from_config(
        config, input_shape=data.input_shape, num_classes=data.num_classes, device=device
    )
    folder = RunFolder(config.out or config.default_out())
    with folder.writing(), computing_threads(config.threads):
        order = torch.Generator().manual_seed(config.seed)
        batches = Batches(
            data.train_x, data.train_y, config.batch_size, shuffle=True, generator=order
        )
        probe = (data.train_x[:256], data.train_y[:256])  # the fixed batch diagnostics look at
        metrics = resume(folder, config, state, order, device)
        if len(metrics) == config.epochs:  # finished before: make sure its plots are there
            draw(folder, config, metrics)
        for epoch in range(len(metrics) + 1, config.epochs + 1):
            row = train_epoch(state, config, batches, epoch, progress)
            row["test_acc"] = evaluate(state.rule, data.test_x, data.test_y)
            if config.diagnostics:
                row.update(diagnose(state.rule, *probe))
            metrics.append(row)
            folder.save_checkpoint(
                {
                    "epoch": epoch,
                    "config": config.to_dict(),
                    "metrics": metrics,
                    "training": state.state_dict(),
                    "data_order": order.get_state(),
                }
            )
            if epoch == config.epochs:
                draw(folder, config, metrics)
            folder.write_metrics(metrics)
            if on_epoch is not None:
                on_epoch(row)
    return RunResult(folder.path, metrics)


@contextmanager
def computing_threads(threads: int | None) -> Iterator[None]:
    """Within it, torch computes with ``threads`` CPU threads (None: as it was)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def training_device(name: str) -> torch.device:
    """The device ``name`` names, or a ``ConfigError`` when this machine has none such."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was asked for but torch sees no CUDA device; use cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist: torch sees {torch.cuda.device_count()} GPUs"
            )
    return device


def resume(
    folder: RunFolder,
    config: TrainConfig,
    state: TrainingState,
    order: torch.Generator,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Restore the folder's checkpoint into ``state`` and ``order`` and return the metrics of
    its epochs; a new run (no checkpoint) writes its config and returns none. The checkpoint
    decides how far the run got; ``config.yaml`` and ``metrics.jsonl`` are rewritten from it.
    A latest checkpoint that cannot be read or does not fit the run gives way to the previous
    one."""

    def restore(checkpoint: dict[str, Any]) -> None:
        check_resumable(folder, config, checkpoint)
        try:
            state.load_state_dict(checkpoint["training"])
            order.set_state(checkpoint["data_order"])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise RunFolderError(f"its training state does not fit the run ({reason})") from None

    checkpoint = folder.load_checkpoint(map_location=device, restore=restore)
    if checkpoint is None:
        folder.write_config(config.to_dict())
        folder.write_metrics([])
        return []
    metrics = list(checkpoint["metrics"])
    folder.write_config(config.to_dict())
    folder.write_metrics(metrics)
    logger.info("resuming %s after epoch %d", folder.path, checkpoint["epoch"])
    return metrics


def check_resumable(folder: RunFolder, config: TrainConfig, checkpoint: dict[str, Any]) -> None:
    """A ``ConfigError`` when the checkpoint is of another run, or of more epochs than asked."""
    changed = config.differences(checkpoint["config"])
    if changed:
        raise ConfigError(
            f"{folder.path} holds a run with different settings ({', '.join(changed)}); "
            "pass --out with a new folder to start another run"
        )
    if checkpoint["epoch"] > config.epochs:
        raise ConfigError(
            f"{folder.path} holds {checkpoint['epoch']} finished epochs, more than the "
            f"{config.epochs} asked for; ask for at least {checkpoint['epoch']} epochs, or pass "
            "--out with a new folder"
        )


def train_epoch(
    state: TrainingState, config: TrainConfig, batches: Batches, epoch: int, progress: bool
) -> dict[str, Any]:
    """One pass over the training set; the row of metrics it produced (without test accuracy).

    A non-finite loss, or weights left non-finite by the epoch's updates, raise
    ``TrainingDiverged`` before anything of the epoch is saved.
    """
    warmup = epoch == 1 and config.warmup_weight_decay is not None
    for group in state.optimizer.param_groups:
        group["weight_decay"] = config.warmup_weight_decay if warmup else config.weight_decay
    lr = state.optimizer.param_groups[0]["lr"]
    state.model.train()
    total_loss, seen = 0.0, 0
    correct = torch.zeros((), dtype=torch.long, device=batches.y.device)
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", leave=False, disable=not progress)
    with bar:
        for step, (x, y) in enumerate(bar, start=1):
            result = state.step(x, y)
            if not math.isfinite(result.loss):
                raise TrainingDiverged(_diverged(f"the loss became {result.loss}", epoch, step))
            total_loss += result.loss * len(y)
            seen += len(y)
            correct += (result.output.argmax(dim=1) == y).sum()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    if not all(torch.isfinite(p).all() for p in state.model.parameters()):
        raise TrainingDiverged(_diverged("the weights became non-finite", epoch, len(batches)))
    state.scheduler.step()
    return {
        "epoch": epoch,
        "train_loss": total_loss / seen,
        "train_acc": 100.0 * correct.item() / seen,
        "seconds": time.perf_counter() - start,
        "lr": lr,
    }


def _diverged(what: str, epoch: int, step: int) -> str:
    kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no epoch was saved"
    return (
        f"{what} at epoch {epoch}, step {step}: training stopped; {kept} (lower the learning rate?)"
    )


def evaluate(
    predictor: torch.nn.Module | Rule, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
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


def diagnose(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """The epoch's diagnostics: the cosine between each parameter's update and its true gradient
    on a fixed batch, the rule's feedback alignment, and each weight matrix's norm (ICML 2022
    Fig. 3c) with its Normal and Student-t fits (App. H)."""
    return {
        "update_cosine": update_cosines(rule, x, y),
        "weights": weight_diagnostics(rule.model, fit=True),
        "alignment": rule.alignment(),
    }


def draw(folder: RunFolder, config: TrainConfig, metrics: list[dict[str, Any]]) -> None:
    """The run's curves and, with diagnostics, its alignment plots."""
    if not metrics:
        return
    title = f"{config.rule} on {config.dataset}, {config.default_out().name}"
    plot_curves(metrics, folder.curves, title)
    if any("update_cosine" in row for row in metrics):
        plot_alignment(metrics, folder.alignment, title)
