"""One real epoch per rule: every rule timed, the fastest round kept, the table's ratio to BP."""

from types import SimpleNamespace

import torch

from bpfree.bench import epoch
from bpfree.bench.epoch import epoch_seconds
from bpfree.bench.report import epoch_table
from bpfree.data import Dataset


def _tiny_mnist(n: int = 96) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    return Dataset("mnist", 10, x, y, x[:8], y[:8])


def test_epoch_keeps_the_fastest_of_the_rounds(monkeypatch):
    clock = iter([0.0, 5.0, 10.0, 12.0, 20.0, 22.0, 30.0, 39.0])  # bp 5, pepita 2, bp 2, pepita 9
    monkeypatch.setattr(epoch, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    seconds = epoch_seconds(["bp", "pepita"], _tiny_mnist(), torch.device("cpu"), rounds=2)
    assert seconds == {"bp": 2.0, "pepita": 2.0}


def test_epoch_table_gives_seconds_and_ratio_to_bp():
    table = epoch_table({"bp": 2.0, "pepita": 2.5})
    assert "| bp | 2.00 | 1.00x |" in table
    assert "| pepita | 2.50 | 1.25x |" in table
