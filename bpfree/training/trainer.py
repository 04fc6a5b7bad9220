"""The training loop: a rule writes gradients, the optimizer applies them, each epoch is logged
and saved, and a run resumes where its checkpoint stopped (``resume``), on one process or on
the replicas ``torchrun`` starts (``bpfree.parallel``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bpfree.data import Batches, DataError, Dataset, load_dataset
from bpfree.data.split import stratified_split
from bpfree.data.standardize import standardized
from bpfree.data.text import TEXT_DATASETS, TextDataset, load_text_dataset
from bpfree.diagnostics import update_cosines, weight_diagnostics
from bpfree.parallel import DataParallel, Replicas, join
from bpfree.rules import CompiledStep, Rule
from bpfree.rules.compiled import mode_for
from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.plots import plot_alignment, plot_curves
from bpfree.training.resume import resume
from bpfree.training.run_folder import RunFolder
from bpfree.training.state import TrainingState


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
    ``metrics.jsonl`` (``epoch``, ``train_loss``, ``train_acc``, ``val_acc`` with a validation
    split, ``test_acc`` (after the last epoch only, with ``test_every_epoch: false``),
    ``seconds``, ``lr`` and the diagnostics; a text run adds ``train_ppl``, ``val_ppl`` and
    ``test_ppl``, perplexities per token, its accuracies are per token and its validation split
    is the dataset's own); the plots are drawn before the last row is
    written, so a run whose metrics are complete has its plots. A non-finite loss or weights
    stop the run with ``TrainingDiverged``; the last finite epoch's checkpoint stays.

    Started by ``torchrun`` on several processes the run is data parallel (``bpfree.parallel``):
    ``batch_size`` is the global batch, split across the replicas, and so is evaluation; rank 0
    alone writes the folder, shows the progress bars and calls ``on_epoch``.
    """
    config = config.resolved()
    replicas = join(config.device)
    device = replicas.device if replicas is not None else training_device(config.device)
    folder = RunFolder(config.out or config.default_out())
    data = load_data(config, device, folder, replicas)
    train_x, train_y, held_out = split_validation(data, config)
    check_batches(len(train_y), config.batch_size, replicas)
    main = replicas is None or replicas.is_main
    torch.manual_seed(config.seed + (replicas.rank if replicas is not None else 0))
    state = TrainingState.from_config(
        config, input_shape=data.input_shape, num_classes=data.num_classes, device=device
    )
    stepper = DataParallel(
        state.rule, state.optimizer, replicas, compiled=compiled(config, state, device)
    )
    with folder.writing() if main else nullcontext(), computing_threads(config.threads):
        if main and isinstance(data, TextDataset):
            data.tokenizer.save(folder.tokenizer)
        order = torch.Generator().manual_seed(config.seed)
        batches = Batches(train_x, train_y, config.batch_size, shuffle=True, generator=order)
        metrics = resume(folder, config, state, order, replicas)
        if main and len(metrics) == config.epochs:  # finished before: its plots must be there
            draw(folder, config, metrics)
        for epoch in range(len(metrics) + 1, config.epochs + 1):
            row = train_epoch(state, stepper, config, batches, epoch, progress and main)
            if isinstance(data, TextDataset):
                row["train_ppl"] = math.exp(row["train_loss"])
            if held_out is not None:
                row.update(scores("val", state.rule, *held_out, replicas))
            if config.test_every_epoch or epoch == config.epochs:
                row.update(scores("test", state.rule, data.test_x, data.test_y, replicas))
            if config.diagnostics and main:
                row.update(diagnose(state.rule, train_x[:256], train_y[:256]))
            metrics.append(row)
            save_epoch(folder, config, metrics, state, order, replicas)
            if on_epoch is not None and main:
                on_epoch(row)
    return RunResult(folder.path, metrics)


