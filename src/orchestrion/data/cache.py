"""Feature cache: compute per-item features once, keep them in memory-mapped ``.npy`` files.

A cache entry is identified by a *fingerprint*: the SHA-256 of the sorted-key JSON of
the transform config, the item keys in order, and the path, size and modification time
(ns) of every file the dataset reads. Change the config, add/remove/reorder items or
touch a file, and the fingerprint changes, so the next `FeatureCache.get_or_build`
computes the features again. Layout::

    <cache_dir>/<name>/<fingerprint[:24]>/
        features.npy   every item's array flattened and concatenated, 1-D, memory-mapped
        offsets.npy    int64 (items + 1,): item i is features[offsets[i]:offsets[i + 1]]
        shapes.npy     int64 (items, ndim): item i's shape
        meta.json      name, fingerprint, config, keys, dtype

Items may differ in shape (e.g. spectrograms of different lengths) but not in number of
dimensions. An entry is built in a hidden temporary folder beside it and renamed into
place when complete, so a crash or a concurrent reader never sees half an entry; when
two processes build the same entry, the first rename wins. After a build, entries of the
same `name` with other fingerprints are deleted.

``features.npy`` is written without holding the features in memory: a fixed-size header
is reserved, the items are streamed after it, and the header with the final length is
written at the end (the standard NPY 1.0 format; ``numpy.load`` reads it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from orchestrion.errors import ConfigError, DatasetError, InputFileNotFoundError

CACHE_FORMAT_VERSION = 1
"""Bumped when the on-disk layout changes; part of the fingerprint."""
FINGERPRINT_LENGTH = 24
"""Hex digits of the fingerprint used as the entry's folder name."""
_NPY_MAGIC = b"\x93NUMPY\x01\x00"
_NPY_ALIGN = 64
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def canonical_json(value: Any) -> str:
    """Stable JSON text of `value`: sorted keys, no spaces; numpy scalars, Paths, dataclasses allowed."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"feature config must be JSON-like data: {exc}") from exc


def file_signature(path: str | Path) -> list[Any]:
    """[absolute path, size in bytes, modification time in ns] of an existing file."""
    path = os.path.abspath(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise InputFileNotFoundError("file not found", path) from None
    return [path, stat.st_size, stat.st_mtime_ns]


def fingerprint(config: Mapping[str, Any], keys: Sequence[str], files: Sequence[str | Path]) -> str:
    """SHA-256 hex digest identifying (config, item keys, file paths + sizes + mtimes)."""
    text = canonical_json(
        {
            "format": CACHE_FORMAT_VERSION,
            "config": config,
            "keys": list(keys),
            "files": [file_signature(f) for f in files],
        }
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _npy_header(dtype: np.dtype, length: int, header_size: int) -> bytes:
    """An NPY 1.0 header for a 1-D C-order array, padded with spaces to `header_size` bytes."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (length,)})
    body_size = header_size - len(_NPY_MAGIC) - 2
    body = text.encode("latin1")
    if len(body) + 1 > body_size:
        raise ConfigError(f"feature dtype {dtype} is too complex for the cache header")
    body = body + b" " * (body_size - len(body) - 1) + b"\n"
    return _NPY_MAGIC + struct.pack("<H", body_size) + body


def _reserved_header_size(dtype: np.dtype) -> int:
    longest = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (10**20,)})
    needed = len(_NPY_MAGIC) + 2 + len(longest) + 1
    return math.ceil(needed / _NPY_ALIGN) * _NPY_ALIGN


