"""Peak memory of training steps: measured in a fresh process on CPU, one row per rule."""

import json
import subprocess
import sys

import pytest

from bpfree.bench import memory
from bpfree.bench.memory import memory_against_depth, peak_memory_mib, what_is_measured
from bpfree.bench.report import NOT_IN_BPFREE, memory_table
from bpfree.bench.suites import MemorySetting, Setting


def _two_layer_1024(batch: int) -> Setting:
    return Setting("mlp", (784,), batch, (1024, 1024))


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


# Measures several (rule, depth) peaks in one fresh process (cheaper than one process each): the
# peak resident set size is reset before each, and freed blocks leave it (memory._child_env).
_PEAKS = """
import json, sys, torch
from bpfree.bench.memory import rss_peak_mib
from bpfree.bench.suites import Setting
torch.set_num_threads(1)
peaks = {f"{rule} {depth}": rss_peak_mib(rule, Setting("mlp", (512,), 1024, (512,) * depth), 1)
         for rule, depth in json.loads(sys.argv[1])}
print(json.dumps(peaks))
"""


def _peaks(pairs: list[tuple[str, int]]) -> dict[str, float]:
    """MiB peaks of one step, keyed "rule depth", measured by ``_PEAKS`` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAKS, json.dumps(pairs)],
        capture_output=True,
        text=True,
        env=memory._child_env(),
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_time_local_and_forward_forward_steps_hold_memory_flat_in_depth():
    """Time-local PEPITA and FF hold one layer's tensors at a time: six hidden layers of 512
    peak no higher than two. BP keeps every layer's activations for its backward pass, which
    shows the measurement sees depth: 1024 × 512 floats (2 MiB) per kept tensor and layer."""
    pairs = [(rule, depth) for rule in ("bp", "pepita-time-local", "ff") for depth in (2, 6)]
    peak = _peaks(pairs)
    assert peak["bp 2"] > 0
    assert peak["bp 6"] > peak["bp 2"] + 8
    assert peak["pepita-time-local 6"] <= peak["pepita-time-local 2"] + 1
    assert peak["ff 6"] <= peak["ff 2"] + 1


def test_pepita_holds_one_activity_per_hidden_layer_fewer_than_bp():
    """PEPITA keeps the clean activity h_l of each hidden layer until the modulated pass reaches
    it (1024 × 512 floats, 2 MiB a layer); BP's autograd keeps more per layer (the ReLU's output
    and the dropout's, about 5 MiB here): from two to six hidden layers PEPITA's peak grows by
    well under BP's growth, and at six it is below BP's."""
    pairs = [(rule, depth) for rule in ("bp", "pepita") for depth in (2, 6)]
    peak = _peaks(pairs)
    bp_growth, pepita_growth = peak["bp 6"] - peak["bp 2"], peak["pepita 6"] - peak["pepita 2"]
    assert pepita_growth <= 0.6 * bp_growth
    assert pepita_growth + 1 >= 4 * 2  # one 2 MiB activity per added layer is still held
    assert peak["pepita 6"] < peak["bp 6"]
