"""Training-step time of each rule against BP's on the same model and batch, in one process.

A step is ``rule.step(x, y)`` then ``optimizer.step()`` (see ``training_step``), all rules on
the same batch. The rules are timed round-robin, ``rounds`` bursts of ``steps`` steps each, so a
slow phase of the machine hits them all alike; a rule's step time is the median over its bursts
of the burst's mean seconds per step. Weight mirror is timed without its mirror phase, which is
timed apart (``rule.mirror()``, same bursts) as the ``wm mirror`` row.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch

from bpfree.bench.suites import Setting, partition_rules
from bpfree.bench.training_step import build_step, cannot_train, random_batch, synchronize
from bpfree.core.checks import POSITIVE_INT

WM_MIRROR = "wm mirror"


@dataclass(frozen=True)
class StepTime:
    """One table row: a rule's median step ``seconds``, its ``ratio`` to BP's median, and
    ``samples_per_second`` = batch / seconds (None for the mirror phase, which trains on no
    batch)."""

    rule: str
    seconds: float
    ratio: float
    samples_per_second: float | None


@dataclass(frozen=True)
class SettingTimes:
    """The rows of one setting, BP first, the rules asked for that bpfree does not have, and
    those that cannot train the setting's model (rule → why, see ``cannot_train``); with
    compiled steps timed too, their rows (ratios to compiled BP) in ``compiled``."""

    setting: Setting
    rows: tuple[StepTime, ...]
    missing: tuple[str, ...]
    compiled: tuple[StepTime, ...] = ()
    untrainable: Mapping[str, str] = field(default_factory=dict)


def check_positive(**values: int) -> None:
    """Raise ``ValueError`` naming the first value that is not a positive integer."""
    for name, value in values.items():
        POSITIVE_INT(value, name)


def seconds_per_call(fn: Callable[[], None], device: torch.device, calls: int) -> float:
    """Mean wall-clock seconds of ``calls`` calls of ``fn``, device work included."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def median_step_seconds(
    rules: Iterable[str],
    setting: Setting,
    device: torch.device,
    rounds: int,
    steps: int,
    compile: bool = False,
) -> dict[str, float]:
    """Median seconds per training step of each registered rule in ``rules`` on ``setting``,
    and of weight mirror's mirror phase under ``WM_MIRROR`` when ``wm`` is among them; with
    ``compile``, also of each rule's compiled step, under ``compiled_name(rule)``."""
    check_positive(rounds=rounds, steps=steps)
    batch = random_batch(setting, device)
    runs = {rule: build_step(rule, setting, device, batch) for rule in rules}
    if compile:
        for rule in list(runs):
            runs[compiled_name(rule)] = build_step(rule, setting, device, batch, compile=True)
    for run in runs.values():
        run()  # warm-up; weight mirror also learns which layers it mirrors
        run()  # a compiled step compiles at its second call
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        for rule, run in runs.items():
            samples.setdefault(rule, []).append(seconds_per_call(run, device, steps))
            if rule == "wm":
                mirror = run.state.rule.mirror
                samples.setdefault(WM_MIRROR, []).append(seconds_per_call(mirror, device, steps))
    return {rule: statistics.median(times) for rule, times in samples.items()}


def compiled_name(rule: str) -> str:
    """The key of a rule's compiled step among the medians."""
    return f"{rule} compiled"


def step_rows(medians: Mapping[str, float], batch: int) -> tuple[StepTime, ...]:
    """Table rows from median seconds per step: ratio = median / BP's median, samples/s =
    batch / median. ``medians`` must hold ``bp``."""
    if "bp" not in medians:
        raise ValueError("the step times must include bp's, the reference of the ratios")
    return tuple(
        StepTime(
            rule=rule,
            seconds=seconds,
            ratio=seconds / medians["bp"],
            samples_per_second=None if rule == WM_MIRROR else batch / seconds,
        )
        for rule, seconds in medians.items()
    )


def time_setting(
    rules: Iterable[str],
    setting: Setting,
    device: torch.device,
    rounds: int,
    steps: int,
    compile: bool = False,
) -> SettingTimes:
    """Time ``rules`` (and BP, always) on ``setting``, eagerly and, with ``compile``, compiled;
    rules bpfree lacks, and rules that cannot train the setting's model, are listed, not run."""
    present, missing = partition_rules(rules)
    reasons = {rule: cannot_train(rule, setting, device) for rule in present}
    untrainable = {rule: why for rule, why in reasons.items() if why is not None}
    present = tuple(rule for rule in present if rule not in untrainable)
    medians = median_step_seconds(present, setting, device, rounds, steps, compile)
    compiled = {rule: medians.pop(compiled_name(rule)) for rule in present if compile}
    eager = step_rows(medians, setting.batch)
    return SettingTimes(
        setting,
        eager,
        missing,
        step_rows(compiled, setting.batch) if compile else (),
        untrainable,
    )
