"""Where data lives, and downloading it safely.

Data is looked for in ``$MLAB_DATA_DIR`` (set by you or by CI), then in system packages, then
in the cache ``$MLAB_CACHE_DIR`` (default ``~/.cache/mlab``); only then is it downloaded into
the cache. A download goes to a temporary file beside its destination, is verified, and only
then renamed into place (``os.replace`` is atomic on one file system), so an interrupted or
corrupt download never leaves a file that a later run would trust.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mlab.errors import DataError

__all__ = ["cache_dir", "data_dir", "download"]

_CHUNK = 1 << 16


def data_dir() -> Path | None:
    """``$MLAB_DATA_DIR`` when set (and not empty), else None."""
    value = os.environ.get("MLAB_DATA_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Where downloads are kept: ``$MLAB_CACHE_DIR``, by default ``~/.cache/mlab``."""
    value = os.environ.get("MLAB_CACHE_DIR")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "mlab"


def download(
    url: str,
    dest: Path,
    *,
    verify: Callable[[Path], object] | None = None,
    offline_help: str = "",
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, atomically: the bytes go to a
    temporary file in ``dest``'s folder, ``verify(tmp_path)`` (which raises on a bad file)
    checks them, and only then is the file renamed to ``dest``. On any failure the temporary
    file is deleted and ``DataError`` says what happened; a network failure's message ends
    with ``offline_help``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            received, total = _fetch(url, out, dest.name, timeout)
        if total is not None and received != total:
            raise DataError(
                f"the download of {url} was interrupted: received {received} of {total} "
                "bytes. Nothing was saved; run again to retry."
            )
        if verify is not None:
            try:
                verify(tmp)
            except DataError as err:
                raise DataError(
                    f"the file downloaded from {url} failed verification, so it was not saved "
                    f"(a broken mirror or a changed file): {err}"
                ) from None
        os.replace(tmp, dest)
    except http.client.IncompleteRead as err:
        raise DataError(
            f"the download of {url} was interrupted after {len(err.partial)} bytes. "
            "Nothing was saved; run again to retry."
        ) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise DataError(f"could not download {url}: {reason}.\n{offline_help}".rstrip()) from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _fetch(url: str, out: BinaryIO, label: str, timeout: float) -> tuple[int, int | None]:
    """Stream ``url`` into the binary file ``out``; return (bytes received, Content-Length)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        received = 0
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        with progress:
            task = progress.add_task(f"downloading {label}", total=total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                progress.update(task, advance=len(chunk))
    return received, total
