"""Where a run picks up: its checkpoint restored into a fresh training state, on every replica."""

from __future__ import annotations

import logging
from typing import Any

import torch

from bpfree.parallel import Replicas
from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.run_folder import RunFolder, RunFolderError
from bpfree.training.state import TrainingState, set_random_state

logger = logging.getLogger(__name__)


def resume(
    folder: RunFolder,
    config: TrainConfig,
    state: TrainingState,
    order: torch.Generator,
    replicas: Replicas | None = None,
) -> list[dict[str, Any]]:
    """Restore the folder's checkpoint into ``state`` and ``order`` and return the metrics of
    its epochs; a new run (no checkpoint) writes its config and returns none. The checkpoint
    decides how far the run got; ``config.yaml`` and ``metrics.jsonl`` are rewritten from it.
    A latest checkpoint that cannot be read or does not fit the run gives way to the previous
    one.

    Data parallel: rank 0 reads the checkpoint and sends it to every replica (nothing but rank 0
    reads the folder, so the nodes need no shared disk); an error on rank 0 is raised on all.
    Each replica takes back its own random generators when the run had as many replicas."""
    main = replicas is None or replicas.is_main
    if main:
        try:
            checkpoint = _load(folder, config, state, order)
            outcome: tuple[str, Any] = ("checkpoint", checkpoint)
        except (ConfigError, RunFolderError) as error:
            outcome = ("error", error)
    if replicas is not None:
        outcome = replicas.broadcast(outcome if main else None)
    if outcome[0] == "error":
        raise outcome[1]
    checkpoint = outcome[1]
    if checkpoint is not None and not main:
        _restore(state, order, checkpoint)
    if checkpoint is not None and replicas is not None:
        _restore_replica_random(checkpoint, replicas)
    metrics = [] if checkpoint is None else list(checkpoint["metrics"])
    if main:
        folder.write_config(config.to_dict())
        folder.write_metrics(metrics)
    if checkpoint is not None:
        logger.info("resuming %s after epoch %d", folder.path, checkpoint["epoch"])
    return metrics


def _load(
    folder: RunFolder, config: TrainConfig, state: TrainingState, order: torch.Generator
) -> dict[str, Any] | None:
    def restore(checkpoint: dict[str, Any]) -> None:
        check_resumable(folder, config, checkpoint)
        _restore(state, order, checkpoint)

    return folder.load_checkpoint(restore=restore)


def _restore(state: TrainingState, order: torch.Generator, checkpoint: dict[str, Any]) -> None:
    try:
        state.load_state_dict(checkpoint["training"])
        order.set_state(checkpoint["data_order"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise RunFolderError(f"its training state does not fit the run ({reason})") from None


def _restore_replica_random(checkpoint: dict[str, Any], replicas: Replicas) -> None:
    states = checkpoint.get("replica_random")
    if states is not None and len(states) == replicas.world_size:
        set_random_state(states[replicas.rank])
    elif replicas.is_main:
        logger.warning(
            "the checkpoint was written by %s replicas, this run has %d: each replica's dropout "
            "masks are drawn anew, so the weights will differ from an uninterrupted run",
            len(states) if states is not None else "1",
            replicas.world_size,
        )


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
