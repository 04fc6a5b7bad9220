"""A suite's report: a Markdown and a CSV table beside the paper's numbers, and its plots.

``report.md`` and ``results.csv`` hold one line per row (ours, per seed, the paper's, the
difference, the tolerance and the verdict), and ``report.md`` also the rules' feedback alignment
after their last epoch (each layer's angles and norm ratios, mean over seeds); ``curves.png`` the
mean test curve of each row with a band of ± one std over seeds (ICML Fig. 7), ``alignment.png``
the mean over layers of the cosine between each update and the true gradient, and for a slowness
suite ``slowness.png`` the mean curves with their fitted plateau curves (ICML Fig. 8). A budget
run says so in every file.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bpfree.core.figures import pyplot, save_figure
from bpfree.core.files import write_text
from bpfree.data.text import TEXT_DATASETS
from bpfree.reproduce.aggregate import RowResult, mean_curve
from bpfree.reproduce.suite import Suite

COLUMNS = (
    "row", "rule", "dataset", "seeds", "ours", "std", "per_seed", "paper", "paper_std",
    "difference", "tolerance", "verdict",
)  # fmt: skip


def budget_line(budget: int | None) -> str:
    if budget is None:
        return ""
    return (
        f"QUICK LOOK: every run stopped after {budget} epochs (budget), fewer than the paper's; "
        "these numbers are not comparable to the paper's."
    )


def _format(value: float | None, digits: int) -> str:
    if value is None:
        return ""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def table_rows(suite: Suite, results: list[RowResult], budget: int | None) -> list[dict[str, str]]:
    """One dict per row, keyed by ``COLUMNS``, values as printed."""
    digits = 3 if suite.metric == "slowness" else 2
    rows = []
    for r in results:
        paper = r.row.paper
        verdict = r.verdict + (
            f" (budget {budget} epochs)" if budget and r.value is not None else ""
        )
        rows.append(
            {
                "row": r.row.name,
                "rule": r.row.rule,
                "dataset": r.row.dataset,
                "seeds": f"{len(r.seeds)}/{r.seeds_planned}",
                "ours": _format(r.value, digits),
                "std": _format(r.std, digits),
                "per_seed": " ".join(f"{v:.2f}" for v in r.values),
                "paper": _format(paper.mean if paper else None, digits),
                "paper_std": _format(paper.std if paper else None, digits),
                "difference": _format(r.difference, digits),
                "tolerance": _format(r.row.tolerance, digits),
                "verdict": verdict,
            }
        )
    return rows


def markdown(suite: Suite, results: list[RowResult], *, budget: int | None, command: str) -> str:
    """The report as Markdown: title, source, command, the table, and the failures."""
    unit = {
        "test_acc": "test accuracy [%] after the last epoch",
        "best_test_acc": "best test accuracy [%] over the epochs",
        "slowness": "slowness [epochs]",
        "best_val_ppl": "lowest validation perplexity per token over the epochs",
    }[suite.metric]
    lines = [f"## {suite.title}", ""]
    if budget:
        lines += [f"**{budget_line(budget)}**", ""]
    lines += [
        f"Source: {suite.source}. Metric: {unit}; ours is the mean ± sample std over seeds"
        + (
            " (slowness: eq. 8 fitted to the seeds' mean test curve)"
            if suite.metric == "slowness"
            else ""
        )
        + f". Seeds {', '.join(map(str, suite.seeds))}.",
        "",
        f"    {command}",
        "",
    ]
    rows = table_rows(suite, results, budget)
    extra = suite.metric == "slowness"
    header = [
        "row",
        "seeds",
        "ours",
        "perplexity per seed" if suite.metric == "best_val_ppl" else "accuracy per seed",
        "paper",
        "difference",
        "tolerance",
        "verdict",
    ]
    if extra:
        header.insert(3, "max accuracy")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result, row in zip(results, rows, strict=True):
        ours = row["ours"] + (f" ± {row['std']}" if row["std"] else "")
        paper = row["paper"] + (f" ± {row['paper_std']}" if row["paper_std"] else "")
        cells = [row["row"], row["seeds"], ours, row["per_seed"], paper, row["difference"],
                 row["tolerance"], row["verdict"]]  # fmt: skip
        if extra:
            cells.insert(3, _format(result.fit.max_accuracy if result.fit else None, 2))
        lines.append("| " + " | ".join(cells) + " |")
    lines += final_alignment(results)
    notes = [f"- {r.row.name}: {r.row.note}" for r in results if r.row.note]
    failures = [f"- {r.row.name}, {line}" for r in results for line in _grouped(r.failures)]
    if notes:
        lines += ["", "Notes:", *notes]
    if failures:
        lines += ["", "Failed runs:", *failures]
    return "\n".join(lines) + "\n"


def final_alignment(results: list[RowResult]) -> list[str]:
    """Markdown lines: for each row whose runs log ``alignment`` (the rule's feedback against
    the forward weights, ``{layer: {quantity: value}}``), each layer's quantities after the
    last epoch, mean over seeds; no lines when no row logs it."""
    table: list[tuple[str, str, dict[str, float]]] = []
    quantities: list[str] = []
    for r in results:
        finals = [curve[-1].get("alignment") for curve in r.curves]
        if not finals or not all(finals):
            continue
        for layer, values in finals[0].items():
            means = {
                name: float(np.mean([final[layer][name] for final in finals])) for name in values
            }
            quantities += [name for name in means if name not in quantities]
            table.append((r.row.name, layer, means))
    if not table:
        return []
    lines = [
        "",
        "Feedback alignment after the last epoch (mean over the finished seeds; angles in "
        "degrees):",
        "",
        "| row | layer | " + " | ".join(q.replace("_", " ") for q in quantities) + " |",
        "|" + "---|" * (len(quantities) + 2),
    ]
    for row, layer, means in table:
        cells = [_format(means.get(q), 2) for q in quantities]
        lines.append(f"| {row} | {layer} | " + " | ".join(cells) + " |")
    return lines


def _grouped(failures: list[str]) -> list[str]:
    """ "seed 0: reason", "seed 1: reason" -> "seeds 0, 1: reason": one line per distinct reason."""
    seeds: dict[str, list[str]] = defaultdict(list)
    for failure in failures:
        seed, _, reason = failure.partition(": ")
        seeds[reason].append(seed.removeprefix("seed "))
    return [
        f"seed{'s' if len(s) > 1 else ''} {', '.join(s)}: {reason}" for reason, s in seeds.items()
    ]


def write_report(
    suite: Suite,
    results: list[RowResult],
    folder: Path,
    *,
    budget: int | None,
    command: str,
) -> list[Path]:
    """Write report.md, results.csv and the plots into ``folder``; the paths written."""
    text = markdown(suite, results, budget=budget, command=command)
    write_text(folder / "report.md", text)
    buffer = io.StringIO()
    if budget:
        buffer.write(f"# {budget_line(budget)}\n")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(table_rows(suite, results, budget))
    write_text(folder / "results.csv", buffer.getvalue())
    written = [folder / "report.md", folder / "results.csv"]
    title = suite.title + (f" (budget {budget} epochs)" if budget else "")
    for name, plot in (("curves.png", plot_curves), ("alignment.png", plot_alignment)):
        if plot(results, folder / name, title):
            written.append(folder / name)
    if suite.metric == "slowness" and plot_slowness(results, folder / "slowness.png", title):
        written.append(folder / "slowness.png")
    return written


def _plot_by_dataset(
    results: list[RowResult],
    path: Path,
    title: str,
    keep: Callable[[RowResult], bool],
    draw: Callable[[Any, RowResult], None],
    labels: Callable[[str], dict[str, str]],
) -> bool:
    """One panel per dataset of the rows that have finished runs and pass ``keep``; ``draw``
    plots a row on its panel's axes. ``False`` when nothing is drawn or matplotlib is missing."""
    panels: dict[str, list[RowResult]] = defaultdict(list)
    for r in results:
        if r.curves and keep(r):
            panels[r.row.dataset].append(r)
    plt = pyplot(path) if panels else None
    if plt is None:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for (dataset, rows), ax in zip(panels.items(), axes[0], strict=True):
        for r in rows:
            draw(ax, r)
        ax.set(xlabel="epoch", **labels(dataset))
        ax.legend(fontsize="small")
    save_figure(figure, path, title)
    return True


