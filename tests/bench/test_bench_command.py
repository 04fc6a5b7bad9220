"""``bpfree bench`` options: bad input named with the valid choices, the report, --out."""

import argparse

import pytest
import torch

from bpfree.bench import add_arguments, memory, run
from bpfree.bench.suites import SUITES, BenchSuite, Setting


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bpfree bench")
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--suite", "nope"], ["'nope'", "foundation", "projection"]),
        (["--rules", "bp", "ffx"], ["'ffx'", "pepita"]),
        (["--rounds", "0"], ["--rounds", "positive integer", "'0'"]),
        (["--steps", "-2"], ["--steps", "positive integer", "'-2'"]),
        (["--device", "tpu"], ["'tpu'", "cpu", "cuda"]),
    ],
)
def test_bad_options_are_named_with_the_valid_choices(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _args(*argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    for text in named:
        assert text in error


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    assert run(_args("--device", "cuda")) == 2
    assert "no CUDA GPU is available" in capsys.readouterr().err


def test_epoch_without_mnist_gives_the_data_error_before_any_timing(tmp_path, capsys):
    assert run(_args("--epoch", "--data-dir", str(tmp_path))) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("bpfree bench: error: ") and "mnist" in err
    assert "Traceback" not in err


def test_report_prints_machine_then_one_table_per_setting_and_writes_out(
    tmp_path, monkeypatch, capsys
):
    tiny = BenchSuite("foundation", ("bp", "pepita"), (Setting("mlp", (12,), 4, (8,)),) * 2)
    monkeypatch.setitem(SUITES, "foundation", tiny)
    monkeypatch.setattr(memory, "peak_memory_mib", lambda rule, setting, device, steps: 1.5)
    out_file = tmp_path / "report" / "bench.md"
    argv = ["--rounds", "1", "--steps", "1", "--memory", "--rules", "pepita", "--out"]
    assert run(_args(*argv, str(out_file))) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("machine: ")
    assert printed.count("| rule | step | ratio to BP | samples/s |") == 2
    assert printed.count("| pepita | ") == 3  # two timing tables and the memory table
    assert "| rule | 2 layers | 4 layers | 8 layers |" in printed
    assert out_file.read_text().split() == printed.split()


def test_parallel_outside_torchrun_says_how_to_launch_it(capsys, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert run(_args("--parallel")) == 2
    assert "torchrun --standalone --nproc-per-node 2 -m bpfree bench --parallel" in (
        capsys.readouterr().err
    )


def _mlp_and_conv(monkeypatch) -> None:
    """The foundation suite made of a tiny MLP and PEPITA's conv net on MNIST-sized images."""
    settings = (Setting("mlp", (12,), 4, (8,)), Setting("pepita-conv", (1, 28, 28), 4))
    monkeypatch.setitem(SUITES, "foundation", BenchSuite("foundation", ("bp",), settings))


def test_a_rule_is_left_out_of_the_models_it_cannot_train_with_a_notice(
    tmp_path, monkeypatch, capsys
):
    _mlp_and_conv(monkeypatch)
    out_file = tmp_path / "bench.md"
    argv = ["--rounds", "1", "--steps", "1", "--rules", "pepita-wm", "--out", str(out_file)]
    assert run(_args(*argv)) == 0
    out, err = capsys.readouterr()
    assert out.count("| pepita-wm | ") == 2
    assert "| pepita-wm | cannot train this model | - | - |" in out
    assert err.startswith("bpfree bench: pepita-wm left out of pepita-conv")
    assert "nn.Linear layers only" in err
    assert out_file.read_text().split() == out.split()


def test_a_rule_that_trains_no_model_of_the_suites_is_an_error_before_any_timing(
    monkeypatch, capsys
):
    _mlp_and_conv(monkeypatch)
    monkeypatch.setitem(
        SUITES, "conv", BenchSuite("conv", ("bp",), (SUITES["foundation"].settings[1],))
    )
    assert run(_args("--suite", "conv", "--rules", "pepita-wm")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("bpfree bench: error: --rules 'pepita-wm' trains no model")
