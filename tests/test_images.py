"""The 96 x 96 image codec of the compose system: encode, filter, decode, round trip."""

from __future__ import annotations

import warnings
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrion.errors import EmptyScoreError, MidiReadError
from orchestrion.symbolic import (
    DEFAULT_GRID,
    DrumTrackWarning,
    ImageGrid,
    PitchWindowWarning,
    images_to_midi,
    midi_to_images,
    score_to_image_roll,
    threshold_images,
    write_midi,
)

STEP_TICKS = 40  # 480 ticks per beat / 12 steps per beat
TOP = DEFAULT_GRID.highest_pitch  # 107: row = 107 - pitch


def step_time(step: int, tempo_bpm: float = 100.0) -> float:
    return (step * 60.0) / (tempo_bpm * 12)


def write_file(
    path: Path,
    tracks: list[tuple[int, int, list[tuple[int, int, int]]]],
    tempi: tuple[tuple[int, float], ...] = ((0, 120.0),),
    ticks_per_beat: int = 480,
) -> Path:
    """tracks: (program, channel, [(pitch, on_tick, off_tick), ...]); tempi: (tick, bpm)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = [
        (tick, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))) for tick, bpm in tempi
    ]
    all_events = [conductor]
    for program, channel, notes in tracks:
        events = [(0, 1, mido.Message("program_change", program=program, channel=channel))]
        for pitch, on, off in notes:
            note_on = mido.Message("note_on", note=pitch, velocity=90, channel=channel)
            events.append((on, 3, note_on))
            events.append((off, 2, mido.Message("note_off", note=pitch, channel=channel)))
        all_events.append(events)
    for events in all_events:
        track, now = mido.MidiTrack(), 0
        for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))
    return path


def decoded_steps(
    score: pretty_midi.PrettyMIDI, tempo_bpm: float = 100.0
) -> list[tuple[int, int, int]]:
    """(pitch, start step, end step) of every note, checking that times lie exactly on the grid."""
    notes = []
    step_s = step_time(1, tempo_bpm)
    for note in score.instruments[0].notes:
        start, end = round(note.start / step_s), round(note.end / step_s)
        assert note.start == step_time(start, tempo_bpm) and note.end == step_time(end, tempo_bpm)
        notes.append((note.pitch, start, end))
    return sorted(notes)


# A two-hand piece over three tempi: (pitch, start step, end step); ticks get a small jitter
RIGHT_HAND = [
    (72, 0, 6), (72, 6, 12), (72, 12, 18),  # re-struck eighths
    (74, 18, 22), (76, 22, 26), (77, 26, 30),  # eighth-note triplet
    (79, 30, 54), (81, 54, 56), (83, 56, 58),  # 16th-note triplets (2 steps)
    (84, 90, 102),  # held across the edge between images 1 and 2
    (72, 108, 132),  # re-strikes the left hand's C5
    (88, 150, 200),  # runs into the tail
    (60, 200, 222),  # only in the tail
    (5, 60, 70), (115, 60, 70),  # outside the pitch window 12..107
]  # fmt: skip
LEFT_HAND = [(48, 0, 48), (43, 48, 96), (72, 96, 120), (36, 120, 192)]
EXPECTED = sorted([
    (72, 0, 5), (72, 6, 11), (72, 12, 18), (74, 18, 22), (76, 22, 26), (77, 26, 30), (79, 30, 54),
    (81, 54, 56), (83, 56, 58), (84, 90, 102), (72, 96, 107), (72, 108, 132), (88, 150, 192),
    (48, 0, 48), (43, 48, 96), (36, 120, 192),
])  # fmt: skip


@pytest.fixture(scope="module")
def two_hands_file(tmp_path_factory) -> Path:
    jitter = [0, 7, -9, 19, -19, 3]

    def ticks(notes):
        return [(p, max(0, a * STEP_TICKS + jitter[i % 6]), b * STEP_TICKS + jitter[(i + 1) % 6])
                for i, (p, a, b) in enumerate(notes)]  # fmt: skip

    path = tmp_path_factory.mktemp("midi") / "two_hands.mid"
    drums = [(36, 0, 3 * STEP_TICKS), (38, 100 * STEP_TICKS, 103 * STEP_TICKS)]
    tempi = ((0, 120.0), (48 * STEP_TICKS, 75.0), (150 * STEP_TICKS, 140.0))
    tracks = [(0, 0, ticks(RIGHT_HAND)), (0, 1, ticks(LEFT_HAND)), (0, 9, drums)]
    return write_file(path, tracks, tempi)


def test_multi_track_round_trip_gives_the_quantised_notes(two_hands_file, tmp_path):
    with pytest.warns(PitchWindowWarning, match="left out 2 notes"), pytest.warns(DrumTrackWarning):
        images = midi_to_images(two_hands_file)
    assert images.shape == (2, 96, 96) and images.dtype == bool  # the 30-step tail is dropped
    decoded = images_to_midi(images)
    assert decoded_steps(decoded) == EXPECTED
    assert decoded.get_tempo_changes()[1].tolist() == [100.0]
    assert [(ts.numerator, ts.denominator) for ts in decoded.time_signature_changes] == [(4, 4)]
    assert {n.velocity for n in decoded.instruments[0].notes} == {100}
    # and the decoded file on disk encodes back to the same images
    path = write_midi(decoded, tmp_path / "decoded.mid")
    np.testing.assert_array_equal(midi_to_images(path), images)


def test_rows_put_high_pitches_on_top(two_hands_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images = midi_to_images(two_hands_file)
    assert images[0, TOP - 48, :48].all() and not images[0, TOP - 48, 48:].any()  # left hand C3
    assert images[0, TOP - 79, 30:54].all()
    # the re-struck eighths keep a one-step gap before steps 6 and 12
    gapped = [True] * 5 + [False] + [True] * 5 + [False] + [True] * 6
    assert images[0, TOP - 72, :18].tolist() == gapped


def test_empty_images_and_the_short_tail_are_dropped(tmp_path):
    notes = [(60, 0, 24), (64, 200, 230), (67, 300, 310)]
    notes = [(pitch, a * STEP_TICKS, b * STEP_TICKS) for pitch, a, b in notes]
    path = write_file(tmp_path / "gappy.mid", [(0, 0, notes)])
    # 310 steps: images 0 (note), 1 (empty), 2 (note), 3 (empty), tail of 22 steps (note)
    kept = midi_to_images(path)
    assert kept.shape == (2, 96, 96)
    assert kept[0, TOP - 60, :24].all() and kept[1, TOP - 64, 8:38].all()
    all_images = midi_to_images(path, keep_empty=True, keep_tail=True)
    assert all_images.shape == (4, 96, 96)
    assert [bool(image.any()) for image in all_images] == [True, False, True, True]
    assert all_images[3, TOP - 67, 12:22].all() and not all_images[3, :, 22:].any()


def test_a_score_shorter_than_two_bars_gives_no_images(tmp_path):
    path = write_file(tmp_path / "short.mid", [(0, 0, [(60, 0, 48 * STEP_TICKS)])])
    assert midi_to_images(path).shape == (0, 96, 96)
    assert midi_to_images(path, keep_tail=True).shape == (1, 96, 96)


def test_one_pixel_notes_are_dropped_when_decoding():
    image = np.zeros((96, 96), dtype=np.uint8)
    image[TOP - 60, 10] = 255  # one pixel
    image[TOP - 62, 20:22] = 255  # two pixels
    image[TOP - 64, 30] = image[TOP - 64, 32:40] = 255  # a pixel, then a note
    assert decoded_steps(images_to_midi(image)) == [(62, 20, 22), (64, 32, 40)]
    everything = [(60, 10, 11), (62, 20, 22), (64, 30, 31), (64, 32, 40)]
    assert decoded_steps(images_to_midi(image, min_note_steps=1)) == everything


def test_out_of_window_pitches_are_clipped_not_wrapped(tmp_path):
    notes = [(pitch, 0, 96 * STEP_TICKS) for pitch in (5, 11, 12, 107, 108, 120)]
    path = write_file(tmp_path / "wide.mid", [(0, 0, notes)])
    with pytest.warns(PitchWindowWarning, match=r"left out 4 notes .*12\.\.107"):
        dropped = midi_to_images(path)
    # only 107 (top row) and 12 (bottom row)
    assert np.flatnonzero(dropped[0].any(axis=1)).tolist() == [0, 95]
    clamped = midi_to_images(path, out_of_window="clamp")
    assert np.flatnonzero(clamped[0].any(axis=1)).tolist() == [0, 95]
    assert decoded_steps(images_to_midi(clamped)) == [(12, 0, 96), (107, 0, 96)]
    # a custom window: the 88 piano keys
    piano = ImageGrid(lowest_pitch=21, n_pitches=88)
    with pytest.warns(PitchWindowWarning, match="left out 4"):
        keys = midi_to_images(path, grid=piano)
    assert keys.shape == (1, 88, 96)  # 5, 11, 12 and 120 are outside 21..108
    assert np.flatnonzero(keys[0].any(axis=1)).tolist() == [0, 1]  # 108 on top, then 107


def test_source_message_rules(tmp_path):
    """The seed's examples: unmatched note_offs and note_on velocity 0 are dropped, and the
    time of deleted messages (control changes, tempo changes) is kept."""
    midi = mido.MidiFile(type=0, ticks_per_beat=256)
    midi.tracks.append(mido.MidiTrack([
        mido.Message("note_on", note=74, velocity=81, time=0),
        mido.Message("control_change", control=6, value=0, time=128),
        mido.MetaMessage("set_tempo", tempo=800_000, time=128),
        mido.Message("note_on", note=80, velocity=0, time=128),  # a note_off with no note_on
        mido.Message("note_off", note=70, velocity=30, time=128),  # a note_off with no note_on
        mido.Message("note_off", note=74, velocity=0, time=256),  # 768 ticks = 3 beats = 36 steps
    ]))  # fmt: skip
    path = tmp_path / "seed_example.mid"
    midi.save(str(path))
    roll = score_to_image_roll(path)
    assert roll.shape == (96, 36)
    assert np.flatnonzero(roll.any(axis=1)).tolist() == [TOP - 74] and roll[TOP - 74].all()


def test_grid_rounds_half_a_step_up(tmp_path):
    # 20 ticks = 0.5 step -> 1; 19 ticks = 0.475 step -> 0
    path = write_file(tmp_path / "half.mid", [(0, 0, [(60, 20, 200), (62, 19, 221)])])
    roll = score_to_image_roll(path)
    assert np.flatnonzero(roll[TOP - 60]).tolist() == list(range(1, 5))  # 200 ticks = 5 steps
    assert np.flatnonzero(roll[TOP - 62]).tolist() == list(range(0, 6))  # 221 ticks -> step 6


def test_threshold_applies_after_min_max_normalisation():
    binary = np.zeros((2, 96, 96), dtype=bool)
    binary[0, TOP - 60, 0:12] = binary[1, TOP - 67, 40:60] = True
    rng = np.random.default_rng(0)
    soft = 0.2 + 0.6 * binary + rng.uniform(-0.05, 0.05, binary.shape)  # a model's output
    np.testing.assert_array_equal(threshold_images(soft), binary)
    two_notes = [(60, 0, 12), (67, 136, 156)]
    assert decoded_steps(images_to_midi(soft)) == decoded_steps(images_to_midi(binary)) == two_notes
    half = binary.astype(float)
    half[0, TOP - 70, 50:60] = 0.5  # normalised 0.5 < 0.55: silent
    assert decoded_steps(images_to_midi(half)) == two_notes
    assert decoded_steps(images_to_midi(half, threshold=0.4)) == [*two_notes, (70, 50, 60)]
    assert images_to_midi(np.full((96, 96), 0.7)).instruments[0].notes == []  # constant: silence
    tanh_output = 2.0 * binary[:, None] - 1.0  # (n, 1, 96, 96) in [-1, 1]
    assert decoded_steps(images_to_midi(tanh_output, tempo_bpm=120), tempo_bpm=120) == two_notes


def test_bad_input_raises_with_the_path(tmp_path):
    noise = tmp_path / "noise.mid"
    noise.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(MidiReadError, match="noise.mid"):
        midi_to_images(noise)
    drums = write_file(tmp_path / "drums.mid", [(0, 9, [(36, 0, 100)])])
    with pytest.raises(EmptyScoreError, match="drums.mid"):
        midi_to_images(drums)


@st.composite
def grid_notes(draw):
    """Notes on the step grid: per pitch, non-overlapping, at least 3 steps long, with
    frequent re-strikes (a note starting where the previous one ends)."""
    notes = []
    for pitch in draw(st.lists(st.integers(12, 107), min_size=1, max_size=6, unique=True)):
        now = draw(st.integers(0, 40))
        for _ in range(draw(st.integers(1, 5))):
            start = now + draw(st.sampled_from([0, 0, 1, 2, 5]))
            now = start + draw(st.integers(3, 30))
            notes.append((pitch, start, now))
    return notes


@settings(max_examples=40, deadline=None)
@given(grid_notes())
def test_random_grid_notes_round_trip(notes):
    score = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=90.0)
    score.instruments.append(pretty_midi.Instrument(program=0))
    for pitch, start, end in notes:
        start_s = score.tick_to_time(start * STEP_TICKS)
        end_s = score.tick_to_time(end * STEP_TICKS)
        score.instruments[0].notes.append(pretty_midi.Note(90, pitch, start_s, end_s))
    restruck = {(p, s) for p, s, _ in notes}
    expected = sorted((p, s, e - 1 if (p, e) in restruck else e) for p, s, e in notes)
    images = midi_to_images(score, keep_empty=True, keep_tail=True)
    assert decoded_steps(images_to_midi(images)) == expected


@st.composite
def strokes(draw):
    """1-3 images' worth of steps, and horizontal strokes at least 2 steps long."""
    n_images = draw(st.integers(1, 3))
    stroke = st.tuples(st.integers(0, 95), st.integers(0, 96 * n_images - 2), st.integers(2, 40))
    return n_images, draw(st.lists(stroke, max_size=12))


@settings(max_examples=40, deadline=None)
@given(strokes())
def test_images_without_one_pixel_notes_survive_decode_and_encode(n_images_and_strokes):
    n_images, strokes = n_images_and_strokes
    image_roll = np.zeros((96, 96 * n_images), dtype=bool)
    for row, start, length in strokes:
        image_roll[row, start : start + length] = True
    images = image_roll.reshape(96, n_images, 96).transpose(1, 0, 2)
    score = images_to_midi(images)
    if not score.instruments[0].notes:
        assert not images.any()
        return
    again = midi_to_images(score, keep_empty=True, keep_tail=True)
    np.testing.assert_array_equal(again, images[: len(again)])
    assert not images[len(again) :].any()
