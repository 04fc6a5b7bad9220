"""Benchmarks: training-step time of each rule against BP's, one real epoch, peak memory
against depth, and data-parallel throughput against one process, printed as Markdown tables
by ``bpfree bench`` (``add_arguments``, ``run``)."""

from bpfree.bench.command import add_arguments, run
from bpfree.bench.machine import Machine, machine
from bpfree.bench.memory import MemoryTable, memory_against_depth, peak_memory_mib
from bpfree.bench.step_time import SettingTimes, StepTime, step_rows, time_setting
from bpfree.bench.suites import MEMORY, SUITES, BenchSuite, MemorySetting, Setting, get_suite

__all__ = [
    "MEMORY",
    "SUITES",
    "BenchSuite",
    "Machine",
    "MemorySetting",
    "MemoryTable",
    "Setting",
    "SettingTimes",
    "StepTime",
    "add_arguments",
    "get_suite",
    "machine",
    "memory_against_depth",
    "peak_memory_mib",
    "run",
    "step_rows",
    "time_setting",
]
