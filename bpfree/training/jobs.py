"""A run as a job for an executor: trained to its last epoch, its failure returned as text."""

from __future__ import annotations

import traceback

from bpfree.data import DataError
from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.run_folder import RunFolderError
from bpfree.training.trainer import TrainingDiverged, train


def train_job(config: TrainConfig) -> str | None:
    """Train one run to its last epoch; ``None`` on success, else the reason it failed."""
    try:
        train(config, progress=False)
    except (ConfigError, DataError, RunFolderError, TrainingDiverged) as error:
        return f"{type(error).__name__}: {error}"
    except Exception as error:  # one broken run must not stop the others; the report names it
        return f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
    return None
