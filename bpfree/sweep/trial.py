"""One trial of a study, run wherever an executor puts it: its settings read from the study,
trained as an ordinary run folder, its validation accuracy reported after every epoch (the
pruner may stop it there), and its result told to the study. The test set is read once, after
the trial's last epoch, and only recorded (``test_acc``), never told as the objective."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from bpfree.core.extras import require
from bpfree.data import DataError
from bpfree.sweep.spec import SweepSpec
from bpfree.sweep.storage import open_storage
from bpfree.training import (
    TRAINED_ELSEWHERE,
    ConfigError,
    RunFolderError,
    TrainingDiverged,
    train,
)
from bpfree.training.run_folder import FolderInUse

CLAIM = "claimed_by"
FAILURE = "failure"
TEST_ACC = "test_acc"
FOLDER = "folder"


def trial_folder(sweep_folder: Path, number: int) -> Path:
    return sweep_folder / "trials" / f"trial-{number:04d}"


def claim_mark() -> dict[str, Any]:
    """Who runs a trial: this host and process, and since when."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}


def live_trial(optuna: Any, study: Any, frozen: Any) -> Any:
    """The ``optuna.Trial`` of a running trial, to report to and tell (Optuna exposes no
    public way from a trial's number to its id)."""
    return optuna.trial.Trial(study, frozen._trial_id)


def find_trial(study: Any, number: int) -> Any:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def run_trial(
    spec: SweepSpec, url: str, number: int, folder: Path, overrides: dict[str, Any]
) -> str | None:
    """Train trial ``number`` (resuming its folder) and tell the study how it ended; ``None``
    when it finished or was pruned, ``TRAINED_ELSEWHERE`` when another worker runs it now,
    else why it failed."""
    optuna = require("optuna", extra="cluster", needed_for="bpfree sweep")
    study = optuna.load_study(
        study_name=spec.name, storage=open_storage(optuna, url), pruner=spec.pruning.build(optuna)
    )
    frozen = find_trial(study, number)
    if frozen.state.is_finished():  # told by another worker that resumed it meanwhile
        return None
    trial = live_trial(optuna, study, frozen)
    trial.set_user_attr(FOLDER, str(folder))
    config = spec.config_for(frozen.params, out=str(folder), test_every_epoch=False, **overrides)
    reported = set(frozen.intermediate_values)

    def judge(row: dict[str, Any]) -> None:
        if row["epoch"] not in reported:
            trial.report(row["val_acc"], row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']}")

    try:
        result = train(config, progress=False, on_epoch=judge)
    except optuna.TrialPruned:
        study.tell(number, state=optuna.trial.TrialState.PRUNED)
        return None
    except FolderInUse:  # another worker resumed this trial first; it will tell the study
        return TRAINED_ELSEWHERE
    except (ConfigError, DataError, RunFolderError, TrainingDiverged) as error:
        reason = f"{type(error).__name__}: {error}"
        trial.set_user_attr(FAILURE, reason)
        study.tell(number, state=optuna.trial.TrialState.FAIL)
        return reason
    trial.set_user_attr(TEST_ACC, result.test_acc)
    study.tell(number, spec.objective_value(result.metrics))
    return None
