"""`orchestrion note` as a musician meets it: instrument names, velocity levels, output rate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from orchestrion.cli import app
from orchestrion.systems.sing.data import InstrumentEntry, InstrumentTable
from orchestrion.systems.sing.infer import NoteModel, generate_notes, velocity_blend

runner = CliRunner()
LEVEL_VELOCITIES = (20, 40, 60, 75, 90, 100, 110, 127)
LEVEL_TOLERANCE_DB = 0.5


@pytest.fixture(scope="module")
def shipped() -> NoteModel:
    return NoteModel.from_pretrained("note-cpu")


def rms_db(waves: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.sqrt(np.mean(np.square(waves, dtype=np.float64), axis=1)) + 1e-12)


def test_instruments_outside_the_vocabulary_are_listed_by_their_general_midi_names():
    result = runner.invoke(app, ["note", "--list-instruments"])
    assert result.exit_code == 0, result.output
    names = [line.rsplit(" ", 1)[0] for line in result.output.splitlines()]
    assert {"harpsichord", "vibraphone", "pan flute", "flute", "violin"} <= set(names)
    assert not [name for name in names if name.startswith("gm")], names


def test_an_instrument_is_found_by_its_shown_name_its_stored_id_and_its_gm_number():
    table = InstrumentTable((
        InstrumentEntry("gm075", 0, 75, "flute_acoustic_075", (60, 62)),
        InstrumentEntry("flute", 1, 73, "flute_acoustic_073", (72,)),
    ))
    assert table.names == ("pan flute", "flute")
    for name in ("pan flute", "Pan-Flute", "gm075", "75", "flute_acoustic_075"):
        assert table.lookup(name).model_id == 0, name
    assert table.entries[0].file_stem == "pan_flute"
    assert InstrumentEntry("gm075", 0, 76, "x_076", (60,)).display_name == "gm075"  # not program 75


def test_velocity_blend_lies_between_the_nearest_trained_velocities():
    softer, louder, fraction = velocity_blend(torch.tensor([1, 25, 60, 90, 100, 127]), (25, 50, 75, 100, 127))
    assert softer.tolist() == [25, 25, 50, 75, 100, 127]
    assert louder.tolist() == [25, 25, 75, 100, 100, 127]
    assert fraction.tolist() == pytest.approx([0, 0, 0.4, 0.6, 0, 0])


@pytest.mark.parametrize(("instrument", "pitch"), [("flute", 72), ("trumpet", 64), ("harpsichord", 60)])
def test_shipped_note_level_rises_with_velocity(shipped, instrument, pitch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        waves = generate_notes(shipped, [(instrument, pitch, v) for v in LEVEL_VELOCITIES])
    levels = rms_db(waves)
    assert np.all(np.diff(levels) >= -LEVEL_TOLERANCE_DB), dict(zip(LEVEL_VELOCITIES, levels.round(1)))
    assert levels[-1] - levels[0] > 10, levels  # velocity matters, not a flat line


def test_shipped_trained_velocities_sound_exactly_as_the_network_alone(shipped):
    trained = list(shipped.table.train_velocities)
    assert trained == [25, 50, 75, 100, 127]
    entry = shipped.table.lookup("violin")
    waves = generate_notes(shipped, [("violin", 67, v) for v in trained])
    with torch.inference_mode():
        direct = shipped.sing(torch.full((len(trained),), entry.model_id), torch.full((len(trained),), 67),
                              torch.tensor(trained)).numpy()
    np.testing.assert_array_equal(waves, direct)


def test_note_writes_the_sample_rate_asked_for(tmp_path):
    out = tmp_path / "flute.wav"
    result = runner.invoke(app, ["note", "-i", "flute", "-p", "72", "--sr", "44100", "-o", str(out)])
    assert result.exit_code == 0, result.output
    info = sf.info(str(out))
    assert info.samplerate == 44100 and info.frames == pytest.approx(4 * 44100, abs=2)


def test_note_refuses_an_impossible_sample_rate(tmp_path):
    out = tmp_path / "flute.wav"
    result = runner.invoke(app, ["note", "-i", "flute", "-p", "72", "--sr", "12", "-o", str(out)])
    assert result.exit_code == 1 and "sample rate must be 4000-192000 Hz" in result.output
    assert not out.exists()
