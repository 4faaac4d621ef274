"""Multi-track pianorolls: MIDI -> roll -> MIDI keeps every note, re-strikes included."""

from __future__ import annotations

import warnings
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrion.errors import ConfigError
from orchestrion.symbolic import (
    DrumTrackWarning,
    InstrumentVocabulary,
    ScoreRepairWarning,
    pianoroll_to_score,
    read_midi,
    score_to_pianoroll,
    time_to_frame,
    write_midi,
)
from orchestrion.symbolic.pianoroll import _BOUNDARY_TOLERANCE_FRAMES

VOCAB = InstrumentVocabulary.default()
FRAME_RATES_HZ = [31.25, 62.5, 100.0, 187.0]  # 187 = 47,872 Hz / hop 256 (orGAN paper)
EPS = 1e-9

Note = tuple[int, float, float, int]  # pitch, start s, end s, velocity


def write_mido_file(
    path: Path, ticks_per_beat: int, tempi: list[tuple[int, float]], tracks: list[dict]
) -> Path:
    """Write a type-1 MIDI file.

    tempi: (tick, bpm); tracks: dicts of program, channel, name, notes=(pitch, on, off, velocity).
    """
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = [
        (tick, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))) for tick, bpm in tempi
    ]
    tracks_events = [conductor]
    for spec in tracks:
        channel = spec["channel"]
        events = [(0, 0, mido.MetaMessage("track_name", name=spec["name"]))]
        program = spec["program"]
        events.append((0, 1, mido.Message("program_change", program=program, channel=channel)))
        for index, (pitch, on, off, velocity) in enumerate(spec["notes"]):
            note_on = mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)
            events.append((on, 3, note_on))
            # alternate real note_off and note_on velocity 0; offs sort before ons at the same tick
            off_message = (
                mido.Message("note_off", note=pitch, velocity=0, channel=channel)
                if index % 2
                else mido.Message("note_on", note=pitch, velocity=0, channel=channel)
            )
            events.append((off, 2, off_message))
        tracks_events.append(events)
    for events in tracks_events:
        track = mido.MidiTrack()
        now = 0
        for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))
    return path


