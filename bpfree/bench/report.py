"""The benchmark tables in Markdown: step times per setting, one MNIST epoch, memory by depth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bpfree.bench.epoch import EPOCH_SETTING
from bpfree.bench.memory import MemoryTable, what_is_measured
from bpfree.bench.step_time import SettingTimes
from bpfree.rules import get_rule

NOT_IN_BPFREE = "not in bpfree"
CANNOT_TRAIN = "cannot train this model"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table: the header, the separator, one line per row."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _missing_rows(rules: Sequence[str], columns: int, why: str = NOT_IN_BPFREE) -> list[list[str]]:
    return [[rule, why, *["-"] * (columns - 2)] for rule in rules]


def _unrun_rows(times: SettingTimes, columns: int) -> list[list[str]]:
    """The rows of the rules a setting's table names without times: not in bpfree, or unable
    to train its model."""
    return _missing_rows(times.missing, columns) + _missing_rows(
        list(times.untrainable), columns, CANNOT_TRAIN
    )


def step_time_table(times: SettingTimes, rounds: int, steps: int) -> str:
    """A setting's title line, then rule | step | ratio to BP | samples/s, one row per rule."""
    title = (
        f"{times.setting.label} (median of {rounds} round-robin bursts of {steps} steps; "
        "step = rule.step + optimizer.step):"
    )
    rows = [
        [
            row.rule,
            f"{row.seconds * 1e3:.2f} ms",
            f"{row.ratio:.2f}x",
            "-" if row.samples_per_second is None else f"{row.samples_per_second:,.0f}",
        ]
        for row in times.rows
    ]
    header = ["rule", "step", "ratio to BP", "samples/s"]
    if times.compiled:
        return f"{title}\n\n" + _with_compiled(times)
    return f"{title}\n\n" + markdown_table(header, rows + _unrun_rows(times, 4))


def _with_compiled(times: SettingTimes) -> str:
    """rule | eager | ratio to eager BP | compiled | ratio to compiled BP | compiled / eager."""
    compiled = {row.rule: row for row in times.compiled}
    rows = []
    for row in times.rows:
        fast = compiled.get(row.rule)
        if fast is None:  # the mirror phase: not a step of its own
            rows.append([row.rule, f"{row.seconds * 1e3:.2f} ms", f"{row.ratio:.2f}x"] + ["-"] * 4)
            continue
        rows.append(
            [
                row.rule,
                f"{row.seconds * 1e3:.2f} ms",
                f"{row.ratio:.2f}x",
                f"{fast.seconds * 1e3:.2f} ms",
                f"{fast.ratio:.2f}x",
                f"{fast.seconds / row.seconds:.2f}x",
                "yes" if get_rule(row.rule).uncapturable is None else "no (eager)",
            ]
        )
    header = [
        "rule",
        "eager",
        "ratio to eager BP",
        "compiled",
        "ratio to compiled BP",
        "compiled / eager",
        "captured",
    ]
    return markdown_table(header, rows + _unrun_rows(times, 7))


def epoch_table(seconds: Mapping[str, float], compiled: Mapping[str, float] | None = None) -> str:
    """rule | seconds | ratio to BP for one MNIST epoch per rule, and the same compiled."""
    title = (
        f"one MNIST epoch, {EPOCH_SETTING.label} (rule.step + optimizer.step per batch), "
        "the faster of two:"
    )
    header = ["rule", "seconds", "ratio to BP"]
    rows = [
        [rule, f"{value:.2f}", f"{value / seconds['bp']:.2f}x"] for rule, value in seconds.items()
    ]
    if compiled is not None:
        header += ["compiled", "ratio to compiled BP"]
        for row, rule in zip(rows, seconds, strict=True):
            row += [f"{compiled[rule]:.2f}", f"{compiled[rule] / compiled['bp']:.2f}x"]
    return f"{title}\n\n" + markdown_table(header, rows)


def memory_table(table: MemoryTable) -> str:
    """rule | <depth> layers ... with the MiB of each, under a title saying what is measured."""
    memory = table.memory
    title = (
        f"memory against depth on {table.device}: MLPs {memory.input_size}-"
        f"{memory.width}x<layers>-10, batch {memory.batch}; "
        f"{what_is_measured(table.device, memory.steps)}"
    )
    header = ["rule", *(f"{depth} layers" for depth in memory.depths)]
    rows = [
        [rule, *(f"{by_depth[depth]:.1f}" for depth in memory.depths)]
        for rule, by_depth in table.mib.items()
    ]
    return f"{title}\n\n" + markdown_table(header, rows + _missing_rows(table.missing, len(header)))
