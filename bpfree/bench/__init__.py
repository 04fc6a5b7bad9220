"""Benchmarks: training-step time of each rule against BP's, one real epoch, peak memory
against depth, printed as Markdown tables by ``bpfree bench`` (``add_arguments``, ``run``)."""

from bpfree.bench.command import add_arguments, run
from bpfree.bench.machine import Machine, machine
from bpfree.bench.memory import MemoryTable, memory_against_depth, peak_memory_mib
from bpfree.bench.step_time import SettingTimes, StepTime, step_rows, time_setting
from bpfree.bench.suites import MEMORY, SUITES, MemorySetting, Setting, Suite, get_suite

__all__ = [
    "MEMORY",
    "SUITES",
    "Machine",
    "MemorySetting",
    "MemoryTable",
    "Setting",
    "SettingTimes",
    "StepTime",
    "Suite",
    "add_arguments",
    "get_suite",
    "machine",
    "memory_against_depth",
    "peak_memory_mib",
    "run",
    "step_rows",
    "time_setting",
]
