"""Drum notes are never dropped in silence: a count in a warning, or an error that says so."""

from __future__ import annotations

import warnings
from pathlib import Path

import mido
import pytest
from typer.testing import CliRunner

from orchestrion.cli import app
from orchestrion.errors import DrumOnlyScoreError
from orchestrion.symbolic.instruments import DrumTrackWarning
from orchestrion.symbolic.midi import melodic_instruments, read_midi

runner = CliRunner()
HITS = 16


def write_file(path: Path, flute: bool, hit_ticks: int) -> Path:
    """`HITS` kick-drum hits on channel 10, each `hit_ticks` long (0: note-off at once, as many
    drum files write them), and with `flute` eight flute notes on channel 1."""
    midi = mido.MidiFile(ticks_per_beat=480)
    drums = mido.MidiTrack()
    for index in range(HITS):
        drums.append(mido.Message("note_on", channel=9, note=36, velocity=100, time=0 if index == 0 else 240 - hit_ticks))
        drums.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=hit_ticks))
    midi.tracks.append(drums)
    if flute:
        melody = mido.MidiTrack([mido.Message("program_change", channel=0, program=73, time=0)])
        for _ in range(8):
            melody.append(mido.Message("note_on", channel=0, note=72, velocity=100, time=0))
            melody.append(mido.Message("note_off", channel=0, note=72, velocity=0, time=400))
        midi.tracks.append(melody)
    midi.save(str(path))
    return path


def drum_warnings(path: Path) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        melodic_instruments(read_midi(path))
    return [str(w.message) for w in caught if issubclass(w.category, DrumTrackWarning)]


@pytest.mark.parametrize("hit_ticks", [0, 60])
def test_drums_beside_a_flute_are_counted_in_one_warning(tmp_path, hit_ticks):
    messages = drum_warnings(write_file(tmp_path / "band.mid", flute=True, hit_ticks=hit_ticks))
    assert len(messages) == 1 and f"{HITS} drum notes" in messages[0] and "skipped" in messages[0], messages


@pytest.mark.parametrize("hit_ticks", [0, 60])
def test_a_drums_only_file_says_it_holds_only_drum_notes(tmp_path, hit_ticks):
    with pytest.raises(DrumOnlyScoreError, match=f"holds only drum notes \\({HITS} on MIDI channel 10\\)"):
        read_midi(write_file(tmp_path / "kit.mid", flute=False, hit_ticks=hit_ticks))


def test_render_prints_the_drum_warning_and_the_drums_only_error(tmp_path):
    band = write_file(tmp_path / "band.mid", flute=True, hit_ticks=0)
    result = runner.invoke(app, ["render", str(band), "-o", str(tmp_path / "band.wav"), "-q"])
    assert result.exit_code == 0, result.output
    assert f"warning: {HITS} drum notes" in result.output
    kit = write_file(tmp_path / "kit.mid", flute=False, hit_ticks=0)
    result = runner.invoke(app, ["render", str(kit), "-o", str(tmp_path / "kit.wav"), "-q"])
    assert result.exit_code == 1 and "holds only drum notes" in result.output and "cannot play" in result.output
    assert not (tmp_path / "kit.wav").exists()
