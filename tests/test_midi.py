"""MIDI reading and writing: valid files, every kind of bad input, atomic writes."""

from __future__ import annotations

import warnings
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from orchestrion.errors import ConfigError, EmptyScoreError, InputFileNotFoundError, MidiReadError
from orchestrion.symbolic import (
    DrumTrackWarning,
    ScoreRepairWarning,
    melodic_instruments,
    read_midi,
    remove_invalid_notes,
    score_duration,
    write_midi,
)


def _score(*tracks: tuple[int, bool, list[tuple[int, float, float]]]) -> pretty_midi.PrettyMIDI:
    """tracks: (program, is_drum, [(pitch, start_s, end_s), ...])."""
    score = pretty_midi.PrettyMIDI()
    for program, is_drum, notes in tracks:
        name = f"p{program}{'drums' if is_drum else ''}"
        inst = pretty_midi.Instrument(program=program, is_drum=is_drum, name=name)
        inst.notes = [pretty_midi.Note(velocity=90, pitch=p, start=s, end=e) for p, s, e in notes]
        score.instruments.append(inst)
    return score


@pytest.fixture()
def quartet_file(tmp_path) -> Path:
    score = _score(
        (40, False, [(76, 0.0, 0.5), (77, 0.5, 1.0), (79, 1.0, 2.0)]),
        (42, False, [(48, 0.0, 2.0)]),
        (0, True, [(36, 0.0, 0.1), (38, 0.5, 0.6)]),
    )
    path = tmp_path / "quartet.mid"
    score.write(str(path))
    return path


def test_reads_a_valid_file_with_all_its_notes(quartet_file):
    score = read_midi(quartet_file)
    notes = sorted(
        (n.pitch, round(n.start, 3), round(n.end, 3)) for i in score.instruments for n in i.notes
    )
    assert notes == [
        (36, 0.0, 0.1), (38, 0.5, 0.6), (48, 0.0, 2.0),
        (76, 0.0, 0.5), (77, 0.5, 1.0), (79, 1.0, 2.0),
    ]  # fmt: skip
    assert score_duration(score) == pytest.approx(2.0, abs=1e-3)


def test_missing_file_raises_not_found_with_path(tmp_path):
    path = tmp_path / "nowhere" / "missing.mid"
    with pytest.raises(InputFileNotFoundError, match="missing.mid"):
        read_midi(path)


def test_random_bytes_raise_midi_read_error_with_path(tmp_path):
    path = tmp_path / "noise.mid"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MidiReadError, match="noise.mid") as info:
        read_midi(path)
    assert "not a MIDI file" in str(info.value) and "no MIDI header" in str(info.value)


def test_empty_file_raises_midi_read_error(tmp_path):
    path = tmp_path / "empty.mid"
    path.write_bytes(b"")
    with pytest.raises(MidiReadError, match="empty.mid.*it is empty"):
        read_midi(path)


def test_a_text_file_is_named_as_not_midi_not_as_cut_short(tmp_path):
    path = tmp_path / "notes.mid"
    path.write_text("hello\n")
    with pytest.raises(MidiReadError, match="no MIDI header.*starts with b'hell'") as info:
        read_midi(path)
    assert "cut short" not in str(info.value)


@pytest.mark.parametrize("keep_fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_real_file_raises_midi_read_error(quartet_file, tmp_path, keep_fraction):
    data = quartet_file.read_bytes()
    path = tmp_path / "cut.mid"
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(MidiReadError, match="cut.mid"):
        read_midi(path)


def test_corrupt_data_bytes_raise_midi_read_error(tmp_path):
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=64, time=0)])
    track.append(mido.Message("note_off", note=60, velocity=0, time=480))
    midi.tracks.append(track)
    path = tmp_path / "bad_bytes.mid"
    midi.save(str(path))
    data = bytearray(path.read_bytes())
    data[data.index(bytes([0x90, 60, 64])) + 1] = 0xC8  # a note number above 127
    path.write_bytes(bytes(data))
    with pytest.raises(MidiReadError, match="bad_bytes.mid"):
        read_midi(path)


def test_absurd_tick_count_raises_midi_read_error(tmp_path):
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=64, time=0)])
    track.append(mido.Message("note_off", note=60, velocity=0, time=200_000_000))
    midi.tracks.append(track)
    path = tmp_path / "huge.mid"
    midi.save(str(path))
    with pytest.raises(MidiReadError, match="huge.mid"):
        read_midi(path)


def test_score_without_notes_raises_empty_score(tmp_path):
    path = tmp_path / "silence.mid"
    _score((40, False, [])).write(str(path))
    with pytest.raises(EmptyScoreError, match="silence.mid"):
        read_midi(path)


def test_drums_only_score_raises_empty_score(tmp_path):
    path = tmp_path / "drums.mid"
    _score((0, True, [(36, 0.0, 0.2), (42, 0.5, 0.6)])).write(str(path))
    with pytest.raises(EmptyScoreError, match="drums.mid") as info:
        read_midi(path)
    assert "drum" in str(info.value)


def test_notes_without_duration_are_removed_with_a_count():
    score = _score((40, False, [(60, 0.0, 1.0), (62, 1.0, 1.0), (64, 2.0, 2.5)]))
    score.instruments[0].notes[2].end = 1.5  # pretty_midi checks end >= start only in Note()
    with pytest.warns(ScoreRepairWarning, match="removed 2 notes"):
        assert remove_invalid_notes(score, source="x.mid") == 2
    assert [n.pitch for n in score.instruments[0].notes] == [60]


def test_melodic_instruments_skips_drums_naming_the_track():
    score = _score((40, False, [(60, 0.0, 1.0)]), (0, True, [(36, 0.0, 0.1)]), (41, False, []))
    with pytest.warns(DrumTrackWarning, match=r"track 2 'p0drums'"):
        melodic = melodic_instruments(score)
    assert [inst.program for inst in melodic] == [40]
    assert score_duration(score, include_drums=True) == 1.0


def test_write_then_read_keeps_notes(tmp_path):
    score = _score((73, False, [(72, 0.25, 0.75), (74, 0.75, 1.5)]), (70, False, [(45, 0.0, 1.5)]))
    path = write_midi(score, tmp_path / "sub" / "out.mid")
    assert path.is_file()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = read_midi(path)
    got = sorted(
        (i.program, n.pitch, round(n.start, 4), round(n.end, 4))
        for i in back.instruments
        for n in i.notes
    )
    assert got == [(70, 45, 0.0, 1.5), (73, 72, 0.25, 0.75), (73, 74, 0.75, 1.5)]


def test_failed_write_leaves_the_existing_file_untouched(tmp_path):
    path = tmp_path / "keep.mid"
    path.write_bytes(b"original")
    score = _score((40, False, [(60, 0.0, 1.0)]))
    score.instruments[0].notes[0].velocity = 0
    with pytest.raises(ConfigError, match="velocity"):
        write_midi(score, path)
    score.instruments[0].notes[0].velocity = 80
    score.instruments[0].notes[0].pitch = 130
    with pytest.raises(ConfigError, match="pitch 130"):
        write_midi(score, path)
    assert path.read_bytes() == b"original"
    assert list(tmp_path.iterdir()) == [path]