def _band(ax, values: np.ndarray, label: str) -> None:
    """Mean over runs (rows of ``values``) per epoch, with a ± one std band."""
    epochs = np.arange(1, values.shape[1] + 1)
    mean = values.mean(axis=0)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
    ax.plot(epochs, mean, label=label)
    ax.fill_between(epochs, mean - std, mean + std, alpha=0.25)


def plot_curves(results: list[RowResult], path: Path, title: str) -> bool:
    """Mean test accuracy (a text: validation perplexity, log scale) per epoch of each row,
    ± one std over seeds, one panel per dataset."""

    def key(r: RowResult) -> str:
        return "val_ppl" if "val_ppl" in r.curves[0][0] else "test_acc"

    def draw(ax, r: RowResult) -> None:
        values = np.array([[m[key(r)] for m in curve] for curve in r.curves])
        _band(ax, values, f"{r.row.name} ({len(r.curves)} seeds)")
        if key(r) == "val_ppl":
            ax.set_yscale("log")

    def labels(dataset: str) -> dict[str, str]:
        text = dataset in TEXT_DATASETS
        return {
            "ylabel": "validation perplexity" if text else "test accuracy [%]",
            "title": dataset,
        }

    return _plot_by_dataset(results, path, title, lambda r: True, draw, labels)


def plot_alignment(results: list[RowResult], path: Path, title: str) -> bool:
    """Per epoch, the mean over parameters of the update's cosine to the true gradient."""

    def draw(ax, r: RowResult) -> None:
        cosines = [[np.mean(list(m["update_cosine"].values())) for m in c] for c in r.curves]
        _band(ax, np.array(cosines), r.row.name)

    return _plot_by_dataset(
        results, path, title, lambda r: all("update_cosine" in m for m in r.curves[0]), draw,
        lambda dataset: {"ylabel": "cosine", "title": f"{dataset}: update against the gradient"},
    )  # fmt: skip


def plot_slowness(results: list[RowResult], path: Path, title: str) -> bool:
    """Each row's mean test curve and its fitted plateau curve (eq. 8)."""

    def draw(ax, r: RowResult) -> None:
        epochs = np.arange(1, len(r.curves[0]) + 1)
        (line,) = ax.plot(epochs, mean_curve(r.curves), label=r.row.name)
        fitted = np.linspace(0, r.fit.epochs_fitted, 200)
        ax.plot(fitted, r.fit(fitted), ":", color=line.get_color(),
                label=f"fit: s = {r.fit.slowness:.3f}")  # fmt: skip

    return _plot_by_dataset(
        results, path, title, lambda r: r.fit is not None, draw,
        lambda dataset: {"ylabel": "test accuracy [%]", "title": dataset},
    )  # fmt: skip
