"""Markdown report and machine line."""

from bpfree.bench.machine import cpu_model, machine, mem_total_gib
from bpfree.bench.report import NOT_IN_BPFREE, markdown_table, step_time_table
from bpfree.bench.step_time import SettingTimes, step_rows
from bpfree.bench.suites import Setting


def _table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_markdown_table_has_a_header_a_separator_and_one_line_per_row():
    text = markdown_table(["a", "b"], [["1", "2"], ["3", "4"]])
    assert text.splitlines() == ["| a | b |", "| --- | --- |", "| 1 | 2 |", "| 3 | 4 |"]


def test_step_time_table_has_one_row_per_rule():
    setting = Setting("mlp", (784,), 64, (1024,))
    rows = step_rows({"bp": 0.004, "fa": 0.005, "pepita": 0.004}, setting.batch)
    text = step_time_table(SettingTimes(setting, rows, ("ff",)), rounds=3, steps=2)
    assert text.startswith("784-1024-10, batch 64 (median of 3 round-robin bursts of 2 steps")
    table = _table_rows(text)
    assert table[0] == ["rule", "step", "ratio to BP", "samples/s"]
    assert [row[0] for row in table[2:]] == ["bp", "fa", "pepita", "ff"]
    assert table[2] == ["bp", "4.00 ms", "1.00x", "16,000"]
    assert table[3][2] == "1.25x"
    assert table[5] == ["ff", NOT_IN_BPFREE, "-", "-"]


def test_machine_line_reads_cpu_model_and_ram():
    assert cpu_model("processor\t: 0\nmodel name\t: Some CPU @ 2GHz\n") == "Some CPU @ 2GHz"
    assert cpu_model("processor\t: 0\n") is None
    assert mem_total_gib("MemTotal:       2097152 kB\nMemFree: 1 kB\n") == 2.0
    line = machine("cpu").describe()
    assert line.startswith("machine: ") and "torch threads" in line and line.endswith("cpu")
