"""The draws of a classifier-only run: balanced or dense part counts, remixes across pieces, part
gains, muted parts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from orchestrion.errors import ConfigError
from orchestrion.systems.organ.classifier_data import ClassifierDraws, ClassifierMixes
from orchestrion.systems.organ.data import OrganChunks, PieceTensors
from orchestrion.systems.organ.presets import get_preset

SMALL = {"base_width": 4, "discriminator_width": 0.125, "chunk_s": 1.0, "chunk_stride_s": 0.5}


def _quartet(piece: int, frames: int, hop: int, slots: tuple[int, ...], rhythmic: bool = False) -> PieceTensors:
    """Four parts of noise, each playing one note all along, on the given slots; `rhythmic`:
    part k sounds on every third frame from frame k instead, at its own level."""
    rng = np.random.default_rng(piece)
    rolls = np.zeros((4, 128, frames), dtype=np.float16)
    for k in range(4):
        if rhythmic:
            rolls[k, 60 + k, k::3] = 0.5 + 0.1 * k
        else:
            rolls[k, 60 + k] = 0.8
    onsets = np.zeros(rolls.shape, dtype=bool)
    onsets[:, :, 0] = rolls[:, :, 0] > 0
    stems = rng.standard_normal((4, (frames - 1) * hop)).astype(np.float32)
    return PieceTensors(f"p{piece}", slots, stems, rolls, onsets)


def _chunks(rhythmic: bool = False, **settings) -> OrganChunks:
    config = get_preset("cpu", **SMALL, **settings)
    frames = 4 * config.chunk_frames
    slot_sets = [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
    pieces = [_quartet(p, frames, config.hop_length, slots, rhythmic) for p, slots in enumerate(slot_sets)]
    return OrganChunks(pieces, config)


def _sizes(draws) -> Counter:
    return Counter(len(draw) for draw in draws)


def test_natural_draws_follow_the_chunks_and_balanced_ones_each_part_count_equally():
    natural = list(ClassifierDraws(_chunks(), epoch_size=4000, seed=0))
    # a quartet has 4, 6, 4 and 1 subsets of 1, 2, 3 and 4 parts
    assert _sizes(natural)[4] / 4000 == pytest.approx(1 / 15, abs=0.02)
    assert _sizes(natural)[2] / 4000 == pytest.approx(6 / 15, abs=0.03)
    balanced = list(ClassifierDraws(_chunks(classifier_part_sampling="balanced"), epoch_size=4000, seed=0))
    for size in (1, 2, 3, 4):
        assert _sizes(balanced)[size] / 4000 == pytest.approx(0.25, abs=0.03)
    dense = list(ClassifierDraws(_chunks(classifier_part_sampling="dense"), epoch_size=4000, seed=0))
    for size in (1, 2, 3, 4):  # in proportion to the part count: 1 : 2 : 3 : 4
        assert _sizes(dense)[size] / 4000 == pytest.approx(size / 10, abs=0.03)


def test_without_remix_a_draw_is_one_chunk_of_one_piece():
    chunks = _chunks()
    for draw in ClassifierDraws(chunks, epoch_size=300, seed=1):
        assert len({(p, start) for p, _, start, _ in draw}) == 1
        p, _, start, _ = draw[0]
        assert (p, tuple(k for _, k, _, _ in draw), start) in chunks.index


def test_remixed_draws_take_each_part_from_another_piece():
    draws = list(ClassifierDraws(_chunks(classifier_remix=1.0), epoch_size=300, seed=2))
    multi = [draw for draw in draws if len(draw) > 1]
    assert multi and len(multi) < len(draws)  # the part count still follows the chunks
    for draw in multi:
        pieces = [p for p, _, _, _ in draw]
        assert len(set(pieces)) == min(len(draw), 3)  # three pieces: a fourth part repeats one
    # half of them: both kinds occur
    half = [draw for draw in ClassifierDraws(_chunks(classifier_remix=0.5), epoch_size=600, seed=2) if len(draw) > 1]
    remixed = sum(len({p for p, _, _, _ in draw}) > 1 for draw in half) / len(half)
    assert remixed == pytest.approx(0.5, abs=0.08)


def test_part_gains_stay_within_the_setting_and_the_draws_follow_the_seed():
    chunks = _chunks(classifier_part_gain_db=3.0)
    draws = list(ClassifierDraws(chunks, epoch_size=500, seed=3))
    gains = np.array([gain for draw in draws for _, _, _, gain in draw])
    assert np.abs(gains).max() <= 3.0 and gains.std() > 1.0
    assert draws == list(ClassifierDraws(chunks, epoch_size=500, seed=3))
    assert draws != list(ClassifierDraws(chunks, epoch_size=500, seed=4))
    assert all(gain == 0.0 for draw in ClassifierDraws(_chunks(), 100, seed=3) for _, _, _, gain in draw)


def test_a_draw_sums_its_parts_at_their_gains_and_names_their_slots():
    chunks = _chunks()
    mixes = ClassifierMixes(chunks)
    i = next(i for i, (_, subset, _) in enumerate(chunks.index) if len(subset) == 3)
    p, subset, start = chunks.index[i]
    item = mixes[tuple((p, k, start, 0.0) for k in subset)]
    chunk = chunks[i]
    np.testing.assert_allclose(item["audio"].numpy(), chunk["audio"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(item["instruments"].numpy(), chunk["instruments"].numpy())
    # two parts of two pieces, one 6 dB up: the sum of the scaled parts, both pieces' slots
    remix = mixes[((0, 1, 0, 6.0), (2, 3, 5, 0.0))]
    expected = 10 ** (6 / 20) * chunks.part_audio(0, 1, 0) + chunks.part_audio(2, 3, 5)
    np.testing.assert_allclose(remix["audio"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.flatnonzero(remix["instruments"].numpy()).tolist() == [1, 11]


def test_classifier_draws_carry_the_roll_only_for_a_hinted_classifier():
    chunks = _chunks(rhythmic=True, classifier_pitch_hint=True)
    mixes = ClassifierMixes(chunks)
    i = next(i for i, (_, subset, _) in enumerate(chunks.index) if len(subset) == 3)
    p, subset, start = chunks.index[i]
    item = mixes[tuple((p, k, start, 3.0) for k in subset)]
    np.testing.assert_array_equal(item["roll"].numpy(), chunks[i]["roll"].numpy())
    remix = mixes[((0, 1, 0, 0.0), (1, 3, 5, -3.0))]  # piece 0's part 1 on slot 1, piece 1's part 3 on slot 7
    lit = remix["roll"].numpy().reshape(16, -1).max(axis=1) > 0
    assert np.flatnonzero(lit).tolist() == [1, 7] == np.flatnonzero(remix["instruments"].numpy()).tolist()
    np.testing.assert_array_equal(remix["roll"][7, :, :chunks.config.chunk_frames].numpy(),
                                  chunks.pieces[1].rolls[3, :, 5:5 + chunks.config.chunk_frames].astype(np.float32))
    assert "roll" not in ClassifierMixes(_chunks())[((0, 1, 0, 0.0),)]


def test_a_muted_part_keeps_its_notes_but_loses_its_audio_and_label():
    draws = list(ClassifierDraws(_chunks(classifier_mute_part=0.5), epoch_size=800, seed=5))
    muted = [draw for draw in draws if any(gain == -np.inf for *_, gain in draw)]
    multi = [draw for draw in draws if len(draw) > 1]
    assert len(muted) / len(multi) == pytest.approx(0.5, abs=0.06)
    assert all(len(draw) > 1 and sum(gain == -np.inf for *_, gain in draw) == 1 for draw in muted)
    chunks = _chunks(rhythmic=True, classifier_pitch_hint=True)
    item = ClassifierMixes(chunks)[((0, 1, 0, 0.0), (0, 2, 0, -np.inf))]  # part 2 (slot 2) muted
    np.testing.assert_allclose(item["audio"].numpy(), chunks.part_audio(0, 1, 0), atol=0)
    assert np.flatnonzero(item["instruments"].numpy()).tolist() == [1]
    lit = item["roll"].numpy().reshape(16, -1).max(axis=1) > 0
    assert np.flatnonzero(lit).tolist() == [1, 2]  # both parts' notes


@pytest.mark.parametrize("field, value", [("classifier_part_sampling", "even"), ("classifier_remix", 1.5),
                                          ("classifier_mute_part", 1.2), ("classifier_mute_part", -0.5),
                                          ("classifier_remix", -0.1), ("classifier_part_gain_db", -3.0)])
def test_bad_draw_settings_are_clear_errors(field, value):
    with pytest.raises(ConfigError, match=field):
        get_preset("cpu", **{field: value})
