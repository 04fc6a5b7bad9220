"""A run as a job for an executor: trained to its last epoch, its failure (or that another
command trains it now) returned as text."""

from __future__ import annotations

import traceback

from bpfree.data import DataError
from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.run_folder import FolderInUse, RunFolderError
from bpfree.training.trainer import TrainingDiverged, train

TRAINED_ELSEWHERE = "trained by another command now"
"""What a job returns when another command holds its run folder: nothing was done here, and
nothing failed (that command finishes the run)."""


def train_job(config: TrainConfig) -> str | None:
    """Train one run to its last epoch; ``None`` on success, ``TRAINED_ELSEWHERE`` when another
    command writes its folder, else the reason it failed."""
    try:
        train(config, progress=False)
    except FolderInUse:
        return TRAINED_ELSEWHERE
    except (ConfigError, DataError, RunFolderError, TrainingDiverged) as error:
        return f"{type(error).__name__}: {error}"
    except Exception as error:  # one broken run must not stop the others; the report names it
        return f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
    return None
