"""Training-step time of every rule against BP's, measured in one process; one MNIST epoch each.

    python benchmarks/step_time.py                  # the issue's three settings, CPU
    python benchmarks/step_time.py --device cuda    # the same on a GPU
    BPFREE_DATA=DIR python benchmarks/step_time.py --epoch   # also one real MNIST epoch per rule

A step is ``rule.step(x, y)`` followed by ``optimizer.step()`` (SGD, momentum 0.9). Rules are
timed round-robin, so a slow phase of the machine hits them all alike; the table gives the
median step time and its ratio to BP's on the same model and batch.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import bpfree
from bpfree.models import MLP

RULES = ("bp", "fa", "dfa", "drtp", "pepita")
SETTINGS = (((784, 1024, 10), 64), ((784, 1024, 10), 256), ((3072, 1024, 1024, 10), 64))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def make(rule: str, sizes, device) -> tuple[bpfree.rules.Rule, torch.optim.Optimizer]:
    activation = "tanh" if rule == "drtp" else "relu"
    model = MLP(sizes, activation=activation, dropout=0.1).to(device)
    return bpfree.build(rule, model).to(device), torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_times(sizes, batch: int, device, rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per step of each rule, over ``rounds`` round-robin bursts of ``steps``."""
    x = torch.rand(batch, sizes[0], device=device)
    y = torch.randint(0, sizes[-1], (batch,), device=device)
    runs = {rule: make(rule, sizes, device) for rule in RULES}
    samples: dict[str, list[float]] = {rule: [] for rule in RULES}
    for round_ in range(rounds + 1):
        for rule, (learner, optimizer) in runs.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                learner.step(x, y)
                optimizer.step()
            sync(device)
            if round_ > 0:  # the first round warms up
                samples[rule].append((time.perf_counter() - start) / steps)
    return {rule: statistics.median(times) for rule, times in samples.items()}


def epoch_times(device, data_dir: str | None) -> dict[str, float]:
    """Seconds of one MNIST training epoch (784-1024-10, batch 64) per rule."""
    data = bpfree.data.load_dataset("mnist", data_dir, device=device, download=False)
    batches = bpfree.data.Batches(
        data.train_x, data.train_y, 64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    seconds = {}
    for rule in RULES:
        learner, optimizer = make(rule, (784, 1024, 10), device)
        sync(device)
        start = time.perf_counter()
        for x, y in batches:
            learner.step(x, y)
            optimizer.step()
        sync(device)
        seconds[rule] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15, help="round-robin bursts per rule")
    parser.add_argument("--steps", type=int, default=20, help="steps per burst")
    parser.add_argument("--epoch", action="store_true", help="also time one real MNIST epoch")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"machine: {machine()}, device {device}\n")
    print("| model | batch | " + " | ".join(RULES) + " |")
    print("|---|---|" + "---|" * len(RULES))
    for sizes, batch in SETTINGS:
        times = step_times(sizes, batch, device, args.rounds, args.steps)
        cells = [f"{times[r] * 1e3:.2f} ms ({times[r] / times['bp']:.2f}x)" for r in RULES]
        print(f"| {'-'.join(map(str, sizes))} | {batch} | " + " | ".join(cells) + " |")
    if args.epoch:
        seconds = epoch_times(device, args.data_dir)
        print("\none MNIST epoch, 784-1024-10, batch 64 (rule step + optimizer step):")
        print("| " + " | ".join(RULES) + " |\n|" + "---|" * len(RULES))
        print("| " + " | ".join(f"{seconds[r]:.2f} s" for r in RULES) + " |")


if __name__ == "__main__":
    main()
