"""File-system helpers: atomic output and input checks."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orchestrion.errors import InputFileNotFoundError


def require_file(path: str | Path) -> Path:
    """Return `path` as a Path, or raise InputFileNotFoundError if it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError("file not found", path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_PART = re.compile(r"\.(?P<pid>\d+)@(?P<host>[^/]+)\.[^.]+\.part[^/]*")
"""The name of `atomic_output`'s temporary file after the target's stem:
``.<stem>.<pid>@<host>.<random>.part<suffix>``."""


def _host() -> str:
    return socket.gethostname().replace("/", "_") or "localhost"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(folder: str | Path) -> int:
    """Delete the temporary files a killed writer on this machine left under `folder`.

    A part file names the process and machine that write it; one whose process is gone is
    stale (a part of a running writer, or one written on another machine, is kept).
    Returns the number of files removed.
    """
    removed = 0
    for path in Path(folder).rglob(".*.part*"):
        match = _PART.search(path.name)
        if match is None or match.group("host") != _host() or _alive(int(match.group("pid"))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    The temporary file keeps the target's suffix so that writers that pick a format from
    the extension (soundfile, matplotlib) still work. On any exception it is removed, so a
    failed write never leaves a half-written output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}@{_host()}.",
                                    suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
