"""A run's folder: resolved config, per-epoch metrics, checkpoint and curves, never half-written.

Every file is replaced atomically (written beside its target, flushed, then renamed over it), so a
crash or an interrupt leaves either the previous version or the new one, never a broken file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
import yaml


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` so that it is replaced whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunFolder:
    """A run's files: ``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt`` and the plots."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoint = self.path / "checkpoint.pt"
        self.curves = self.path / "curves.png"
        self.alignment = self.path / "alignment.png"

    def write_config(self, config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False)
        atomic_write(self.config, lambda f: f.write(text.encode()))

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``, one per finished epoch."""
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line]

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        atomic_write(self.metrics, lambda f: f.write(text.encode()))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write(self.checkpoint, lambda f: torch.save(state, f))

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The saved state, or ``None`` when the run has none yet."""
        if not self.checkpoint.exists():
            return None
        return torch.load(self.checkpoint, map_location=map_location, weights_only=False)