@pytest.fixture(scope="module")
def ensemble_file(tmp_path_factory) -> Path:
    """Six tracks over four tempi (120, 90, 150, 60 BPM), with re-strikes, cross-instrument
    unisons, a note held across tempo changes, a very short note and a drum track."""
    path = tmp_path_factory.mktemp("midi") / "ensemble.mid"
    q = 480  # ticks per quarter note
    tracks = [
        {"program": 40, "channel": 0, "name": "Violin I", "notes": [
            # re-struck C5 quarter notes
            (72, 0, q, 60), (72, q, 2 * q, 70), (72, 2 * q, 3 * q, 80), (72, 3 * q, 4 * q, 90),
            (76, 4 * q, 8 * q + 360, 100),  # held across the 150 BPM change
            (79, 8 * q + 360, 8 * q + 600, 50), (79, 8 * q + 600, 8 * q + 840, 55),
            (79, 8 * q + 840, 10 * q, 58),
        ]},
        {"program": 73, "channel": 1, "name": "Flute", "notes": [
            (72, q // 2, 5 * q // 2, 64),  # the violin's C5, on another instrument
            (84, 4 * q + 80, 12 * q + 33, 77),
        ]},
        {"program": 42, "channel": 2, "name": "Cello", "notes": [
            (48, 0, 8 * q, 80), (43, 8 * q, 16 * q, 81),
        ]},
        {"program": 32, "channel": 3, "name": "Bass", "notes": [
            (36, 0, 2 * q, 90), (36, 2 * q, 4 * q, 91), (31, 4 * q, 16 * q, 92),
        ]},
        {"program": 40, "channel": 4, "name": "Violin II", "notes": [
            (69, 0, 4 * q, 40), (69, 4 * q, 8 * q, 45),
        ]},
        {"program": 0, "channel": 5, "name": "Piano", "notes": [
            (60, 12 * q, 13 * q, 100), (64, 12 * q, 13 * q, 101), (67, 12 * q, 13 * q, 102),
            (72, 13 * q, 13 * q + 10, 127),  # 10 ticks at 60 BPM = 21 ms: < 1 frame at 31.25 Hz
        ]},
        {"program": 0, "channel": 9, "name": "Kit", "notes": [
            (36, 0, 60, 100), (38, q, q + 60, 100),
        ]},
    ]  # fmt: skip
    return write_mido_file(path, q, [(0, 120), (4 * q, 90), (8 * q, 150), (12 * q, 60)], tracks)


def notes_by_slot(score: pretty_midi.PrettyMIDI) -> dict[str, list[Note]]:
    grouped: dict[str, list[Note]] = {}
    for inst in score.instruments:
        if inst.is_drum:
            continue
        slot = VOCAB.slot_for_program(inst.program).name
        notes = [(n.pitch, n.start, n.end, n.velocity) for n in inst.notes]
        grouped.setdefault(slot, []).extend(notes)
    return {slot: sorted(notes) for slot, notes in grouped.items()}


def assert_notes_survive(
    expected: dict[str, list[Note]],
    decoded: pretty_midi.PrettyMIDI,
    frame_rate_hz: float,
    check_velocity: bool,
    offset_slack_s: float = 0.0,
) -> None:
    """Same notes per slot: pitch exact, onset and offset within one frame, velocity exact.

    A time within the encoder's boundary tolerance past a frame boundary counts as on it,
    so "within one frame" allows that much more.
    """
    frame_s = (1.0 + _BOUNDARY_TOLERANCE_FRAMES) / frame_rate_hz
    got = {}
    for inst in decoded.instruments:
        assert VOCAB.by_name(inst.name).program == inst.program
        got[inst.name] = sorted((n.pitch, n.start, n.end, n.velocity) for n in inst.notes)
    assert set(got) == set(expected)
    for slot, want in expected.items():
        assert len(got[slot]) == len(want), (slot, got[slot], want)
        for (pitch, start, end, velocity), decoded_note in zip(want, got[slot]):
            g_pitch, g_start, g_end, g_velocity = decoded_note
            assert g_pitch == pitch
            assert abs(g_start - start) <= frame_s + EPS, (slot, pitch, start, g_start)
            assert abs(g_end - end) <= frame_s + EPS + offset_slack_s, (slot, pitch, end, g_end)
            if check_velocity:
                assert g_velocity == velocity  # exact, stronger than the 1-step budget


def to_roll(score, frame_rate_hz, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DrumTrackWarning)
        return score_to_pianoroll(score, frame_rate_hz, **kwargs)


@pytest.mark.parametrize("frame_rate_hz", FRAME_RATES_HZ)
@pytest.mark.parametrize("mode", ["binary", "velocity"])
def test_file_round_trip_keeps_every_note(ensemble_file, frame_rate_hz, mode):
    score = read_midi(ensemble_file)
    expected = notes_by_slot(score)
    assert sum(map(len, expected.values())) == 21
    with pytest.warns(DrumTrackWarning, match="Kit"):
        roll, onsets = score_to_pianoroll(score, frame_rate_hz, mode=mode, onsets=True)
    assert roll.shape == onsets.shape == (16, 128, roll.shape[-1]) and roll.dtype == np.float32
    last_end_s = max(note[2] for notes in expected.values() for note in notes)
    assert roll.shape[-1] == time_to_frame(last_end_s, frame_rate_hz)
    for decoded in (
        pianoroll_to_score(roll, frame_rate_hz, mode=mode),  # re-strikes from the one-frame gaps
        pianoroll_to_score(roll, frame_rate_hz, mode=mode, onsets=onsets),  # and the onset roll
    ):
        assert_notes_survive(expected, decoded, frame_rate_hz, check_velocity=mode == "velocity")


def test_onset_roll_alone_separates_restrikes_without_gaps(ensemble_file):
    score = read_midi(ensemble_file)
    roll, onsets = to_roll(score, 100.0, onsets=True, restrike_gap=False)
    violin, c5 = VOCAB.index_of("violin"), 72
    assert roll[violin, c5, :200].sum() == 200  # four re-struck quarter notes: one unbroken stretch
    merged = pianoroll_to_score(roll, 100.0)
    assert [n.pitch for n in merged.instruments[0].notes].count(c5) == 1
    decoded = pianoroll_to_score(roll, 100.0, onsets=onsets)
    assert_notes_survive(notes_by_slot(score), decoded, 100.0, check_velocity=False)


def test_restrike_leaves_a_one_frame_gap_and_marks_onsets(ensemble_file):
    roll, onsets = to_roll(read_midi(ensemble_file), 100.0, onsets=True)
    lane, onset_lane = roll[VOCAB.index_of("violin"), 72], onsets[VOCAB.index_of("violin"), 72]
    # quarter notes at 120 BPM = 50 frames each: frames 49, 99, 149 are the gaps
    assert np.flatnonzero(lane[:200] == 0).tolist() == [49, 99, 149]
    assert np.flatnonzero(onset_lane).tolist() == [0, 50, 100, 150]
    # the flute's C5 is on another slot: no gap cut into it by the violin's re-strikes
    assert roll[VOCAB.index_of("flute"), 72, 25:125].all()


def test_tracks_on_one_slot_merge_with_max_velocity():
    score = pretty_midi.PrettyMIDI()
    # a violin and a fiddle: both on the violin slot
    for program, velocity, start, end in [(40, 40, 0.0, 1.0), (110, 100, 0.5, 1.5)]:
        inst = pretty_midi.Instrument(program=program)
        inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=67, start=start, end=end))
        score.instruments.append(inst)
    roll = score_to_pianoroll(score, 10.0, mode="velocity", restrike_gap=False)
    lane = roll[VOCAB.index_of("violin"), 67]
    np.testing.assert_allclose(lane[:5], 40 / 127)
    np.testing.assert_allclose(lane[5:15], 100 / 127)
    assert np.count_nonzero(roll) == 15
    gapped = score_to_pianoroll(score, 10.0, mode="velocity")
    assert gapped[VOCAB.index_of("violin"), 67, 4] == 0  # the fiddle re-strikes the violin's note