class CachedFeatures(Sequence):
    """Read-only access to one built cache entry.

    ``features[i]`` is item i's array, a read-only view into the memory map (no copy;
    ``np.array(features[i])`` for a writable copy, e.g. before ``torch.from_numpy``).

    Attributes
    ----------
    folder : the entry's folder.
    name, fingerprint : what the entry was built for.
    config : the transform config it was built with.
    keys : item keys in order; `index_of` maps a key back to its row.
    offsets : int64 (items + 1,) element offsets into the flat array.
    shapes : int64 (items, ndim) shape of each item.
    was_built : True if this `get_or_build` call computed the features.
    """

    def __init__(self, folder: str | Path, was_built: bool = False) -> None:
        self.folder = Path(folder)
        self.was_built = was_built
        meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        self.name: str = meta["name"]
        self.fingerprint: str = meta["fingerprint"]
        self.config: dict[str, Any] = meta["config"]
        self.keys: list[str] = list(meta["keys"])
        self.dtype = np.dtype(meta["dtype"])
        self.offsets: np.ndarray = np.load(self.folder / "offsets.npy")
        self.shapes: np.ndarray = np.load(self.folder / "shapes.npy")
        total = int(self.offsets[-1])
        self.flat: np.ndarray = (
            np.lib.format.open_memmap(self.folder / "features.npy", mode="r") if total > 0 else np.zeros(0, self.dtype)
        )
        n_items = len(self.keys)
        if self.flat.shape != (total,) or len(self.offsets) != n_items + 1 or len(self.shapes) != n_items:
            raise DatasetError("cache entry is inconsistent (sizes disagree); delete it to rebuild", self.folder)
        self._row_of = {key: row for row, key in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        index = range(len(self.keys))[index]
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.flat[start:stop].reshape(tuple(int(n) for n in self.shapes[index]))

    def index_of(self, key: str) -> int:
        """Row of item `key`."""
        try:
            return self._row_of[key]
        except KeyError:
            raise KeyError(f"{key!r} is not in cache entry {self.folder}") from None

    def get(self, key: str) -> np.ndarray:
        """Features of item `key`."""
        return self[self.index_of(key)]


class FeatureCache:
    """Builds and reopens feature cache entries under `cache_dir` (see the module docstring)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)

    def entry_folder(self, name: str, fingerprint_hex: str) -> Path:
        """Folder of the entry for `name` with this fingerprint."""
        return self.cache_dir / name / fingerprint_hex[:FINGERPRINT_LENGTH]

    def get_or_build(
        self,
        name: str,
        config: Mapping[str, Any],
        keys: Sequence[str],
        compute: Callable[[str], np.ndarray],
        files: Sequence[str | Path] | None = None,
        progress: bool = True,
        workers: int = 1,
    ) -> CachedFeatures:
        """Open the entry for (config, keys, files), computing it first if it is missing or stale.

        Parameters
        ----------
        name : a folder-safe name for the feature set, e.g. ``"nsynth-valid-logmag"``.
        config : the transform's settings (JSON-like data); any change rebuilds.
        keys : one string per item, in item order; `compute` receives them.
        compute : key -> array (any shape with the same ndim for every item, numeric dtype).
            Must be picklable (a module-level function) when `workers` > 1.
        files : the files the features are computed from, whose paths, sizes and
            modification times enter the fingerprint; None means `keys` are those files.
        progress : show a progress bar while computing.
        workers : processes computing in parallel (1 computes in this process).

        Returns
        -------
        CachedFeatures of ``len(keys)`` items; ``[i]`` is `compute(keys[i])` as stored.
        """
        if not _SAFE_NAME.match(name):
            raise ConfigError(f"cache name {name!r} must be letters, digits, '.', '_' or '-'")
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        keys = [str(k) for k in keys]
        digest = fingerprint(config, keys, keys if files is None else files)
        folder = self.entry_folder(name, digest)
        existing = self._open_if_valid(folder, digest)
        if existing is not None:
            return existing
        self._build(folder, name, digest, config, keys, compute, progress, workers)
        self._prune(folder)
        return CachedFeatures(folder, was_built=True)

    def clear(self, name: str | None = None) -> None:
        """Delete every entry of `name`, or the whole cache when `name` is None."""
        target = self.cache_dir if name is None else self.cache_dir / name
        shutil.rmtree(target, ignore_errors=True)

    @staticmethod
    def _open_if_valid(folder: Path, digest: str) -> CachedFeatures | None:
        if not (folder / "meta.json").is_file():
            return None
        try:
            features = CachedFeatures(folder)
        except (OSError, ValueError, KeyError, DatasetError):
            shutil.rmtree(folder, ignore_errors=True)
            return None
        if features.fingerprint != digest:
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return features

    def _build(
        self,
        folder: Path,
        name: str,
        digest: str,
        config: Mapping[str, Any],
        keys: list[str],
        compute: Callable[[str], np.ndarray],
        progress: bool,
        workers: int,
    ) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".build-{folder.name}-", dir=folder.parent))
        try:
            with _computed(keys, compute, workers) as arrays:
                dtype, ndim, offsets, shapes = _write_features(
                    build / "features.npy", keys, _tracked(arrays, len(keys), f"caching {name}", progress)
                )
            np.save(build / "offsets.npy", offsets)
            np.save(build / "shapes.npy", shapes)
            meta = {
                "format": CACHE_FORMAT_VERSION,
                "name": name,
                "fingerprint": digest,
                "config": json.loads(canonical_json(config)),
                "dtype": dtype.str,
                "ndim": ndim,
                "keys": keys,
            }
            (build / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            if folder.exists():  # stale or broken (a valid one was returned earlier)
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.rename(build, folder)
            except OSError:
                if not (folder / "meta.json").is_file():  # not a concurrent builder's success
                    raise
        finally:
            shutil.rmtree(build, ignore_errors=True)

    @staticmethod
    def _prune(keep: Path) -> None:
        for sibling in keep.parent.iterdir():
            if sibling != keep and sibling.is_dir() and not sibling.name.startswith(".build-"):
                shutil.rmtree(sibling, ignore_errors=True)


class _computed:
    """Context manager yielding compute(key) for each key in order, in this process or a pool."""

    def __init__(self, keys: list[str], compute: Callable[[str], np.ndarray], workers: int) -> None:
        self.keys, self.compute, self.workers = keys, compute, workers
        self.pool: Any = None

    def __enter__(self) -> Iterator[np.ndarray]:
        if self.workers == 1 or len(self.keys) < 2:
            return map(self.compute, self.keys)
        self.pool = multiprocessing.get_context().Pool(self.workers)
        chunk = max(1, min(64, len(self.keys) // (self.workers * 8)))
        return self.pool.imap(self.compute, self.keys, chunksize=chunk)

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def _tracked(items: Iterator[np.ndarray], total: int, description: str, progress: bool) -> Iterator[np.ndarray]:
    if not progress:
        return items
    from rich.progress import track

    return iter(track(items, description=description, total=total, transient=True))


def _write_features(
    path: Path, keys: list[str], arrays: Iterator[np.ndarray]
) -> tuple[np.dtype, int, np.ndarray, np.ndarray]:
    """Stream the arrays into a 1-D NPY file; return (dtype, ndim, offsets, shapes)."""
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    shape_rows: list[tuple[int, ...]] = []
    dtype: np.dtype = np.dtype(np.float32)
    ndim = 1
    header_size = 0
    with open(path, "wb") as handle:
        for row, (key, value) in enumerate(zip(keys, arrays)):
            array = np.asarray(getattr(value, "detach", lambda: value)())
            if row == 0:
                if array.dtype.kind not in "biufc":
                    raise DatasetError(f"features must be numeric, got dtype {array.dtype}", key)
                dtype, ndim = array.dtype, array.ndim
                header_size = _reserved_header_size(dtype)
                handle.write(b"\0" * header_size)
            elif array.ndim != ndim:
                raise DatasetError(f"features have {array.ndim} dimensions, earlier items {ndim}", key)
            elif array.dtype != dtype and not np.can_cast(array.dtype, dtype, "same_kind"):
                raise DatasetError(f"features have dtype {array.dtype}, earlier items {dtype}", key)
            array = np.ascontiguousarray(array, dtype=dtype)
            _write_all(handle, array)
            offsets[row + 1] = offsets[row] + array.size
            shape_rows.append(array.shape)
        if not keys:
            header_size = _reserved_header_size(dtype)
        handle.seek(0)
        handle.write(_npy_header(dtype, int(offsets[-1]), header_size))
    if len(shape_rows) != len(keys):
        raise DatasetError(f"computed {len(shape_rows)} items for {len(keys)} keys", path)
    shapes = np.asarray(shape_rows, dtype=np.int64).reshape(len(keys), ndim)
    return dtype, ndim, offsets, shapes


def _write_all(handle: BinaryIO, array: np.ndarray) -> None:
    if array.size:
        handle.write(array.reshape(-1).view(np.uint8).data)
