"""`bpfree theory`: files, summary, and every bad option as a clear error that names it."""

import csv
import json

import numpy as np
import pytest

from bpfree import cli
from bpfree.theory import alignment_time, escape_time, run, time_grid


def theory(*args):
    return cli.main(["theory", "--no-progress", *map(str, args)])


def test_theory_writes_curves_plots_and_a_summary(tmp_path, capsys):
    out = tmp_path / "fig"
    status = theory("--rule", "pepita", "afa", "--D", 60, "--lr", 1, "--t-max", 2, "--out", out)
    printed = capsys.readouterr().out
    assert status == 0
    assert {p.name for p in out.iterdir()} == {
        "curves.csv",
        "curves.json",
        "eps_g.png",
        "angles.png",
    }
    for label in ("sim/pepita", "sim/afa", "ode/pepita", "ode/afa"):
        assert label in printed
    document = json.loads((out / "curves.json").read_text())
    assert document["settings"]["D"] == 60 and document["settings"]["rules"] == ["pepita", "afa"]
    assert set(document["summary"]["ode/afa"]) == {
        "eps_g_start",
        "eps_g_end",
        "plateau_end",
        "alignment_time",
    }
    with (out / "curves.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == document["settings"]["points"]
    assert float(rows[0]["t"]) == 0.0 and float(rows[-1]["t"]) == pytest.approx(2.0)
    assert float(rows[0]["eps_g/sim/afa"]) == pytest.approx(float(rows[0]["eps_g/ode/afa"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--K", 0], "K must be a positive integer"),
        (["--M", -1], "M must be a positive integer"),
        (["--D", 0], "D must be a positive integer"),
        (["--lr", 0], "lr must be positive"),
        (["--t-max", -1], "t_max must be positive"),
        (["--kappa", -0.5], "kappa must be non-negative"),
        (["--streams", 0], "streams must be a positive integer"),
    ],
)
def test_bad_options_are_named(args, message, tmp_path, capsys):
    assert theory(*args, "--out", tmp_path / "x") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_unknown_rule_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        theory("--rule", "backprop")
    assert exit_info.value.code == 2
    assert "invalid choice: 'backprop'" in capsys.readouterr().err


def test_run_keeps_the_simulation_and_ode_on_one_grid():
    result = run(["dfa"], D=50, lr=1.0, t_max=1.0, points=5)
    assert list(result.simulations) == ["dfa"] and list(result.odes) == ["fa"]
    np.testing.assert_array_equal(result.simulations["dfa"][0].times, result.odes["fa"].times)
    np.testing.assert_allclose(
        time_grid(50, 1.0, 5), [0.0, 0.02, 0.02 ** (2 / 3), 0.02 ** (1 / 3), 1.0]
    )


def test_escape_and_alignment_times():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    assert escape_time(times, np.array([1.0, 0.95, 0.85, 0.5])) == 2.0
    assert np.isnan(escape_time(times, np.ones(4)))
    assert alignment_time(times, np.array([80.0, 30.0, 9.0, 2.0])) == 2.0
