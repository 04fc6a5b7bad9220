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
    each weight matrix's norm."""
    plt = pyplot(path)
    if plt is None:
        return False
    epochs = [row["epoch"] for row in rows]
    figure, (angle_axes, cosine_axes, norm_axes) = plt.subplots(1, 3, figsize=(15, 4))
    for layer in rows[-1].get("alignment", {}):
        angles = [row.get("alignment", {}).get(layer, {}).get("angle") for row in rows]
        angle_axes.plot(epochs, angles, label=layer)
    angle_axes.set(xlabel="epoch", ylabel="angle [degrees]", title="feedback against Wᵀ")
    for name in rows[-1].get("update_cosine", {}):
        cosines = [row.get("update_cosine", {}).get(name) for row in rows]
        cosine_axes.plot(epochs, cosines, label=name)
    cosine_axes.set(xlabel="epoch", ylabel="cosine", title="update against the true gradient")
    for name in rows[-1].get("weights", {}):
        norms = [row.get("weights", {}).get(name, {}).get("norm") for row in rows]
        norm_axes.plot(epochs, norms, label=name)
    norm_axes.set(xlabel="epoch", ylabel="Frobenius norm", title="weight norms")
    for axes in (angle_axes, cosine_axes, norm_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    save_figure(figure, path, title)
    return True
