"""A sweep's report: ``report.md`` (the best settings, the top trials, the best settings over
the final seeds beside the references), ``trials.csv`` (every trial), and Optuna's own plots of
the optimisation history and the parameter importances."""

from __future__ import annotations

import csv
import io
import statistics
import warnings
from pathlib import Path
from typing import Any

from bpfree.core.figures import pyplot, save_figure
from bpfree.core.files import write_text
from bpfree.sweep.run import final_folder
from bpfree.sweep.spec import SweepSpec
from bpfree.sweep.trial import FAILURE, FOLDER, TEST_ACC
from bpfree.training import RunFolder

TOP_TRIALS = 10


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, objective, test accuracy, epochs run, its settings."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "val_objective": trial.value,
                "test_acc": trial.user_attrs.get(TEST_ACC),
                "epochs": max(trial.intermediate_values, default=0),
                **{f"param:{k}": v for k, v in sorted(trial.params.items())},
                "failure": trial.user_attrs.get(FAILURE, ""),
                "folder": trial.user_attrs.get(FOLDER, ""),
            }
        )
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def final_results(study: Any, spec: SweepSpec, folder: Path) -> list[tuple[int, float | None]]:
    """(seed, last test accuracy, or None while unfinished) of the best settings' final runs."""
    best = study.best_trial
    results = []
    for seed in spec.final.seeds:
        run = RunFolder(final_folder(folder, best.number, seed))
        metrics = run.read_metrics() if run.metrics.exists() else []
        finished = len(metrics) == spec.final_epochs and "test_acc" in metrics[-1]
        results.append((seed, metrics[-1]["test_acc"] if finished else None))
    return results


def write_report(study: Any, spec: SweepSpec, folder: Path, command: str) -> list[Path]:
    """Write ``report.md``, ``trials.csv`` and the plots into ``folder``; the paths written."""
    rows = trial_rows(study)
    written = [folder / "report.md", folder / "trials.csv"]
    write_csv(rows, written[1])
    plots = _plots(study, spec, folder)
    write_text(written[0], _markdown(study, spec, folder, rows, command, plots))
    return written + plots


def _markdown(study, spec, folder, rows, command, plots) -> str:
    counts = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    tally = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines = [
        f"# Sweep {spec.name}",
        "",
        f"Command: `{command}`. Objective: {spec.objective} on a validation split of "
        f"{spec.base['val_fraction']} of the training set (the test set is read once per "
        "finished trial, after its last epoch, and never selects). "
        f"Pruner: {spec.pruning.kind}. Trials: {len(rows)} of {spec.trials} ({tally}).",
        "",
        "Base settings: " + ", ".join(f"`{k}: {v}`" for k, v in spec.base.items()),
        "",
    ]
    valued = [row for row in rows if row["val_objective"] is not None]  # complete or pruned
    if not any(row["state"] == "complete" for row in rows):
        return "\n".join([*lines, "No trial has completed yet."]) + "\n"
    best = study.best_trial
    lines += [
        f"## Best settings (trial {best.number}: {spec.objective} {best.value:.2f} %, "
        f"test accuracy {_percent(best.user_attrs.get(TEST_ACC))})",
        "",
        *[f"- `{name}`: {value!r}" for name, value in sorted(best.params.items())],
        "",
        f"## Top {min(TOP_TRIALS, len(valued))} trials",
        "",
        f"Validation: the objective of a complete trial ({spec.objective}); of a pruned one, "
        "its validation accuracy when it was stopped. Test: after a complete trial's last epoch.",
        "",
        *_top_table(valued),
        "",
        *_final_lines(study, spec, folder),
        *[f"![{plot.stem}]({plot.name})" for plot in plots],
    ]
    return "\n".join(lines) + "\n"


def _top_table(valued: list[dict[str, Any]]) -> list[str]:
    names = sorted({key for row in valued for key in row if key.startswith("param:")})
    header = [
        "trial",
        "state",
        "validation",
        "test",
        "epochs",
        *(n.removeprefix("param:") for n in names),
    ]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    top = sorted(valued, key=lambda row: row["val_objective"], reverse=True)[:TOP_TRIALS]
    for row in top:
        cells = [
            row["number"],
            row["state"],
            f"{row['val_objective']:.2f}",
            _percent(row["test_acc"]),
            row["epochs"],
            *(_short(row.get(n)) for n in names),
        ]
        table.append("| " + " | ".join(map(str, cells)) + " |")
    return table


def _final_lines(study: Any, spec: SweepSpec, folder: Path) -> list[str]:
    if not spec.final.seeds:
        return []
    results = final_results(study, spec, folder)
    final = spec.final_config(study.best_trial.params, spec.final.seeds[0]).resolved()
    lines = [
        f"## Best settings over {len(results)} seeds ({final.epochs} epochs, learning rate "
        f"decayed at epochs {final.decay_epochs}, validation fraction {final.val_fraction})",
        "",
        "| seed | test accuracy [%] |",
        "|---|---|",
        *[f"| {seed} | {_percent(acc)} |" for seed, acc in results],
    ]
    done = [acc for _, acc in results if acc is not None]
    if len(done) == len(results) and len(done) > 1:
        lines.append(f"| mean ± std | {statistics.mean(done):.2f} ± {statistics.stdev(done):.2f} |")
    lines += ["", *[f"- {name}: {value}" for name, value in spec.references.items()], ""]
    return lines


def _plots(study: Any, spec: SweepSpec, folder: Path) -> list[Path]:
    """Optuna's optimisation history, its per-epoch validation curves of every trial (pruned
    ones too: with successive halving they are most of the study) and its parameter
    importances, where they can be drawn; the axes named in the sweep's terms."""
    from optuna.visualization.matplotlib import (
        plot_intermediate_values,
        plot_optimization_history,
        plot_param_importances,
    )

    written = []
    # (file, Optuna's drawing, axis labels, whether its legend stays: the curves' has a line
    # per trial, whose numbers are in trials.csv)
    for name, draw, labels, legend in (
        ("history.png", plot_optimization_history, ("trial", f"{spec.objective} [%]"), True),
        ("curves.png", plot_intermediate_values, ("epoch", "validation accuracy [%]"), False),
        ("importances.png", plot_param_importances, None, True),
    ):
        path = folder / name
        if pyplot(path) is None:
            continue
        try:
            with warnings.catch_warnings():  # "experimental"; importances of equal trials
                warnings.simplefilter("ignore")
                axes = draw(study)
        except (ValueError, RuntimeError):  # too few completed trials to draw it
            continue
        if labels is not None:
            axes.set(xlabel=labels[0], ylabel=labels[1])
        if not legend and axes.get_legend() is not None:
            axes.get_legend().remove()
        save_figure(axes.figure, path)
        written.append(path)
    return written


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