def load_data(
    config: TrainConfig, device: torch.device, folder: RunFolder, replicas: Replicas | None
) -> Dataset:
    """The run's dataset on ``device`` (images standardized per channel with ``standardize``). A
    text's tokenizer is the one saved in the run folder (a resumed run), else trained by rank 0
    on the training split and sent to every replica."""
    if config.dataset not in TEXT_DATASETS:
        data = load_dataset(config.dataset, config.data_dir, device=device)
        return standardized(data) if config.standardize else data

    def load(tokenizer=None) -> TextDataset:
        return load_text_dataset(
            config.dataset,
            config.data_dir,
            options=config.data_options,
            saved_tokenizer=folder.tokenizer,
            tokenizer=tokenizer,
            device=device,
        )

    if replicas is None:
        return load()
    outcome: tuple[str, Any] = ("", None)
    if replicas.is_main:
        try:
            data = load()
            outcome = ("tokenizer", data.tokenizer)
        except (DataError, ValueError) as error:
            outcome = ("error", error)
    outcome = replicas.broadcast(outcome)
    if outcome[0] == "error":
        raise outcome[1]
    return data if replicas.is_main else load(outcome[1])


def compiled(
    config: TrainConfig, state: TrainingState, device: torch.device
) -> CompiledStep | None:
    """The rule's step compiled when the config says so, in the mode for ``device``."""
    if not config.compile:
        return None
    return CompiledStep(state.rule, state.optimizer, mode=mode_for(device))


