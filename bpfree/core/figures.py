"""Figures drawn with matplotlib when it is installed, saved whole or not at all."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bpfree.core.files import atomic_write

logger = logging.getLogger(__name__)


def pyplot(path: Path | str) -> Any:
    """matplotlib's pyplot on the Agg backend, or ``None`` (and a log line naming ``path``, the
    figure that is skipped) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: skipping %s (pip install bpfree[plots])", path)
        return None
    return plt


def save_figure(figure: Any, path: Path | str, title: str | None = None) -> None:
    """Give ``figure`` its title, lay it out, write it as a PNG atomically, and close it."""
    import matplotlib.pyplot as plt

    if title:
        figure.suptitle(title)
    figure.tight_layout()
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100))
    plt.close(figure)
