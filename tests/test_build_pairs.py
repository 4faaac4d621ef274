"""Timbre-transfer pairs: same notes on two instruments, sample-aligned, readable back."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrion.data.build_pairs import PairsBuildConfig, build_pairs, phrase_notes, plan_items
from orchestrion.data.pairs import PairsDataset
from orchestrion.errors import ConfigError


def onset_samples(wave: np.ndarray, frame: int = 64) -> int:
    """First frame whose energy exceeds 1 % of the peak frame's energy, in samples."""
    energy = np.add.reduceat(wave**2, np.arange(0, len(wave), frame))
    return int(np.argmax(energy > 0.01 * energy.max())) * frame


def test_pairs_build_reads_back_aligned(tmp_path):
    config = PairsBuildConfig(source="flute", target="clarinet", sample_rate=16000, pitches=(60, 66),
                              phrases=3, phrase_notes=4, note_held_s=0.5, note_release_s=0.25)
    report = build_pairs(tmp_path, config, progress=False)
    assert report.manifest["items_finished"] == 7 + 3
    dataset = PairsDataset(tmp_path)
    assert len(dataset) == 10
    assert {r.kind for r in dataset.records} == {"note", "phrase"}
    assert {r.split for r in dataset.records} <= {"train", "valid"}
    for index in range(len(dataset)):
        item = dataset[index]
        source, target = item["source"].numpy(), item["target"].numpy()
        assert source.shape == target.shape and len(source) == round(item["record"].duration_s * 16000)
        assert np.abs(source).max() > 1e-3 and np.abs(target).max() > 1e-3
        assert abs(onset_samples(source) - onset_samples(target)) <= 2 * 64 + 160  # within ~20 ms
        assert not np.allclose(source, target)  # two different timbres
    notes = PairsDataset(tmp_path, kind="note")
    assert sorted(p for r in notes.records for p in r.pitches) == list(range(60, 67))


def test_phrases_stay_in_range_and_are_seeded():
    a = phrase_notes(0, 1, 60, 72, 16, 100.0, 100)
    assert a == phrase_notes(0, 1, 60, 72, 16, 100.0, 100)
    assert a != phrase_notes(1, 1, 60, 72, 16, 100.0, 100)
    assert all(60 <= p <= 72 and e > s for p, s, e, _ in a)
    assert all(a[i + 1][1] >= a[i][2] for i in range(len(a) - 1))


def test_disjoint_ranges_are_an_error():
    with pytest.raises(ConfigError, match="share no playable pitch"):
        plan_items(PairsBuildConfig(source="flute", target="tuba", pitches=(100, 110)))