def split_validation(
    data: Dataset, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """The training rows and, with ``val_fraction``, the held-out (x, y) of the validation
    split (seeded by the run's seed: the same for every run of a sweep that shares it); a text
    keeps its published validation split."""
    if isinstance(data, TextDataset):
        return data.train_x, data.train_y, (data.valid_x, data.valid_y)
    if not config.val_fraction:
        return data.train_x, data.train_y, None
    split = stratified_split(data.train_y, config.val_fraction, config.seed)
    held_out = (data.train_x[split.validation], data.train_y[split.validation])
    return data.train_x[split.train], data.train_y[split.train], held_out


def check_batches(samples: int, batch_size: int, replicas: Replicas | None) -> None:
    """A ``ConfigError`` when a batch would leave a replica without samples."""
    if replicas is None:
        return
    last = samples % batch_size or batch_size
    if min(batch_size, last) < replicas.world_size:
        raise ConfigError(
            f"with {replicas.world_size} processes every batch needs at least "
            f"{replicas.world_size} samples, but batches of {batch_size} leave {last} in the "
            f"last of {samples}; choose another batch size"
        )


def train_epoch(
    state: TrainingState,
    stepper: DataParallel,
    config: TrainConfig,
    batches: Batches,
    epoch: int,
    progress: bool,
) -> dict[str, Any]:
    """One pass over the training set; the row of metrics it produced (without test accuracy).

    Nothing of a step is read back to the host: the loss, the correct predictions and the
    count of non-finite losses add up on the device and are read every ``READ_EVERY`` steps
    and at the end of the epoch (``read``). A non-finite loss (on any replica) found by a
    read, or weights left non-finite by the epoch's updates, raise ``TrainingDiverged``, which
    names the steps since the previous read, before anything of the epoch is saved. The
    batches are not checked at each step: the dataset was, where it was loaded.
    """
    warmup = epoch == 1 and config.warmup_weight_decay is not None
    for group in state.optimizer.param_groups:
        group["weight_decay"] = config.warmup_weight_decay if warmup else config.weight_decay
    lr = state.optimizer.param_groups[0]["lr"]
    state.model.train()
    stepper.start_epoch()
    totals, seen, last_read = None, 0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", leave=False, disable=not progress)
    with bar:
        for step, (x, y) in enumerate(bar, start=1):
            result = stepper.step(x, y, check=False)
            totals = result.stats if totals is None else totals + result.stats
            seen += result.samples
            if step % READ_EVERY == 0 and step < len(batches):
                loss_sum, _, non_finite = read(totals)
                if non_finite:
                    raise TrainingDiverged(_diverged("the loss", epoch, last_read + 1, step))
                last_read = step
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
    weights_finite = torch.stack([torch.isfinite(p).all() for p in state.model.parameters()])
    loss_sum, correct, non_finite, weights_bad = read(
        torch.cat([totals, (~weights_finite).sum().double().unsqueeze(0)])
    )
    if non_finite:
        raise TrainingDiverged(_diverged("the loss", epoch, last_read + 1, len(batches)))
    if weights_bad:
        raise TrainingDiverged(_diverged("the weights", epoch, last_read + 1, len(batches)))
    state.scheduler.step()
    return {
        "epoch": epoch,
        "train_loss": loss_sum / seen,
        "train_acc": 100.0 * int(correct) / seen,
        "seconds": time.perf_counter() - start,
        "lr": lr,
    }


# Steps between two reads of the running loss on the host (the progress bar's loss, the check
# that it is finite): a read waits for the device, so a step never does it.
READ_EVERY = 50


def read(totals: torch.Tensor) -> list[float]:
    """The training loop's one read of the device's running totals on the host."""
    return totals.tolist()


def _diverged(what: str, epoch: int, first: int, last: int) -> str:
    steps = f"step {last}" if first == last else f"steps {first}-{last}"
    kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no epoch was saved"
    return (
        f"{what} became non-finite at epoch {epoch}, {steps}: training stopped; {kept} "
        "(lower the learning rate?)"
    )


def save_epoch(
    folder: RunFolder,
    config: TrainConfig,
    metrics: list[dict[str, Any]],
    state: TrainingState,
    order: torch.Generator,
    replicas: Replicas | None,
) -> None:
    """Rank 0 writes the epoch's checkpoint (with every replica's random generators), then, after
    the last epoch, the plots, then the metrics."""
    training = state.state_dict()
    replica_random = replicas.gather(training["random"]) if replicas is not None else None
    if replicas is not None and not replicas.is_main:
        return
    checkpoint = {
        "epoch": len(metrics),
        "config": config.to_dict(),
        "metrics": metrics,
        "training": training,
        "data_order": order.get_state(),
    }
    if replica_random is not None:
        checkpoint["replica_random"] = replica_random
    folder.save_checkpoint(checkpoint)
    if len(metrics) == config.epochs:
        draw(folder, config, metrics)
    folder.write_metrics(metrics)


def scores(
    split: str, rule: Rule, x: torch.Tensor, y: torch.Tensor, replicas: Replicas | None
) -> dict[str, float]:
    """``{split}_acc`` of the rule on (x, y), and for a sequence model (one prediction per
    token) ``{split}_ppl``, the perplexity exp(mean cross-entropy per token)."""
    if y.dim() == 1:
        return {f"{split}_acc": evaluate(rule, x, y, replicas=replicas)}
    # logits of at most 2^24 values per batch (64 MB in float32)
    rows = max(1, (1 << 24) // (y[0].numel() * rule.num_classes))
    accuracy, loss = _evaluate(rule, x, y, rows, replicas, with_loss=True)
    return {f"{split}_acc": accuracy, f"{split}_ppl": math.exp(loss)}


def evaluate(
    predictor: torch.nn.Module | Rule,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1000,
    replicas: Replicas | None = None,
) -> float:
    """Accuracy in percent on (x, y) of a model, or of a rule's ``predict`` (Forward-Forward
    predicts by goodness, not by the model's logits), in eval mode without autograd; split
    across ``replicas`` (each counts its rows, the counts are summed) when given. Labels may be
    a sequence model's next tokens (n, t): every token is a prediction."""
    return _evaluate(predictor, x, y, batch_size, replicas, with_loss=False)[0]


def _evaluate(
    predictor: torch.nn.Module | Rule,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    replicas: Replicas | None,
    *,
    with_loss: bool,
) -> tuple[float, float | None]:
    """``evaluate``'s accuracy and, with ``with_loss``, the mean softmax cross-entropy of the
    predictions (else None), from one pass."""
    model = predictor.model if isinstance(predictor, Rule) else predictor
    predict = predictor.predict if isinstance(predictor, Rule) else predictor
    total = y.numel()
    if replicas is not None:
        start, stop = replicas.rows(len(y))
        x, y = x[start:stop], y[start:stop]
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=y.device)  # [correct, summed loss]
    with torch.no_grad():
        for xb, yb in Batches(x, y, batch_size, shuffle=False):
            scores = predict(xb)
            sums[0] += (scores.argmax(dim=-1) == yb).sum()
            if with_loss:
                sums[1] += F.cross_entropy(scores.flatten(0, -2), yb.flatten(), reduction="sum")
    if replicas is not None:
        replicas.all_reduce_sum_([sums])
    correct, loss_sum = sums.tolist()
    return 100.0 * round(correct) / total, loss_sum / total if with_loss else None


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
