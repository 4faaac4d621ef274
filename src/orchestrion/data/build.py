"""The machinery every dataset builder shares: sharding, worker processes, resuming, manifests.

A build is a list of items, each with a unique key and the parameters a worker needs. A
worker renders one item, writes its files atomically, and returns an `ItemResult` listing
them. The result is saved as `<out>/.build/items/<key>.json`; an item whose record exists
and whose files are all still there is finished, so an interrupted build picks up where it
stopped. `manifest.json` is recomputed from the records of all finished items, sorted by
key, so a resumed build ends with exactly the manifest of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from orchestrion.errors import ConfigError
from orchestrion.files import atomic_output, remove_stale_parts

BUILD_DIR = ".build"
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class BuildItem:
    """One unit of work: `key` names it uniquely (and its record file), `params` feed the worker."""

    key: str
    params: dict[str, Any]


@dataclass
class ItemResult:
    """What a worker wrote for one item: file paths (relative to the output folder) and audio seconds."""

    key: str
    files: list[str]
    duration_s: float = 0.0
    split: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Shard:
    """Shard k of n (0-based k): this process builds the items whose index i has i % n == k."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """Parse "k/N" with 0 <= k < N."""
        if not text:
            return cls()
        try:
            k, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard must look like k/N (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= k < n:
            raise ConfigError(f"--shard {text}: need 0 <= k < N")
        return cls(k, n)

    def select(self, items: Sequence[BuildItem]) -> list[BuildItem]:
        return [item for i, item in enumerate(items) if i % self.count == self.index]


@dataclass
class BuildReport:
    """What one run of a builder did: of its `total` items, `built` were written now,
    `skipped` were already there, and `left_out` ran now but wrote nothing (a piece that
    cannot be used, counted in the manifest with its reason)."""

    out_dir: Path
    total: int
    built: int
    skipped: int
    manifest: dict[str, Any]
    left_out: int = 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (sorted keys, stable bytes)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def current_command() -> str:
    """The command line that started this process, for manifests and model cards."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("orchestrion", "__main__.py")):
        argv[0] = "orchestrion"
    return shlex.join(argv)


def _record_path(out_dir: Path, key: str) -> Path:
    return out_dir / BUILD_DIR / "items" / f"{key}.json"


def is_finished(out_dir: Path, key: str) -> bool:
    """True when the item's record exists and every file it lists is on disk."""
    record = _record_path(out_dir, key)
    if not record.is_file():
        return False
    try:
        files = json.loads(record.read_text())["files"]
    except (json.JSONDecodeError, KeyError):
        return False
    return all((out_dir / name).is_file() for name in files)


def _finish(out_dir: Path, result: ItemResult) -> None:
    result.checksums = {name: file_sha256(out_dir / name) for name in result.files}
    write_json(_record_path(out_dir, result.key), asdict(result))


def load_records(out_dir: Path) -> list[dict[str, Any]]:
    """The records of every finished item, sorted by key."""
    folder = out_dir / BUILD_DIR / "items"
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(records, key=lambda r: r["key"])


def write_manifest(out_dir: Path, dataset: str, config: dict[str, Any], total: int) -> dict[str, Any]:
    """Recompute manifest.json from the finished items' records."""
    records = load_records(out_dir)
    splits: dict[str, int] = {}
    for record in records:
        splits[record["split"] or "all"] = splits.get(record["split"] or "all", 0) + 1
    manifest = {
        "dataset": dataset,
        "config": config,
        "command": config.get("command", ""),
        "items_planned": total,
        "items_finished": len(records),
        "complete": len(records) >= total,
        "files": sum(len(r["files"]) for r in records),
        "audio_seconds": round(sum(r["duration_s"] for r in records), 3),
        "splits": dict(sorted(splits.items())),
        "checksums": {name: digest for r in records for name, digest in sorted(r["checksums"].items())},
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def check_same_settings(
    out_dir: Path, config: dict[str, Any], ignore: tuple[str, ...] = ("command", "limit")
) -> None:
    """Refuse to resume into a folder built with other settings (its pieces would not match).

    Raises
    ------
    ConfigError
        Naming the settings that differ from the folder's manifest.
    """
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return
    config = json.loads(json.dumps(config))  # tuples -> lists, as the manifest stores them
    try:
        previous = json.loads(path.read_text()).get("config", {})
    except (OSError, json.JSONDecodeError):
        return
    differ = sorted(
        k for k in set(previous) | set(config) if k not in ignore and previous.get(k) != config.get(k)
    )
    if differ:
        details = ", ".join(f"{k} {previous.get(k)!r} -> {config.get(k)!r}" for k in differ)
        raise ConfigError(
            f"this folder holds a build made with other settings ({details}); "
            "use a new folder, or delete it to start again",
            out_dir,
        )


# Worker-process state: each process builds its own renderer once (SoundFont loaded once).
_WORKER: dict[str, Any] = {}


def _init_worker(setup: Callable[[], Any] | None) -> None:
    _WORKER["state"] = setup() if setup is not None else None


def _run_one(args: tuple[Callable[[Any, Path, BuildItem], ItemResult], Path, BuildItem]) -> bool:
    """Build one item; True if it wrote files (False: left out, e.g. an unusable piece)."""
    work, out_dir, item = args
    result = work(_WORKER["state"], out_dir, item)
    _finish(out_dir, result)
    return bool(result.files)


def run_build(
    out_dir: Path,
    dataset: str,
    items: Sequence[BuildItem],
    work: Callable[[Any, Path, BuildItem], ItemResult],
    config: dict[str, Any],
    setup: Callable[[], Any] | None = None,
    workers: int = 1,
    shard: Shard = Shard(),
    progress: bool = True,
) -> BuildReport:
    """Build `items` into `out_dir` with `work(state, out_dir, item)`, resuming finished ones.

    `setup()` runs once per process and its result is passed to `work` as `state` (e.g. a
    FluidSynthRenderer). Both must be picklable top-level functions when `workers > 1`.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    check_same_settings(out_dir, config)
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise ConfigError("build items must have unique keys")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out_dir)  # a killed build's half-written files
    mine = shard.select(items)
    todo = [item for item in mine if not is_finished(out_dir, item.key)]
    written = 0
    with _progress(progress) as bar:
        task = bar.add_task(f"{dataset} -> {out_dir}", total=len(mine), completed=len(mine) - len(todo))
        for wrote in _execute(out_dir, todo, work, setup, workers):
            written += wrote
            bar.advance(task)
    manifest = write_manifest(out_dir, dataset, config, total=len(items))
    return BuildReport(out_dir, len(mine), written, len(mine) - len(todo), manifest,
                       left_out=len(todo) - written)


def _execute(
    out_dir: Path,
    todo: list[BuildItem],
    work: Callable[[Any, Path, BuildItem], ItemResult],
    setup: Callable[[], Any] | None,
    workers: int,
) -> Iterable[bool]:
    if not todo:
        return
    if workers == 1:
        _init_worker(setup)
        try:
            for item in todo:
                yield _run_one((work, out_dir, item))
        finally:
            _close_worker_state()
        return
    # spawn, not fork: forking a process that has started numba/OpenMP/torch threads can
    # deadlock the children (seen under pytest with librosa imported).
    context = mp.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(setup,)) as pool:
        yield from pool.imap_unordered(_run_one, [(work, out_dir, item) for item in todo], chunksize=1)


def _close_worker_state() -> None:
    state = _WORKER.pop("state", None)
    close = getattr(state, "close", None)
    if callable(close):
        close()


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=not enabled, transient=False,
    )
