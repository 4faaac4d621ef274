"""Feature cache: computes once, reuses, rebuilds on change, builds atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from orchestrion.data.cache import CachedFeatures, FeatureCache
from orchestrion.errors import ConfigError, DatasetError

CONFIG = {"transform": "logmag", "n_fft": 8, "hop_length": 2, "window": "hann"}


def spectrum_of_file(path: str) -> np.ndarray:
    """A variable-length (frames, 3) feature: depends on the file's bytes (module-level: picklable)."""
    data = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8).astype(np.float32)
    frames = 1 + data.size % 4
    return np.outer(np.arange(1, frames + 1, dtype=np.float32), data[:3] + data.size)


class CountingCompute:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, key: str) -> np.ndarray:
        self.calls.append(key)
        return spectrum_of_file(key)


@pytest.fixture()
def files(tmp_path: Path) -> list[str]:
    paths = []
    for i in range(6):
        path = tmp_path / "data" / f"note{i}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(bytes(range(10 + i)))
        paths.append(str(path))
    return paths


def entries(cache_dir: Path, name: str) -> list[str]:
    return sorted(p.name for p in (cache_dir / name).iterdir())


def test_first_call_computes_and_stores_the_values(tmp_path: Path, files: list[str]) -> None:
    compute = CountingCompute()
    features = FeatureCache(tmp_path / "cache").get_or_build("notes", CONFIG, files, compute, progress=False)
    assert compute.calls == files and features.was_built and len(features) == len(files)
    for i, path in enumerate(files):
        expected = spectrum_of_file(path)
        assert features[i].shape == expected.shape
        np.testing.assert_array_equal(features[i], expected)
        np.testing.assert_array_equal(features.get(path), expected)
    assert {features[i].shape[0] for i in range(len(files))} == {3, 4, 1, 2}  # variable length
    assert isinstance(features.flat, np.memmap) and np.shares_memory(features[2], features.flat)
    assert features[-1].shape == spectrum_of_file(files[-1]).shape
    flat = np.load(features.folder / "features.npy")  # a standard .npy file
    assert flat.shape == (int(features.offsets[-1]),) and flat.dtype == np.float32


def test_second_call_reuses_the_cache(tmp_path: Path, files: list[str]) -> None:
    compute = CountingCompute()
    first = FeatureCache(tmp_path / "cache").get_or_build("notes", CONFIG, files, compute, progress=True)
    again = FeatureCache(tmp_path / "cache").get_or_build("notes", dict(reversed(CONFIG.items())), files, compute)
    assert len(compute.calls) == len(files) and not again.was_built
    assert again.folder == first.folder
    for i in range(len(files)):
        np.testing.assert_array_equal(again[i], first[i])


def test_changed_config_rebuilds_and_prunes_the_old_entry(tmp_path: Path, files: list[str]) -> None:
    cache, compute = FeatureCache(tmp_path / "cache"), CountingCompute()
    first = cache.get_or_build("notes", CONFIG, files, compute, progress=False)
    second = cache.get_or_build("notes", {**CONFIG, "n_fft": 16}, files, compute, progress=False)
    assert len(compute.calls) == 2 * len(files) and second.was_built
    assert second.folder != first.folder and entries(tmp_path / "cache", "notes") == [second.folder.name]
    cache.get_or_build("notes", {**CONFIG, "n_fft": 16}, files[:-1], compute, progress=False)
    assert len(compute.calls) == 3 * len(files) - 1  # a different item list is a different entry


def test_touched_or_changed_file_rebuilds(tmp_path: Path, files: list[str]) -> None:
    cache, compute = FeatureCache(tmp_path / "cache"), CountingCompute()
    cache.get_or_build("notes", CONFIG, files, compute, progress=False)
    stat = os.stat(files[1])
    os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    rebuilt = cache.get_or_build("notes", CONFIG, files, compute, progress=False)
    assert rebuilt.was_built and len(compute.calls) == 2 * len(files)

    Path(files[3]).write_bytes(bytes(range(40)))
    changed = cache.get_or_build("notes", CONFIG, files, compute, progress=False)
    assert changed.was_built and len(compute.calls) == 3 * len(files)
    np.testing.assert_array_equal(changed[3], spectrum_of_file(files[3]))


def test_keys_need_not_be_files(tmp_path: Path, files: list[str]) -> None:
    """Several items of one file (e.g. notes of a run): keys are names, files are declared."""
    compute = CountingCompute()
    keys = [f"{files[0]}#{i}" for i in range(3)]
    features = FeatureCache(tmp_path / "cache").get_or_build(
        "segments", CONFIG, keys, lambda key: compute(key.split("#")[0])[: 1 + int(key[-1])], files=files[:1],
        progress=False,
    )
    assert len(features) == 3 and features.index_of(keys[2]) == 2
    assert [features[i].shape[0] for i in range(3)] == [1, 2, 3]


def test_failed_build_leaves_nothing_behind(tmp_path: Path, files: list[str]) -> None:
    cache = FeatureCache(tmp_path / "cache")

    def failing(key: str) -> np.ndarray:
        if key == files[3]:
            raise RuntimeError("transform crashed")
        return spectrum_of_file(key)

    with pytest.raises(RuntimeError, match="transform crashed"):
        cache.get_or_build("notes", CONFIG, files, failing, progress=False)
    assert entries(tmp_path / "cache", "notes") == []
    compute = CountingCompute()
    assert cache.get_or_build("notes", CONFIG, files, compute, progress=False).was_built
    assert len(compute.calls) == len(files)


def test_broken_entry_is_rebuilt(tmp_path: Path, files: list[str]) -> None:
    cache, compute = FeatureCache(tmp_path / "cache"), CountingCompute()
    first = cache.get_or_build("notes", CONFIG, files, compute, progress=False)
    (first.folder / "offsets.npy").unlink()
    second = cache.get_or_build("notes", CONFIG, files, compute, progress=False)
    assert second.was_built and len(compute.calls) == 2 * len(files)
    np.testing.assert_array_equal(second[0], spectrum_of_file(files[0]))


def test_parallel_build_matches_serial(tmp_path: Path, files: list[str]) -> None:
    parallel = FeatureCache(tmp_path / "a").get_or_build("notes", CONFIG, files, spectrum_of_file, progress=False, workers=2)
    for i, path in enumerate(files):
        np.testing.assert_array_equal(parallel[i], spectrum_of_file(path))


def test_bad_inputs_raise_our_errors(tmp_path: Path, files: list[str]) -> None:
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(ConfigError, match="JSON"):
        cache.get_or_build("notes", {"window": object()}, files, spectrum_of_file, progress=False)
    with pytest.raises(ConfigError, match="name"):
        cache.get_or_build("../escape", CONFIG, files, spectrum_of_file, progress=False)
    with pytest.raises(DatasetError, match=f"{files[1]}.*2 dimensions, earlier items 1"):
        cache.get_or_build(
            "notes", CONFIG, files, lambda key: np.zeros((2, 2) if key == files[1] else 3), progress=False
        )
    assert entries(tmp_path / "cache", "notes") == []


def test_empty_key_list(tmp_path: Path) -> None:
    features = FeatureCache(tmp_path / "cache").get_or_build("empty", CONFIG, [], spectrum_of_file, progress=False)
    assert len(features) == 0 and isinstance(features, CachedFeatures)
