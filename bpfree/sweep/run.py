"""A sweep from start to report: trials claimed one at a time from a shared study and run on
an executor, trials interrupted anywhere resumed from their run folders, then the best
settings re-trained over the final seeds.

Several ``bpfree sweep`` commands (on one machine, or on many sharing ``--out`` and a
``--storage`` database) work on one study together: a trial is claimed under a lock in the
sweep folder, so none is run twice and the study stops at its trial count. A trial left running
by a command that died (its process gone on this host, or its claim older than
``ORPHAN_SECONDS`` with nobody writing its run folder) is claimed again and resumed from its
checkpoint; it keeps its number and its settings.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpfree.cluster import Executor, InProcess, Task, run_all
from bpfree.core.extras import require
from bpfree.core.locks import exclusive_lock
from bpfree.sweep.spec import SweepSpec
from bpfree.sweep.storage import default_url, open_storage, open_study
from bpfree.sweep.trial import (
    CLAIM,
    FAILURE,
    claim_mark,
    find_trial,
    live_trial,
    run_trial,
    trial_folder,
)
from bpfree.training import TRAINED_ELSEWHERE, RunFolder, train_job

ORPHAN_SECONDS = 300.0
CLAIMS_LOCK = ".claims.lock"


@dataclass
class SweepState:
    """Where the study stands: trials finished (complete, pruned or failed) and running."""

    finished: int
    running: int
    wanted: int

    @property
    def done(self) -> bool:
        return self.finished >= self.wanted and self.running == 0


def sweep(
    spec: SweepSpec,
    folder: str | Path,
    *,
    storage: str | None = None,
    executor: Executor | None = None,
    overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> Any:
    """Run the study's missing trials, then (once it has all of them) the final seeds; returns
    the Optuna study. ``overrides`` are config keys every run takes (``data_dir``, ``device``,
    ``threads``)."""
    optuna = require("optuna", extra="cluster", needed_for="bpfree sweep")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or default_url(folder)
    with exclusive_lock(folder / CLAIMS_LOCK, wait=True):  # one creates the tables at a time
        study = open_study(
            optuna,
            open_storage(optuna, url),
            spec.name,
            spec.fingerprint,
            None,  # set before each trial is asked (claim_next)
            spec.pruning.build(optuna),
        )
        enqueue_settings(optuna, study, spec)
    executor = executor or InProcess(log=log)
    overrides = overrides or {}
    try:
        run_trials(optuna, study, spec, folder, url, executor, overrides, log)
        state = sweep_state(optuna, study, spec)
        if state.done:
            run_final(study, spec, folder, executor, overrides, log)
        else:
            log(
                f"{state.finished} of {spec.trials} trials finished, {state.running} running "
                "elsewhere: the final seeds start once all have finished (run the command again)"
            )
    finally:
        executor.close()
    return study


def run_trials(optuna, study, spec, folder, url, executor, overrides, log) -> None:
    deadline = time.monotonic() + 3600 * spec.timeout_hours if spec.timeout_hours else None
    while True:
        while executor.has_room() and (deadline is None or time.monotonic() < deadline):
            number = claim_next(optuna, study, spec, folder)
            if number is None:
                break
            path = trial_folder(folder, number)
            arguments = (spec, url, number, path, overrides)
            executor.submit(Task(f"trial {number}", run_trial, arguments, path))
        if not executor.running:
            return
        for task, reason in executor.wait():
            number = task.arguments[2]
            if reason == TRAINED_ELSEWHERE:
                log(f"trial {number}: {reason}")
            elif reason is not None:
                _fail_if_running(optuna, study, number, reason)
                log(f"trial {number} FAILED: {reason}")
            else:
                log(f"trial {number} ended: {find_trial(study, number).state.name.lower()}")


def enqueue_settings(optuna: Any, study: Any, spec: SweepSpec) -> None:
    """Put the spec's ``enqueue`` settings first in the study's queue, each once (not again when
    the command is rerun: a trial with those settings exists), and only while the study has
    room for them among its trials."""
    for settings in spec.enqueue:
        if len(study.get_trials(deepcopy=False)) >= spec.trials:
            return
        study.enqueue_trial(settings, skip_if_exists=True)


def claim_next(optuna: Any, study: Any, spec: SweepSpec, folder: Path) -> int | None:
    """Under the sweep's lock: the number of an orphaned trial to resume, else of a new trial
    (its settings suggested now), else None when the study has all its trials."""
    with exclusive_lock(folder / CLAIMS_LOCK, wait=True):
        trials = study.get_trials(deepcopy=False)
        running = optuna.trial.TrialState.RUNNING
        for frozen in trials:
            if frozen.state == running and orphaned(frozen, folder):
                live_trial(optuna, study, frozen).set_user_attr(CLAIM, claim_mark())
                return frozen.number
        counted = [t for t in trials if t.state != optuna.trial.TrialState.WAITING]
        if len(counted) >= spec.trials:
            return None
        # A sampler seeded by the trial's place in the study: commands sharing the study draw
        # different settings (one seed for all would repeat them), one command alone draws the
        # same sequence wherever its trials run.
        study.sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed + len(trials))
        trial = study.ask()
        spec.suggest(trial)
        trial.set_user_attr(CLAIM, claim_mark())
        return trial.number


def orphaned(frozen: Any, folder: Path) -> bool:
    """Whether nobody runs this running trial any more: its claimant's process is gone (same
    host), or its claim is old and nobody writes its run folder."""
    claim = frozen.user_attrs.get(CLAIM) or {}
    if claim.get("host") == socket.gethostname() and claim.get("pid") == os.getpid():
        return False  # ours, running now
    if RunFolder(trial_folder(folder, frozen.number)).in_use():
        return False
    if claim.get("host") == socket.gethostname():
        return not _alive(claim.get("pid"))
    return time.time() - claim.get("at", 0.0) > ORPHAN_SECONDS


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _fail_if_running(optuna: Any, study: Any, number: int, reason: str) -> None:
    """A trial whose task ended without telling the study (its worker died) is failed."""
    frozen = find_trial(study, number)
    if frozen.state == optuna.trial.TrialState.RUNNING:
        live_trial(optuna, study, frozen).set_user_attr(FAILURE, reason)
        study.tell(number, state=optuna.trial.TrialState.FAIL)


def sweep_state(optuna: Any, study: Any, spec: SweepSpec) -> SweepState:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    running = sum(s == optuna.trial.TrialState.RUNNING for s in states)
    finished = sum(s.is_finished() for s in states)
    return SweepState(finished, running, spec.trials)


def final_folder(folder: Path, best_number: int, seed: int) -> Path:
    return folder / "final" / f"trial-{best_number:04d}" / f"seed-{seed}"


def final_configs(study: Any, spec: SweepSpec, folder: Path, overrides: dict[str, Any]):
    """The best trial's settings at each final seed (``SweepSpec.final_config``)."""
    best = study.best_trial
    return [
        spec.final_config(
            best.params, seed, out=str(final_folder(folder, best.number, seed)), **overrides
        )
        for seed in spec.final.seeds
    ]


def run_final(study, spec, folder, executor, overrides, log) -> None:
    """Train the best settings at every final seed (those not finished yet)."""
    if not any(t.value is not None for t in study.get_trials(deepcopy=False)):
        log("no trial completed: nothing to re-run over the final seeds")
        return
    tasks = []
    for config in final_configs(study, spec, folder, overrides):
        run = RunFolder(config.out)
        if run.in_use():
            log(f"final seed {config.seed}: {TRAINED_ELSEWHERE}")
        elif run.finished_epochs() < config.epochs:
            tasks.append(Task(f"final seed {config.seed}", train_job, (config,), run.path))

    def done(task: Task, reason: str | None) -> None:
        if reason is None or reason == TRAINED_ELSEWHERE:
            log(f"{task.label}: {reason or 'finished'}")
        else:
            log(f"{task.label}: FAILED: {reason}")

    run_all(executor, tasks, done)
