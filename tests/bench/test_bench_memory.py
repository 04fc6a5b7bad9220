"""Peak memory of training steps: measured in a fresh process on CPU, one row per rule."""

import pytest

from bpfree.bench import memory
from bpfree.bench.memory import memory_against_depth, peak_memory_mib, what_is_measured
from bpfree.bench.report import NOT_IN_BPFREE, memory_table
from bpfree.bench.suites import MemorySetting, Setting


def _two_layer_1024(batch: int) -> Setting:
    return Setting("mlp", (784,), batch, (1024, 1024))


def test_cpu_peak_is_positive_and_a_large_batch_takes_more():
    small = peak_memory_mib("bp", _two_layer_1024(8), "cpu", steps=1)
    large = peak_memory_mib("bp", _two_layer_1024(4096), "cpu", steps=1)
    # The first step creates gradients and momentum of 1.9 M weights (~14 MiB) at any batch;
    # batch 4096 adds activations of 4096 × 1024 floats (16 MiB) per hidden tensor.
    assert small > 0
    assert large > small + 16


def test_a_failing_child_names_the_rule_and_its_error():
    with pytest.raises(RuntimeError, match=r"(?s)no-such-rule.*unknown rule"):
        peak_memory_mib("no-such-rule", _two_layer_1024(8), "cpu", steps=1)


def test_memory_table_measures_each_registered_rule_at_each_depth(monkeypatch):
    measured = []

    def fake(rule, setting, device, steps):
        measured.append((rule, setting.hidden, steps))
        return float(len(setting.hidden or ()))

    monkeypatch.setattr(memory, "peak_memory_mib", fake)
    depths = MemorySetting(
        rules=("pepita", "some-future-rule"), depths=(2, 4), width=16, batch=4, steps=3
    )
    table = memory_against_depth("cpu", depths)
    assert table.mib == {"bp": {2: 2.0, 4: 4.0}, "pepita": {2: 2.0, 4: 4.0}}
    assert table.missing == ("some-future-rule",)
    assert ("pepita", (16, 16, 16, 16), 3) in measured
    text = memory_table(table)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| rule | 2 layers | 4 layers |"
    assert rows[1:] == [
        "| bp | 2.0 | 4.0 |",
        "| pepita | 2.0 | 4.0 |",
        f"| some-future-rule | {NOT_IN_BPFREE} | - |",
    ]
    assert what_is_measured("cpu", 3) in text


def test_what_is_measured_names_the_counter():
    assert "VmHWM" in what_is_measured("cpu", 3)
    assert "3 training steps" in what_is_measured("cpu", 3)
    assert "CUDA memory allocated" in what_is_measured("cuda", 2)
