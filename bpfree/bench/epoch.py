"""Seconds of one real MNIST training epoch per rule (784-1024-10, batch 64, data in memory)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import torch

from bpfree.bench.suites import Setting
from bpfree.bench.training_step import build_step, synchronize
from bpfree.data import Batches, Dataset

EPOCH_SETTING = Setting("mlp", (784,), 64, (1024,))


def epoch_seconds(
    rules: Iterable[str],
    data: Dataset,
    device: torch.device,
    rounds: int = 2,
    compile: bool = False,
) -> dict[str, float]:
    """Wall-clock seconds of one epoch over ``data.train_x`` of each rule on a fresh
    ``EPOCH_SETTING`` network (a training step per batch, batches in a seeded shuffled order):
    the fastest of ``rounds`` epochs, the rules taking turns, each rule training on from its
    previous epoch (a compiled step compiles in its first). With ``compile``, the rules' steps
    are compiled."""
    runs = {rule: build_step(rule, EPOCH_SETTING, device, compile=compile) for rule in rules}
    seconds: dict[str, float] = {}
    for _ in range(rounds):
        for rule, run in runs.items():
            order = torch.Generator().manual_seed(0)
            batches = Batches(
                data.train_x, data.train_y, EPOCH_SETTING.batch, shuffle=True, generator=order
            )
            synchronize(device)
            start = time.perf_counter()
            for x, y in batches:
                run.on(x, y)
            synchronize(device)
            seconds[rule] = min(seconds.get(rule, math.inf), time.perf_counter() - start)
    return seconds
