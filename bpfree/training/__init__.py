"""Training runs: config, loop, run folder, curves."""

from bpfree.training.config import ConfigError, TrainConfig
from bpfree.training.run_folder import RunFolder, atomic_write
from bpfree.training.trainer import RunResult, TrainingDiverged, evaluate, train

__all__ = [
    "ConfigError",
    "RunFolder",
    "RunResult",
    "TrainConfig",
    "TrainingDiverged",
    "atomic_write",
    "evaluate",
    "train",
]
