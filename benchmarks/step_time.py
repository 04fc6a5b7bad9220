"""Training-step time of each rule against BP's, measured in one process; one MNIST epoch each.

    python benchmarks/step_time.py                       # the foundation rules on three MLPs
    python benchmarks/step_time.py --suite feedback      # the feedback family, MLP and ResNet-20
    python benchmarks/step_time.py --device cuda         # the same on a GPU
    BPFREE_DATA=DIR python benchmarks/step_time.py --epoch   # also one real MNIST epoch per rule

A step is ``rule.step(x, y)`` followed by ``optimizer.step()`` (SGD, momentum 0.9, over the
model's and the rule's parameters). Rules are timed round-robin, so a slow phase of the machine
hits them all alike; the table gives the median step time and its ratio to BP's on the same
model and batch. Weight mirror is timed without its mirror phase, whose cost is printed apart.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable

import torch

import bpfree
from bpfree.data import Batches, load_dataset
from bpfree.models import build_model

SUITES: dict[str, dict] = {
    "foundation": {
        "rules": ("bp", "fa", "dfa", "drtp", "pepita"),
        "settings": (
            ("mlp", (784,), [1024], 64),
            ("mlp", (784,), [1024], 256),
            ("mlp", (3072,), [1024, 1024], 64),
        ),
    },
    "feedback": {
        "rules": ("bp", "fa", "usf", "frsf", "brsf", "kp", "wm", "pfa", "pfa-o"),
        "settings": (
            ("mlp", (784,), [1024], 64),
            ("mlp", (784,), [1024], 256),
            ("resnet20", (3, 32, 32), None, 128),
        ),
    },
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def describe(model: str, shape: tuple[int, ...], hidden: list[int] | None) -> str:
    return "-".join(map(str, (*shape, *hidden, 10))) if model == "mlp" else model


def make(rule: str, model: str, shape, hidden, device):
    """A model, the rule on it and an SGD optimizer over both, on ``device``."""
    options = {"hidden": hidden, "dropout": 0.1, "activation": "tanh" if rule == "drtp" else "relu"}
    input_shape = (1, 1, shape[0]) if model == "mlp" else shape
    net = build_model(
        model, input_shape=input_shape, num_classes=10, **(options if model == "mlp" else {})
    ).to(device)
    learner = bpfree.build(rule, net, **({"mirror_every": 0} if rule == "wm" else {})).to(device)
    optimizer = torch.optim.SGD([*net.parameters(), *learner.parameters()], lr=0.01, momentum=0.9)
    return learner, optimizer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], None], device, steps: int) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def step_times(rules, model, shape, hidden, batch, device, rounds, steps) -> dict[str, float]:
    """Median seconds per step of each rule, over ``rounds`` round-robin bursts of ``steps``."""
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    runs = {rule: make(rule, model, shape, hidden, device) for rule in rules}
    for learner, _ in runs.values():
        learner.step(x, y)  # warm-up, and WM learns which layers to mirror
    samples: dict[str, list[float]] = {rule: [] for rule in [*rules, "wm mirror"]}
    for _ in range(rounds):
        for rule, (learner, optimizer) in runs.items():

            def train_step(learner=learner, optimizer=optimizer) -> None:
                learner.step(x, y)
                optimizer.step()

            samples[rule].append(timed(train_step, device, steps))
            if rule == "wm":
                samples["wm mirror"].append(timed(learner.mirror, device, steps))
    return {rule: statistics.median(times) for rule, times in samples.items() if times}


def epoch_times(rules, device, data_dir: str | None, rounds: int = 2) -> dict[str, float]:
    """Seconds of one MNIST training epoch (784-1024-10, batch 64) per rule: the fastest of
    ``rounds`` epochs, the rules taking turns."""
    data = load_dataset("mnist", data_dir, device=device, download=False)
    seconds: dict[str, float] = {}
    for _ in range(rounds):
        for rule in rules:
            learner, optimizer = make(rule, "mlp", (784,), [1024], device)
            order = torch.Generator().manual_seed(0)
            batches = Batches(data.train_x, data.train_y, 64, shuffle=True, generator=order)
            sync(device)
            start = time.perf_counter()
            for x, y in batches:
                learner.step(x, y)
                optimizer.step()
            sync(device)
            seconds[rule] = min(seconds.get(rule, math.inf), time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="foundation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15, help="round-robin bursts per rule")
    parser.add_argument("--steps", type=int, default=20, help="steps per burst")
    parser.add_argument("--epoch", action="store_true", help="also time one real MNIST epoch")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    suite = SUITES[args.suite]
    torch.manual_seed(0)
    print(f"machine: {machine()}, device {device}\n")
    for model, shape, hidden, batch in suite["settings"]:
        times = step_times(
            suite["rules"], model, shape, hidden, batch, device, args.rounds, args.steps
        )
        print(f"{describe(model, shape, hidden)}, batch {batch}:")
        print("| rule | step | ratio to BP |\n|---|---|---|")
        for rule, seconds in times.items():
            print(f"| {rule} | {seconds * 1e3:.2f} ms | {seconds / times['bp']:.2f}x |")
        print()
    if args.epoch:
        seconds = epoch_times(suite["rules"], device, args.data_dir)
        print("one MNIST epoch, 784-1024-10, batch 64 (rule step + optimizer step):")
        print("| rule | seconds |\n|---|---|")
        for rule, value in seconds.items():
            print(f"| {rule} | {value:.2f} |")


if __name__ == "__main__":
    main()
