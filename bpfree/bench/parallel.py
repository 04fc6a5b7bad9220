"""Data-parallel throughput: each rule's samples per second on the replicas ``torchrun``
started against one process, both with one thread per process, and the time a step spends in
communication.

Measured in one run of ``torchrun --standalone --nproc-per-node N -m bpfree bench --parallel``:
first rank 0 alone times ``rule.step`` + ``optimizer.step`` on the global batch while the other
ranks wait; then every rank times the data-parallel step (its rows of the same batch, the
gradients averaged), each rule on a fresh training state; then every rank at once times the
step on its rows without averaging anything; last, the same with an all-reduce of as many
numbers as the gradients started (asynchronously) before each step and waited for after it.
A time is the median over ``rounds`` bursts of ``steps`` steps of the burst's mean; the
replicas' time is the slowest rank's. Communication is the time spent in the collective calls,
per step, on rank 0.

The side-by-side time bounds what any handling of the communication (overlapping it with the
step, fewer or larger buckets) could reach on the machine: it is the replicas' arithmetic alone,
run side by side on cores (and memory) they share. The overlapped time bounds what overlapping
the all-reduce with the step could reach: the whole exchange running during the whole step, as
no real overlap can (the last gradients are ready only at the step's end).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from bpfree.bench.suites import Setting
from bpfree.bench.training_step import build_step, cannot_train, random_batch
from bpfree.parallel import DataParallel, Replicas

# The settings the data-parallel benchmark times (the issue's: an MLP at global batch 256 and
# ResNet-20 at batch 128).
PARALLEL_SETTINGS = (
    Setting("mlp", (3072,), 256, (1024, 1024)),
    Setting("resnet20", (3, 32, 32), 128),
)


@dataclass(frozen=True)
class ParallelTime:
    """One rule on one setting: seconds per step alone and on the replicas, and the seconds of
    a replicated step spent communicating."""

    rule: str
    alone: float
    replicated: float
    communicating: float
    side_by_side: float
    overlapped: float

    @property
    def speedup(self) -> float:
        return self.alone / self.replicated

    @property
    def bound(self) -> float:
        """The speed-up if the replicas exchanged nothing: their arithmetic side by side."""
        return self.alone / self.side_by_side

    @property
    def overlap_bound(self) -> float:
        """The speed-up if the whole all-reduce ran during the step (see the module)."""
        return self.alone / self.overlapped


def _burst_seconds(
    stepper: DataParallel, x, y, steps: int, exchanged: torch.Tensor | None = None
) -> float:
    """Seconds per step over ``steps`` steps; with ``exchanged``, an all-reduce of it runs
    (asynchronously) during each step."""
    start = time.perf_counter()
    for _ in range(steps):
        work = None if exchanged is None else dist.all_reduce(exchanged, async_op=True)
        stepper.step(x, y)
        if work is not None:
            work.wait()
    return (time.perf_counter() - start) / steps


def _gradient_numbers(optimizer) -> int:
    return sum(
        p.numel() for group in optimizer.param_groups for p in group["params"] if p.grad is not None
    )


def _own_rows(x: torch.Tensor, y: torch.Tensor, replicas: Replicas):
    """This rank's share of the global batch (as many rows as its data-parallel step takes)."""
    share = x.shape[0] // replicas.world_size
    rows = slice(replicas.rank * share, (replicas.rank + 1) * share)
    return x[rows], y[rows]


def _slowest_median(replicas: Replicas, bursts: list[float]) -> float:
    medians = replicas.gather(statistics.median(bursts))
    return max(medians) if medians is not None else 0.0


def time_parallel(
    rule: str, setting: Setting, replicas: Replicas, rounds: int, steps: int
) -> ParallelTime:
    """``rule`` on ``setting``: alone on rank 0, then on every replica."""
    device = replicas.device
    x, y = random_batch(setting, device)
    alone = 0.0
    if replicas.is_main:
        single = build_step(rule, setting, device, (x, y))
        stepper = DataParallel(single.state.rule, single.state.optimizer, None)
        stepper.step(x, y)  # warm-up
        alone = statistics.median(_burst_seconds(stepper, x, y, steps) for _ in range(rounds))
    replicas.barrier()
    shared = build_step(rule, setting, device, (x, y))
    stepper = DataParallel(shared.state.rule, shared.state.optimizer, replicas)
    stepper.step(x, y)  # warm-up
    stepper.optimizer.seconds_communicating = 0.0
    bursts = [_burst_seconds(stepper, x, y, steps) for _ in range(rounds)]
    communicating = stepper.optimizer.seconds_communicating / (rounds * steps)
    replicated = _slowest_median(replicas, bursts)
    own_x, own_y = _own_rows(x, y, replicas)
    apart = build_step(rule, setting, device, (own_x, own_y))
    stepper = DataParallel(apart.state.rule, apart.state.optimizer, None)
    stepper.step(own_x, own_y)  # warm-up
    replicas.barrier()  # side by side: every rank starts its bursts together
    bursts = [_burst_seconds(stepper, own_x, own_y, steps) for _ in range(rounds)]
    side_by_side = _slowest_median(replicas, bursts)
    exchanged = torch.zeros(_gradient_numbers(apart.state.optimizer), device=device)
    replicas.barrier()
    bursts = [_burst_seconds(stepper, own_x, own_y, steps, exchanged) for _ in range(rounds)]
    overlapped = _slowest_median(replicas, bursts)
    return ParallelTime(rule, alone, replicated, communicating, side_by_side, overlapped)


def parallel_table(times: list[ParallelTime], setting: Setting, world_size: int) -> str:
    """rule | alone | replicas | speed-up | communication, in Markdown."""
    from bpfree.bench.report import markdown_table

    batch = setting.batch
    rows = [
        [
            t.rule,
            f"{batch / t.alone:,.0f}",
            f"{batch / t.replicated:,.0f}",
            f"{t.speedup:.2f}x",
            f"{t.communicating * 1e3:.2f} ms ({100 * t.communicating / t.replicated:.0f} %)",
            f"{t.bound:.2f}x",
            f"{t.overlap_bound:.2f}x",
        ]
        for t in times
    ]
    title = (
        f"{setting.label}: samples/s of 1 process and of {world_size} replicas, one thread each "
        "(step = rule.step + gradients averaged + optimizer.step; bound: the speed-up of the "
        "replicas' steps side by side, averaging nothing; overlapped: the same with an "
        "all-reduce of the gradients' size running during each step):"
    )
    header = [
        "rule",
        "1 process",
        f"{world_size} replicas",
        "speed-up",
        "communication / step",
        "bound",
        "overlapped",
    ]
    return f"{title}\n\n" + markdown_table(header, rows)


def parallel_tables(
    rules: list[str], replicas: Replicas, rounds: int, steps: int, settings=PARALLEL_SETTINGS
) -> list[str]:
    """One table per setting, on rank 0 (none elsewhere); rules that cannot train a setting's
    model are left out of it."""
    torch.set_num_threads(1)
    tables = []
    for setting in settings:
        times = []
        for rule in rules:
            if cannot_train(rule, setting, replicas.device) is None:
                times.append(time_parallel(rule, setting, replicas, rounds, steps))
        if replicas.is_main:
            tables.append(parallel_table(times, setting, replicas.world_size))
    return tables
