"""Training runs: config, training state, loop, run folder, curves."""

from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.jobs import TRAINED_ELSEWHERE, train_job
from bpfree.training.run_folder import RunFolder, RunFolderError
from bpfree.training.state import TrainingState
from bpfree.training.trainer import RunResult, TrainingDiverged, evaluate, train

__all__ = [
    "TRAINED_ELSEWHERE",
    "ConfigError",
    "RunFolder",
    "RunFolderError",
    "RunResult",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingState",
    "evaluate",
    "train",
    "train_job",
]
