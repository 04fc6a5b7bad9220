"""Learning curves of a run, drawn into ``curves.png`` when matplotlib is installed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bpfree.training.run_folder import atomic_write

logger = logging.getLogger(__name__)


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Plot loss and accuracy per epoch; ``False`` (and a log line) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: skipping %s (pip install bpfree[plots])", path)
        return False
    epochs = [row["epoch"] for row in rows]
    figure, (loss_axes, acc_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [row["train_loss"] for row in rows], label="train")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="training loss")
    acc_axes.plot(epochs, [row["train_acc"] for row in rows], label="train")
    acc_axes.plot(epochs, [row["test_acc"] for row in rows], label="test")
    acc_axes.set(xlabel="epoch", ylabel="accuracy [%]", title="accuracy")
    acc_axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100))
    plt.close(figure)
    return True