def test_restrike_after_a_one_frame_note_keeps_both_notes():
    score = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=73)
    inst.notes = [pretty_midi.Note(90, 80, 0.0, 0.3), pretty_midi.Note(90, 80, 0.3, 0.4),
                  pretty_midi.Note(90, 80, 0.4, 0.8)]  # fmt: skip
    score.instruments.append(inst)
    roll, onsets = score_to_pianoroll(score, 10.0, onsets=True)
    lane = roll[VOCAB.index_of("flute"), 80]
    # no gap before frame 4: it would erase the one-frame note
    assert lane.tolist() == [1, 1, 0, 1, 1, 1, 1, 1]
    notes = pianoroll_to_score(roll, 10.0, onsets=onsets).instruments[0].notes
    times = [(round(n.start, 6), round(n.end, 6)) for n in notes]
    assert times == [(0.0, 0.2), (0.3, 0.4), (0.4, 0.8)]


def test_n_frames_pads_and_cuts():
    score = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    inst.notes = [pretty_midi.Note(100, 60, 0.0, 1.0), pretty_midi.Note(100, 62, 2.0, 3.0)]
    score.instruments.append(inst)
    assert score_to_pianoroll(score, 10.0, n_frames=50).shape == (16, 128, 50)
    cut = score_to_pianoroll(score, 10.0, n_frames=5)
    assert cut.shape == (16, 128, 5) and cut.sum() == 5
    assert score_to_pianoroll(pretty_midi.PrettyMIDI(), 10.0).shape == (16, 128, 0)


def test_thresholded_model_output_decodes_to_the_same_notes(ensemble_file):
    score = read_midi(ensemble_file)
    roll = to_roll(score, 62.5)
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, roll.shape).astype(np.float32)
    noisy = 0.15 + 0.7 * roll + noise
    decoded = pianoroll_to_score(noisy, 62.5, threshold=0.5)
    assert_notes_survive(notes_by_slot(score), decoded, 62.5, check_velocity=False)


def test_decoded_score_survives_writing_to_disk(ensemble_file, tmp_path):
    score = read_midi(ensemble_file)
    roll = to_roll(score, 187.0, mode="velocity")
    path = write_midi(pianoroll_to_score(roll, 187.0, mode="velocity"), tmp_path / "decoded.mid")
    # ticks at 960 per beat, 120 BPM: times move by at most 1/3840 s on disk
    expected = notes_by_slot(score)
    assert_notes_survive(expected, read_midi(path), 187.0, True, offset_slack_s=1 / 3840)


