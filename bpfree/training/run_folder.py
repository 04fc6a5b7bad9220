"""A run's folder: what the run is, how far it got, and its files, never half-written.

Files: ``config.yaml`` (the resolved settings), ``metrics.jsonl`` (one row per finished epoch),
``checkpoint.pt`` (the latest finished epoch: its number, config, metrics and training state),
``checkpoint.prev.pt`` (the one before it), the plots, and a text run's ``tokenizer.json``
(trained on its training split, read back when it resumes).

- The checkpoint is the truth: it holds the metrics of every epoch it includes, and
  ``metrics.jsonl`` is rewritten from it when a run resumes. An epoch is saved checkpoint first,
  so whatever a kill interrupts, the files agree with the checkpoint or trail it.
- Every file is replaced atomically (``core.files``); the previous checkpoint is kept, and used
  when the latest cannot be read.
- Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers
  only, so a crafted file cannot run code.
- One process writes a folder at a time: ``writing()`` holds an exclusive lock on ``.lock``
  (released when the process ends, however it ends); a second writer gets an error naming the
  process that holds it.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from bpfree.core.files import (
    TEMPORARY_SUFFIX,
    atomic_write,
    remove_stale_temporaries,
    write_text,
)
from bpfree.core.locks import Locked, exclusive_lock, is_locked

logger = logging.getLogger(__name__)

CHECKPOINT_KEYS = frozenset({"epoch", "config", "metrics", "training", "data_order"})


class RunFolderError(ValueError):
    """A run folder that cannot be used as it is; the message names the file and what to do."""


class FolderInUse(RunFolderError):
    """Another process writes the run folder now."""


class RunFolder:
    """A run's files (see the module's docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoint = self.path / "checkpoint.pt"
        self.previous_checkpoint = self.path / "checkpoint.prev.pt"
        self.curves = self.path / "curves.png"
        self.alignment = self.path / "alignment.png"
        self.tokenizer = self.path / "tokenizer.json"
        self.lock = self.path / ".lock"
        self._writing = False

    @contextmanager
    def writing(self) -> Iterator[RunFolder]:
        """Create the folder if needed and hold it as its only writer for the block."""
        with ExitStack() as held:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                held.enter_context(exclusive_lock(self.lock))
            except Locked as locked:
                raise FolderInUse(
                    f"run folder {self.path} is in use by process {locked.holder} (another "
                    "bpfree command writing it); wait for it to finish, or pass another --out"
                ) from None
            except OSError as error:
                raise RunFolderError(_os_message(self.path, error)) from None
            for name in (
                self.config,
                self.metrics,
                self.checkpoint,
                self.previous_checkpoint,
                self.curves,
                self.alignment,
                self.tokenizer,
            ):
                remove_stale_temporaries(self.path, name.name)
            self._writing = True
            try:
                yield self
            finally:
                self._writing = False

    def in_use(self) -> bool:
        """Whether another process writes this folder now."""
        return is_locked(self.lock)

    def saved_config(self) -> dict[str, Any] | None:
        """The settings in ``config.yaml``, or None when there is none."""
        if not self.config.exists():
            return None
        try:
            values = yaml.safe_load(self.config.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise RunFolderError(
                f"{self.config} cannot be read as YAML ({type(error).__name__}); restore it, or "
                "move the folder away to start the run again"
            ) from None
        if not isinstance(values, dict):
            raise RunFolderError(f"{self.config} is not a mapping of settings; restore it")
        return values

    def write_config(self, config: dict[str, Any]) -> None:
        self._write(self.config, lambda: write_text(self.config, yaml.safe_dump(config)))

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``, one per finished epoch (none when it is missing)."""
        if not self.metrics.exists():
            return []
        rows = []
        try:
            lines = self.metrics.read_text().splitlines()
            for number, line in enumerate(lines, 1):
                if line.strip():
                    rows.append(json.loads(line))
                    if not isinstance(rows[-1], dict) or "epoch" not in rows[-1]:
                        raise ValueError(f"line {number} has no epoch")
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise RunFolderError(
                f"{self.metrics} is damaged ({error}); the checkpoint holds the metrics: run the "
                "same command again to rewrite it"
            ) from None
        return rows

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        self._write(self.metrics, lambda: write_text(self.metrics, text))

    def finished_epochs(self) -> int:
        """How many epochs ``metrics.jsonl`` holds (a lower bound of the checkpoint's)."""
        try:
            return len(self.read_metrics())
        except RunFolderError:
            return 0

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Write the checkpoint of an epoch; the latest one becomes the previous one."""
        missing = CHECKPOINT_KEYS - set(checkpoint)
        if missing:
            raise ValueError(f"a checkpoint needs the keys {sorted(missing)}")

        def keep_previous() -> None:
            # a second name for the latest, then renamed over the previous: checkpoint.pt keeps
            # its name until the new one replaces it, whenever an interrupt comes
            if self.checkpoint.exists():
                link = self.path / f".{self.previous_checkpoint.name}.link{TEMPORARY_SUFFIX}"
                link.unlink(missing_ok=True)
                try:
                    os.link(self.checkpoint, link)
                except OSError:  # a file system without hard links
                    shutil.copyfile(self.checkpoint, link)
                os.replace(link, self.previous_checkpoint)

        buffer = io.BytesIO()  # serialised first, so that a full disk is an OSError naming it
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        self._write(
            self.checkpoint,
            lambda: atomic_write(
                self.checkpoint, lambda f: f.write(data), before_replace=keep_previous
            ),
        )

    def load_checkpoint(
        self,
        map_location: str | torch.device = "cpu",
        restore: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any] | None:
        """The latest usable checkpoint, or None when the run has none.

        A checkpoint is usable when it can be read and ``restore(checkpoint)``, if given,
        accepts it (it raises ``RunFolderError`` to refuse it). When the latest is not usable
        the previous one is taken, with a warning; when neither is, the error names both files,
        what is wrong with each, and what to do."""
        problems = []
        for path in (self.checkpoint, self.previous_checkpoint):
            if not path.exists() and not path.is_symlink():
                continue
            try:
                checkpoint = _read_checkpoint(path, map_location)
                if restore is not None:
                    try:
                        restore(checkpoint)
                    except RunFolderError as error:
                        raise RunFolderError(f"{path}: {error}") from None
            except RunFolderError as error:
                problems.append(str(error))
                continue
            if problems:
                logger.warning("%s; resuming from %s instead", problems[0], path.name)
                self._set_aside(self.checkpoint)
            return checkpoint
        if problems:
            raise RunFolderError(
                "; ".join(problems) + f". Move {self.path} away (or pass --out) to start again"
            )
        return None

    def _set_aside(self, path: Path) -> None:
        """Rename an unusable file to ``<name>.damaged`` (kept for inspection), so that the next
        save does not make it the previous checkpoint in place of a good one."""
        if self._writing and path.exists():
            os.replace(path, path.with_name(path.name + ".damaged"))

    def _write(self, path: Path, write) -> None:
        try:
            write()
        except OSError as error:
            raise RunFolderError(_os_message(path, error)) from None


def _read_checkpoint(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """One checkpoint file, read safely, with its keys checked."""
    if path.is_dir():
        raise RunFolderError(f"{path} is a folder, not a checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # any unpickling or format failure: the file cannot be trusted
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RunFolderError(f"{path} cannot be read ({reason[:200]})") from None
    if not isinstance(checkpoint, dict) or not set(checkpoint) >= CHECKPOINT_KEYS:
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise RunFolderError(f"{path} is not a bpfree checkpoint (it holds {keys})")
    kinds = {"epoch": int, "config": dict, "metrics": list, "training": dict}
    wrong = [key for key, kind in kinds.items() if not isinstance(checkpoint[key], kind)]
    if wrong or len(checkpoint["metrics"]) != checkpoint["epoch"]:
        raise RunFolderError(f"{path} is damaged (its {', '.join(wrong) or 'metrics'} do not fit)")
    return checkpoint


def _os_message(path: Path, error: OSError) -> str:
    """What went wrong with a file of the run folder, and what to do."""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device to write {path}: free some space and run again"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path} ({error.strerror}): choose a writable --out"
    return f"cannot write {path} ({error.strerror or error}): choose another --out"
