"""A run's learning curves and alignment, drawn when matplotlib is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpfree.core.figures import pyplot, save_figure


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Plot loss and accuracy (a text run: perplexity, log scale) per epoch; ``False`` when
    matplotlib is missing."""
    plt = pyplot(path)
    if plt is None:
        return False
    epochs = [row["epoch"] for row in rows]
    figure, (loss_axes, score_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [row["train_loss"] for row in rows], label="train")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="training loss")
    metric = "ppl" if "train_ppl" in rows[0] else "acc"
    for split, label in (("train", "train"), ("val", "validation"), ("test", "test")):
        logged = [row for row in rows if f"{split}_{metric}" in row]  # test: maybe the end only
        if logged:
            marker = "o" if len(logged) == 1 else None
            score_axes.plot(
                [r["epoch"] for r in logged],
                [r[f"{split}_{metric}"] for r in logged],
                label=label,
                marker=marker,
            )
    if metric == "ppl":
        score_axes.set(xlabel="epoch", ylabel="perplexity", title="perplexity", yscale="log")
    else:
        score_axes.set(xlabel="epoch", ylabel="accuracy [%]", title="accuracy")
    score_axes.legend()
    save_figure(figure, path, title)
    return True


def plot_alignment(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Plot, per epoch, each feedback's angle to Wᵀ, each update's cosine to the gradient and
    each weight matrix's norm (a panel of more than ``LEGEND_LINES`` lines, such as a
    transformer's parameters, draws them thin and their mean bold)."""
    plt = pyplot(path)
    if plt is None:
        return False
    epochs = [row["epoch"] for row in rows]
    figure, (angle_axes, cosine_axes, norm_axes) = plt.subplots(1, 3, figsize=(15, 4))
    angles = {
        layer: [row.get("alignment", {}).get(layer, {}).get("angle") for row in rows]
        for layer in rows[-1].get("alignment", {})
    }
    _lines(angle_axes, epochs, angles)
    angle_axes.set(xlabel="epoch", ylabel="angle [degrees]", title="feedback against Wᵀ")
    cosines = {
        name: [row.get("update_cosine", {}).get(name) for row in rows]
        for name in rows[-1].get("update_cosine", {})
    }
    _lines(cosine_axes, epochs, cosines)
    cosine_axes.set(xlabel="epoch", ylabel="cosine", title="update against the true gradient")
    norms = {
        name: [row.get("weights", {}).get(name, {}).get("norm") for row in rows]
        for name in rows[-1].get("weights", {})
    }
    _lines(norm_axes, epochs, norms)
    norm_axes.set(xlabel="epoch", ylabel="Frobenius norm", title="weight norms")
    for axes in (angle_axes, cosine_axes, norm_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    save_figure(figure, path, title)
    return True


# More lines than this in a panel are drawn without a legend, thin, with their mean in bold.
LEGEND_LINES = 12


def _lines(axes, epochs: list[int], series: dict[str, list[float | None]]) -> None:
    """One line per named series, labelled; or, past ``LEGEND_LINES``, thin unlabelled lines
    and their mean per epoch."""
    if len(series) <= LEGEND_LINES:
        for name, values in series.items():
            axes.plot(epochs, values, label=name)
        return
    for values in series.values():
        axes.plot(epochs, values, color="grey", alpha=0.3, linewidth=0.8)
    mean = [
        sum(v for v in column if v is not None) / max(1, sum(v is not None for v in column))
        for column in zip(*series.values(), strict=True)
    ]
    axes.plot(epochs, mean, color="black", linewidth=2, label=f"mean of {len(series)}")
