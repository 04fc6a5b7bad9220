"""The machine a benchmark ran on, described in one line: CPU, cores, threads, RAM, versions."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Machine:
    """What a benchmark's numbers depend on: the CPU model, its logical CPUs (``cpus``) and those
    this process may use (``usable_cpus``), the threads torch uses, the RAM in GiB, the torch
    version, and the device with, for CUDA, the GPU's name."""

    cpu: str
    cpus: int
    usable_cpus: int
    threads: int
    ram_gib: float | None
    torch_version: str
    device: str
    gpu: str | None = None

    def describe(self) -> str:
        """One line, e.g. ``machine: Intel Xeon, 2 CPUs (2 usable), 1 torch threads, ...``."""
        ram = f"{self.ram_gib:.1f} GiB RAM" if self.ram_gib is not None else "RAM unknown"
        device = f"{self.device} ({self.gpu})" if self.gpu else self.device
        return (
            f"machine: {self.cpu}, {self.cpus} CPUs ({self.usable_cpus} usable), "
            f"{self.threads} torch threads, {ram}, torch {self.torch_version}, device {device}"
        )


def cpu_model(cpuinfo: str) -> str | None:
    """The first ``model name`` of a /proc/cpuinfo text, or None when it has none."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return value.strip()
    return None


def mem_total_gib(meminfo: str) -> float | None:
    """``MemTotal`` of a /proc/meminfo text (given in KiB) in GiB, or None when it has none."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine(device: torch.device | str = "cpu") -> Machine:
    """Describe this machine and ``device`` (the CUDA device's name when it is a GPU)."""
    device = torch.device(device)
    return Machine(
        cpu=cpu_model(_read("/proc/cpuinfo")) or platform.processor() or platform.machine(),
        cpus=os.cpu_count() or 1,
        usable_cpus=len(os.sched_getaffinity(0)),
        threads=torch.get_num_threads(),
        ram_gib=mem_total_gib(_read("/proc/meminfo")),
        torch_version=torch.__version__,
        device=str(device),
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    )
