"""Files written whole or not at all: a crash, a kill or a full disk leaves the old version.

A file is written beside its target under a temporary name, flushed to disk, renamed over the
target, and the folder is flushed so that the rename itself survives a power loss. A failed
write removes its temporary file. Files get the permissions the umask allows (0666 & ~umask),
as ``open`` would give them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | Path,
    write: Callable[[BinaryIO], None],
    *,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Write ``path`` through ``write(file)`` so that it is replaced whole or not at all.

    ``before_replace`` runs once the new content is safely on disk, just before it takes the
    target's name (to move the old file aside, say)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def write_text(path: str | Path, text: str) -> None:
    """``atomic_write`` of a text, UTF-8."""
    atomic_write(path, lambda file: file.write(text.encode()))


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path, name: str) -> None:
    """Remove the temporary files a killed ``atomic_write`` of ``folder / name`` left behind."""
    for stale in folder.glob(f".{name}.*{TEMPORARY_SUFFIX}"):
        stale.unlink(missing_ok=True)
