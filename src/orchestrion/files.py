"""File-system helpers: atomic output and input checks."""

from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    The temporary file keeps the target's suffix so that writers that pick a format from
    the extension (soundfile, matplotlib) still work. On any exception it is removed, so a
    failed write never leaves a half-written output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
