"""Peak memory of a few training steps, against the depth of an MLP.

What is measured, per rule and depth (``MemorySetting``: 3 steps by default):

Every measurement starts after one warm-up step, so gradients, optimizer state and rule buffers
already exist: what is measured is the transient memory of a training step (activations kept for
the update, and temporaries), the part that depends on how the rule uses its passes.

- CUDA: ``torch.cuda.max_memory_allocated`` over the steps (peak statistics reset just before
  them) minus ``torch.cuda.memory_allocated`` just before them: the tensors the steps add at
  their peak.
- CPU, where torch keeps no allocation counter: each (rule, depth) runs in a fresh Python process
  (``python -c 'from bpfree.bench.memory import main; ...'``), which builds the model, batch,
  rule and optimizer, resets the kernel's peak resident set size (writes 5 to
  ``/proc/self/clear_refs``), reads the resident set size ``VmRSS`` of ``/proc/self/status``,
  runs the steps, then reads the peak ``VmHWM``: the result is VmHWM minus that VmRSS. The peak
  of ``resource.getrusage`` (ru_maxrss) cannot serve: it cannot be reset, and a child started by
  fork and exec starts it at its parent's peak. The child maps every block of 64 KiB or more on
  its own (``MALLOC_MMAP_THRESHOLD_``), so freed tensors leave the resident set at once; what
  the allocator keeps of smaller blocks still counts, so the CPU figure is an upper bound on the
  tensors' peak.

Results are in MiB (2**20 bytes).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bpfree.bench.suites import MEMORY, MemorySetting, Setting, partition_rules
from bpfree.bench.training_step import build_step, synchronize

MIB = 2**20
_CHILD = "import sys; from bpfree.bench.memory import main; sys.exit(main(sys.argv[1:]))"


@dataclass(frozen=True)
class MemoryTable:
    """Peak MiB of each registered rule at each depth (``mib[rule][depth]``), and the rules
    asked for that bpfree does not have."""

    memory: MemorySetting
    device: str
    mib: dict[str, dict[int, float]]
    missing: tuple[str, ...]


def what_is_measured(device: torch.device | str, steps: int) -> str:
    """The quantity behind the numbers, in words, for a table's header."""
    if torch.device(device).type == "cuda":
        return (
            f"peak CUDA memory allocated during {steps} training steps minus the memory "
            "allocated just before them (after a warm-up step), MiB"
        )
    return (
        f"peak resident set size (VmHWM) during {steps} training steps minus the resident set "
        "size just before them (after a warm-up step), MiB, each rule and depth in a fresh process"
    )


def cuda_peak_mib(rule: str, setting: Setting, device: torch.device, steps: int) -> float:
    """MiB of CUDA memory ``steps`` training steps allocate at their peak, in this process."""
    run = build_step(rule, setting, device)
    run()  # warm-up: gradients and optimizer state now exist
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    for _ in range(steps):
        run()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / MIB


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status, e.g. ``VmRSS`` or ``VmHWM``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}; peak memory on CPU needs Linux")


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as error:
        raise RuntimeError(
            f"cannot reset the peak resident set size ({error}); peak memory on CPU needs "
            "Linux's /proc/self/clear_refs"
        ) from error


def rss_peak_mib(rule: str, setting: Setting, steps: int) -> float:
    """MiB by which ``steps`` CPU training steps raise this process's peak resident set size
    above the resident set size just before them (see the module's docstring). Meaningful only
    in a fresh process: ``cpu_peak_mib`` runs it in one."""
    run = build_step(rule, setting, torch.device("cpu"))
    run()  # warm-up: gradients and optimizer state now exist
    gc.collect()
    _reset_peak_rss()
    before = _status_kib("VmRSS")
    for _ in range(steps):
        run()
    return (_status_kib("VmHWM") - before) / 1024


def _child_env() -> dict[str, str]:
    """This environment, with the folder holding ``bpfree`` first on the child's path, and
    glibc's malloc told to map every block of 64 KiB or more on its own (``MALLOC_MMAP_THRESHOLD_``)
    so that a freed tensor leaves the resident set at once: without it the threshold grows with
    use and freed blocks stay resident, and the peak says more about the allocator than the rule.
    """
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, path] if path else [root]),
        "MALLOC_MMAP_THRESHOLD_": "65536",
    }


def cpu_peak_mib(rule: str, setting: Setting, steps: int) -> float:
    """``rss_peak_mib`` measured in a fresh Python process using torch's current thread count."""
    spec = {
        "rule": rule,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "setting": dataclasses.asdict(setting),
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=_child_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"measuring the memory of {rule} on {setting.label} failed "
            f"(exit status {done.returncode}):\n{done.stderr.strip()}"
        )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["mib"])


def peak_memory_mib(rule: str, setting: Setting, device: torch.device | str, steps: int) -> float:
    """MiB that ``steps`` training steps of ``rule`` on ``setting`` take at their peak on
    ``device``, measured as the module's docstring says."""
    device = torch.device(device)
    if device.type == "cuda":
        return cuda_peak_mib(rule, setting, device, steps)
    return cpu_peak_mib(rule, setting, steps)


def memory_against_depth(
    device: torch.device | str = "cpu",
    memory: MemorySetting = MEMORY,
    rules: Iterable[str] | None = None,
) -> MemoryTable:
    """Peak memory of each rule (default: ``memory.rules``; BP always) at each of
    ``memory.depths``; rules bpfree lacks are listed in ``missing``, not run."""
    present, missing = partition_rules(memory.rules if rules is None else rules)
    mib = {
        rule: {
            depth: peak_memory_mib(rule, memory.setting(depth), device, memory.steps)
            for depth in memory.depths
        }
        for rule in present
    }
    return MemoryTable(memory, torch.device(device).type, mib, missing)


def main(argv: Sequence[str]) -> int:
    """Child process entry: ``argv[0]`` is a JSON spec (rule, steps, threads, setting); prints
    ``{"mib": ...}`` on one line."""
    spec = json.loads(argv[0])
    torch.set_num_threads(spec["threads"])
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["setting"].items()}
    mib = rss_peak_mib(spec["rule"], Setting(**fields), spec["steps"])
    sys.stdout.write(json.dumps({"mib": mib}) + "\n")
    return 0
