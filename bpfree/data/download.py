"""Fetching published dataset files: checksummed, atomic downloads and safe archive extraction."""

import hashlib
import http.client
import logging
import os
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from bpfree.data.errors import DataError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def download(url: str, dest: Path, md5: str, *, timeout: float = 10.0) -> Path:
    """Download url to dest, checking its md5; dest appears whole and verified or not at all."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as err:
        raise DataError(
            f"{dest.parent}: cannot write there ({err}); choose a writable data folder"
        ) from err
    logger.info("downloading %s to %s", url, dest)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DataError(
                f"{url}: checksum mismatch (md5 {digest.hexdigest()}, expected {md5}); "
                "the download is corrupt or the server holds a different file"
            )
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException) as err:
        raise DataError(f"cannot download {url} ({err})") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def extract(archive: Path, folder: Path) -> None:
    """Unpack a .tar.gz or .zip archive into folder (``extract_tar``, ``extract_zip``)."""
    (extract_zip if archive.name.endswith(".zip") else extract_tar)(archive, folder)


def extract_tar(archive: Path, folder: Path) -> None:
    """Unpack a .tar.gz archive into folder, refusing members that would land outside it."""
    logger.info("extracting %s into %s", archive, folder)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(folder, filter="data")
    except (OSError, EOFError, tarfile.TarError) as err:
        message = f"{archive}: cannot extract ({err}); the archive is corrupt or unsafe"
        raise DataError(message) from err


def extract_zip(archive: Path, folder: Path) -> None:
    """Unpack a .zip archive into folder, refusing members that would land outside it."""
    logger.info("extracting %s into %s", archive, folder)
    root = folder.resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                target = (root / member).resolve()
                if not target.is_relative_to(root):
                    raise DataError(f"{archive}: member {member!r} would land outside {folder}")
            bundle.extractall(folder)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        message = f"{archive}: cannot extract ({err}); the archive is corrupt or unsafe"
        raise DataError(message) from err