@pytest.mark.parametrize(
    ("shape", "frame_rate_hz"),
    [
        ((16, 127, 10), 10.0),
        ((15, 128, 10), 10.0),
        ((128, 10), 10.0),
        ((16, 128, 10), 0.0),
        ((16, 128, 10), -5),
    ],
)
def test_bad_roll_shape_or_frame_rate_raises_config_error(shape, frame_rate_hz):
    with pytest.raises(ConfigError):
        pianoroll_to_score(np.zeros(shape, np.float32), frame_rate_hz)


def test_path_input_reports_the_file(tmp_path):
    with pytest.raises(Exception, match="absent.mid"):
        score_to_pianoroll(tmp_path / "absent.mid", 10.0)


@st.composite
def random_scores(draw):
    """Scores of 1-6 voices on random GM programs; within a (slot, pitch) lane notes do not
    overlap (overlapping unisons merge by design) and last at least ~2 frames; gaps of 0
    (re-strikes) and of fractions of a frame are common."""
    frame_rate_hz = draw(st.sampled_from(FRAME_RATES_HZ))
    score = pretty_midi.PrettyMIDI()
    lanes = set()
    for _ in range(draw(st.integers(1, 6))):
        program, pitch = draw(st.integers(0, 127)), draw(st.integers(0, 127))
        lane = (VOCAB.slot_for_program(program).index, pitch)
        if lane in lanes:
            continue
        lanes.add(lane)
        inst = pretty_midi.Instrument(program=program)
        now = draw(st.floats(0.0, 3.0))
        for _ in range(draw(st.integers(1, 6))):
            gap_frames = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0), st.floats(1.0, 6.0)))
            length_frames = draw(st.floats(2.01, 15.0))
            start = now + gap_frames / frame_rate_hz
            now = start + length_frames / frame_rate_hz
            inst.notes.append(pretty_midi.Note(draw(st.integers(1, 127)), pitch, start, now))
        score.instruments.append(inst)
    return score, frame_rate_hz


@settings(max_examples=60, deadline=None)
@given(random_scores(), st.sampled_from(["binary", "velocity"]))
def test_random_scores_round_trip(score_and_rate, mode):
    score, frame_rate_hz = score_and_rate
    roll, onsets = score_to_pianoroll(score, frame_rate_hz, mode=mode, onsets=True)
    expected = notes_by_slot(score)
    for decoded in (
        pianoroll_to_score(roll, frame_rate_hz, mode=mode),
        pianoroll_to_score(roll, frame_rate_hz, mode=mode, onsets=onsets),
    ):
        assert_notes_survive(expected, decoded, frame_rate_hz, check_velocity=mode == "velocity")


def test_a_restrike_a_hair_past_a_frame_boundary_round_trips():
    """Found by the test above: times a few ns past a boundary count as on it, and the
    re-struck note's predecessor ends a frame early (one frame plus that hair off)."""
    score = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    hair = 6.5e-9
    piano.notes = [pretty_midi.Note(1, 0, hair, 0.096 + hair), pretty_midi.Note(1, 0, 0.096 + hair, 0.192 + hair)]
    score.instruments.append(piano)
    roll = score_to_pianoroll(score, 31.25, mode="binary")
    assert_notes_survive(notes_by_slot(score), pianoroll_to_score(roll, 31.25, mode="binary"), 31.25, False)


def test_unplayable_notes_are_left_out_with_a_count():
    score = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    inst.notes = [pretty_midi.Note(100, 60, 0.0, 1.0), pretty_midi.Note(100, 62, 0.5, 1.0),
                  pretty_midi.Note(0, 64, 0.0, 1.0), pretty_midi.Note(100, 65, -1.0, 0.5)]  # fmt: skip
    inst.notes[1].end = 0.5  # no duration
    score.instruments.append(inst)
    with pytest.warns(ScoreRepairWarning, match="left out 3 notes"):
        roll = score_to_pianoroll(score, 10.0, mode="velocity")
    assert np.flatnonzero(roll.any(axis=(0, 2))).tolist() == [60]
