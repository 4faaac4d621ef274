"""Dataset readers against small hand-written fixtures in the real on-disk formats."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from orchestrion.data.iowa import IowaDataset, note_name_to_pitch, parse_iowa_file_name, segment_notes
from orchestrion.data.midi_folder import MidiFolder, assign_split
from orchestrion.data.musicnet import MusicNetDataset, parse_labels_file
from orchestrion.data.nsynth import NSYNTH_NUM_SAMPLES, NSynthDataset, parse_instrument_str
from orchestrion.data.urmp import URMPDataset, parse_notes_file
from orchestrion.errors import ConfigError, DatasetError

MS = 1e-3  # timing tolerance: 1 ms


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def write_sine(
    path: Path,
    frequency_hz: float,
    sample_rate: int,
    duration_s: float,
    channels: int = 1,
    amplitude: float = 0.3,
) -> np.ndarray:
    """Write a sine tone (16-bit PCM, format from the suffix) and return the (samples,) wave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    wave = (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    frames = wave if channels == 1 else np.stack([wave] * channels, axis=1)
    audio_format = "AIFF" if path.suffix.lower() in (".aif", ".aiff") else None
    sf.write(str(path), frames, sample_rate, subtype="PCM_16", format=audio_format)
    return wave


# --- NSynth ------------------------------------------------------------------------------

FAMILIES = ["bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal"]
SOURCES = ["acoustic", "electronic", "synthetic"]


def nsynth_entry(instrument_str: str, instrument: int, pitch: int, velocity: int, note_id: int) -> dict:
    family, source, _ = instrument_str.rsplit("_", 2)
    note_str = f"{instrument_str}-{pitch:03d}-{velocity:03d}"
    return {
        "note": note_id,
        "note_str": note_str,
        "instrument": instrument,
        "instrument_str": instrument_str,
        "pitch": pitch,
        "velocity": velocity,
        "sample_rate": 16000,
        "qualities": [1, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        "qualities_str": ["bright", "reverb"],
        "instrument_family": FAMILIES.index(family),
        "instrument_family_str": family,
        "instrument_source": SOURCES.index(source),
        "instrument_source_str": source,
    }


def write_nsynth_split(
    split_dir: Path, notes: list[tuple[str, int, int, int]], duration_s: float = 0.25
) -> dict[str, dict]:
    """Write examples.json + audio/<note_str>.wav for (instrument_str, id, pitch, velocity) notes."""
    examples = {}
    for note_id, (instrument_str, instrument, pitch, velocity) in enumerate(notes):
        entry = nsynth_entry(instrument_str, instrument, pitch, velocity, note_id)
        examples[entry["note_str"]] = entry
        write_sine(split_dir / "audio" / f"{entry['note_str']}.wav", midi_to_hz(pitch), 16000, duration_s)
    (split_dir / "examples.json").write_text(json.dumps(examples, indent=2))
    # AppleDouble junk as left by macOS archives
    (split_dir / "audio" / "._synth_lead_synthetic_001-060-100.wav").write_bytes(b"\x00\x05\x16\x07junk")
    (split_dir / "._examples.json").write_bytes(b"\x00\x05\x16\x07junk")
    return examples


VALID_NOTES = [
    ("synth_lead_synthetic_001", 1000, 60, 100),
    ("bass_electronic_018", 12, 40, 50),
    ("keyboard_acoustic_004", 300, 72, 127),
    ("keyboard_acoustic_004", 300, 74, 25),
]


@pytest.fixture()
def nsynth_root(tmp_path: Path) -> Path:
    root = tmp_path / "nsynth"
    write_nsynth_split(root / "nsynth-valid", VALID_NOTES)
    write_nsynth_split(root / "nsynth-test", [("string_acoustic_056", 700, 55, 75)], duration_s=4.5)
    (root / "._nsynth-valid").write_bytes(b"junk")
    return root


def test_parse_instrument_str_splits_from_the_right() -> None:
    assert parse_instrument_str("synth_lead_synthetic_001") == ("synth_lead", "synthetic", 1)
    assert parse_instrument_str("bass_electronic_018") == ("bass", "electronic", 18)
    with pytest.raises(ValueError, match="unknown family"):
        parse_instrument_str("kazoo_acoustic_001")


def test_nsynth_lists_records_with_families_and_splits(nsynth_root: Path) -> None:
    dataset = NSynthDataset(nsynth_root, split="valid")
    assert len(dataset) == 4 and dataset.n_skipped == 0
    by_note = {r.note_str: r for r in dataset.records}
    lead = by_note["synth_lead_synthetic_001-060-100"]
    assert (lead.family, lead.family_id, lead.source, lead.source_id) == ("synth_lead", 9, "synthetic", 2)
    assert (lead.instrument, lead.instrument_number, lead.pitch, lead.velocity) == (1000, 1, 60, 100)
    assert lead.qualities == (1, 0, 0, 0, 0, 0, 0, 0, 1, 0) and lead.qualities_str == ("bright", "reverb")
    assert lead.split == "valid" and lead.sample_rate == 16000
    assert lead.audio_path == nsynth_root / "nsynth-valid" / "audio" / "synth_lead_synthetic_001-060-100.wav"
    assert {r.family for r in dataset.records} == {"synth_lead", "bass", "keyboard"}

    both = NSynthDataset(nsynth_root)
    assert [r.split for r in both.records] == ["valid"] * 4 + ["test"]
    direct = NSynthDataset(nsynth_root / "nsynth-valid")
    assert direct.records == dataset.records
    with pytest.raises(ConfigError):
        NSynthDataset(nsynth_root / "nsynth-valid", split="train")


def test_nsynth_filters(nsynth_root: Path) -> None:
    def notes(**filters) -> set[str]:
        return {r.note_str for r in NSynthDataset(nsynth_root, split="valid", **filters).records}

    assert notes(families=["synth_lead"]) == {"synth_lead_synthetic_001-060-100"}
    assert notes(families=[1, 0]) == {"bass_electronic_018-040-050"}  # brass has none, bass is id 0
    assert notes(instruments=["keyboard_acoustic_004"]) == notes(instruments=[300]) == {
        "keyboard_acoustic_004-072-127", "keyboard_acoustic_004-074-025"
    }
    assert notes(pitches=range(60, 73), velocities=[100, 127]) == {
        "synth_lead_synthetic_001-060-100", "keyboard_acoustic_004-072-127"
    }
    assert notes(sources=["electronic"]) == {"bass_electronic_018-040-050"}
    with pytest.raises(ConfigError, match="kazoo"):
        NSynthDataset(nsynth_root, split="valid", families=["kazoo"])


def test_nsynth_items_are_padded_or_trimmed_to_64000(nsynth_root: Path) -> None:
    dataset = NSynthDataset(nsynth_root)
    short = dataset[0]
    assert short["audio"].shape == (NSYNTH_NUM_SAMPLES,) and short["audio"].dtype == torch.float32
    assert short["audio"][:4000].abs().max() > 0.25  # the 0.25 s tone
    assert short["audio"][4000:].abs().max() == 0  # zero padding
    long = dataset[-1]  # the 4.5 s test-split note
    assert long["index"] == 4 and long["audio"].shape == (NSYNTH_NUM_SAMPLES,)
    assert long["audio"][-100:].abs().max() > 0.1  # trimmed, not padded
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["audio"].shape == (3, NSYNTH_NUM_SAMPLES)
    assert batch["pitch"].tolist() == [r.pitch for r in dataset.records[:3]]
    assert batch["qualities"].shape == (3, 10)


def _valid_split(nsynth_root: Path) -> tuple[Path, dict]:
    split_dir = nsynth_root / "nsynth-valid"
    return split_dir, json.loads((split_dir / "examples.json").read_text())


def test_nsynth_missing_key_names_file_and_note(nsynth_root: Path) -> None:
    split_dir, examples = _valid_split(nsynth_root)
    del examples["bass_electronic_018-040-050"]["velocity"]
    (split_dir / "examples.json").write_text(json.dumps(examples))
    with pytest.raises(DatasetError) as error:
        NSynthDataset(split_dir)
    message = str(error.value)
    assert "examples.json" in message and "bass_electronic_018-040-050" in message and "'velocity'" in message
    dataset = NSynthDataset(split_dir, skip_bad=True)
    assert len(dataset) == 3 and dataset.n_skipped == 1
    assert dataset.skipped[0].path == split_dir / "examples.json"


def test_nsynth_wrong_type_is_reported(nsynth_root: Path) -> None:
    split_dir, examples = _valid_split(nsynth_root)
    examples["synth_lead_synthetic_001-060-100"]["pitch"] = "60"
    (split_dir / "examples.json").write_text(json.dumps(examples))
    with pytest.raises(DatasetError, match=r"synth_lead_synthetic_001-060-100.*'pitch' must be an integer"):
        NSynthDataset(split_dir)


def test_nsynth_unreadable_wav(nsynth_root: Path) -> None:
    split_dir = nsynth_root / "nsynth-valid"
    bad = split_dir / "audio" / "keyboard_acoustic_004-072-127.wav"
    bad.write_bytes(b"RIFF\x00\x00not a wav at all")
    lazy = NSynthDataset(split_dir)  # listing is cheap: headers are not opened
    index = [r.note_str for r in lazy.records].index("keyboard_acoustic_004-072-127")
    with pytest.raises(DatasetError) as error:
        lazy[index]
    assert str(bad) in str(error.value) and "keyboard_acoustic_004-072-127" in str(error.value)
    with pytest.raises(DatasetError, match="cannot read audio"):
        NSynthDataset(split_dir, verify_audio=True)
    skipping = NSynthDataset(split_dir, skip_bad=True)
    assert len(skipping) == 3 and skipping.n_skipped == 1 and skipping.skipped[0].path == bad


def test_nsynth_wrong_sample_rate(nsynth_root: Path) -> None:
    split_dir = nsynth_root / "nsynth-valid"
    wrong = split_dir / "audio" / "bass_electronic_018-040-050.wav"
    write_sine(wrong, 82.4, 22050, 0.2)
    dataset = NSynthDataset(split_dir)
    index = [r.note_str for r in dataset.records].index("bass_electronic_018-040-050")
    with pytest.raises(DatasetError, match="22050 Hz"):
        dataset[index]
    with pytest.raises(DatasetError, match=r"bass_electronic_018-040-050.wav: note .* 22050 Hz"):
        NSynthDataset(split_dir, verify_audio=True)


def test_nsynth_skip_bad_counts_every_kind_of_bad_entry(nsynth_root: Path) -> None:
    split_dir, examples = _valid_split(nsynth_root)
    del examples["synth_lead_synthetic_001-060-100"]["qualities"]  # missing key
    (split_dir / "examples.json").write_text(json.dumps(examples))
    (split_dir / "audio" / "bass_electronic_018-040-050.wav").unlink()  # missing audio
    write_sine(split_dir / "audio" / "keyboard_acoustic_004-072-127.wav", 523.0, 44100, 0.1)  # wrong rate
    (split_dir / "audio" / "keyboard_acoustic_004-074-025.wav").write_bytes(b"garbage")  # unreadable
    with pytest.raises(DatasetError, match="bass_electronic_018-040-050"):
        NSynthDataset(split_dir, families=["bass"])
    keyboards = NSynthDataset(split_dir, families=["keyboard"], skip_bad=True)  # bass audio not checked
    assert len(keyboards) == 0 and keyboards.n_skipped == 3
    dataset = NSynthDataset(split_dir, skip_bad=True)
    assert len(dataset) == 0 and dataset.n_skipped == 4
    reasons = " | ".join(s.reason for s in dataset.skipped)
    assert "'qualities'" in reasons and "missing" in reasons and "44100 Hz" in reasons and "cannot read" in reasons


# --- URMP --------------------------------------------------------------------------------

URMP_RATE = 48000


def write_urmp_piece(dataset_dir: Path, folder: str, number: str, name: str, codes: list[str], notes: list[str]) -> Path:
    """Write one URMP piece folder; `codes` are the file names' instruments, `notes` each part's Notes text."""
    piece = dataset_dir / folder
    insts = "_".join(codes)
    write_sine(piece / f"AuMix_{number}_{name}_{insts}.wav", 440.0, URMP_RATE, 0.2)
    for k, (code, notes_text) in enumerate(zip(codes, notes), start=1):
        write_sine(piece / f"AuSep_{k}_{code}_{number}_{name}.wav", 220.0 * k, URMP_RATE, 0.2 - 0.01 * k)
        (piece / f"Notes_{k}_{code}_{number}_{name}.txt").write_text(notes_text)
        (piece / f"F0s_{k}_{code}_{number}_{name}.txt").write_text(
            "0.000\t0.000\n0.005\t0.000\n0.010\t440.125\n0.015\t441.000\n"
        )
    (piece / f"Sco_{number}_{name}_{insts}.mid").write_bytes(b"MThd")
    (piece / f"._AuSep_1_{codes[0]}_{number}_{name}.wav").write_bytes(b"junk")
    return piece


JUPITER_VN = "0.100000\t261.626000\t0.500000\n0.700000\t445.000000\t0.250000\n"
JUPITER_VC = "0.050000\t130.813000\t1.000000\n"


@pytest.fixture()
def urmp_root(tmp_path: Path) -> Path:
    root = tmp_path / "URMP"
    dataset_dir = root / "Dataset"
    write_urmp_piece(dataset_dir, "01_Jupiter_vn_vc", "01", "Jupiter", ["vn", "vc"], [JUPITER_VN, JUPITER_VC])
    # the folder says tbn, the files say tpt: the files win
    write_urmp_piece(dataset_dir, "02_Fanfare_tbn_hn", "02", "Fanfare", ["tpt", "hn"], ["0.0 466.16 0.3\n", "0.0 349.23 0.3\n"])
    (dataset_dir / "._03_Junk_vn").write_bytes(b"junk")
    return root


def test_urmp_trusts_file_names_and_parses_notes(urmp_root: Path) -> None:
    dataset = URMPDataset(urmp_root)
    assert [r.piece_id for r in dataset.records] == ["01_Jupiter_vn_vc", "02_Fanfare_tbn_hn"]
    jupiter, fanfare = dataset.records
    assert (jupiter.number, jupiter.name, jupiter.instruments) == (1, "Jupiter", ("vn", "vc"))
    assert fanfare.instruments == ("tpt", "hn")
    assert jupiter.split == "all" and fanfare.split == "all"
    violin = jupiter.parts[0]
    assert violin.index == 1 and violin.audio_path.name == "AuSep_1_vn_01_Jupiter.wav"
    assert [n.pitch for n in violin.notes] == [60, 69]  # 445 Hz rounds to A4
    assert [n.onset_s for n in violin.notes] == pytest.approx([0.1, 0.7], abs=MS)
    assert [n.offset_s for n in violin.notes] == pytest.approx([0.6, 0.95], abs=MS)
    assert [n.pitch for n in jupiter.parts[1].notes] == [48]
    assert jupiter.score_path is not None and jupiter.score_path.name == "Sco_01_Jupiter_vn_vc.mid"
    assert [n.pitch for n in fanfare.parts[0].notes] == [70]  # Bb4

    times, f0 = dataset.load_f0(violin)
    assert times == pytest.approx([0.0, 0.005, 0.010, 0.015], abs=MS)
    assert f0.tolist() == pytest.approx([0.0, 0.0, 440.125, 441.0])

    mix, rate = dataset.load_mix(0, sample_rate=16000)
    assert rate == 16000 and abs(mix.shape[0] - 3200) <= 2
    stems, rate = dataset.load_stems(jupiter)
    assert rate == URMP_RATE and stems.shape == (2, int(0.19 * URMP_RATE))  # padded to the longest
    assert np.all(stems[1, int(0.18 * URMP_RATE):] == 0)

    item = URMPDataset(urmp_root, sample_rate=8000, with_stems=True)[1]
    assert item["piece_id"] == "02_Fanfare_tbn_hn" and item["sample_rate"] == 8000
    assert item["stems"].shape[0] == 2 and abs(item["mix"].shape[0] - 1600) <= 2


def test_urmp_root_filters_and_splits(urmp_root: Path) -> None:
    direct = URMPDataset(urmp_root / "Dataset")
    assert len(direct) == 2
    assert [r.name for r in URMPDataset(urmp_root, pieces=[1]).records] == ["Jupiter"]
    assert [r.name for r in URMPDataset(urmp_root, pieces=["02_Fanfare"]).records] == ["Fanfare"]
    assert [r.name for r in URMPDataset(urmp_root, instruments={"vn", "va", "vc", "db"}).records] == ["Jupiter"]
    with pytest.raises(ConfigError, match="splits.json"):
        URMPDataset(urmp_root, split="train")
    (urmp_root / "Dataset" / "splits.json").write_text(
        json.dumps({"train": ["01_Jupiter_vn_vc"], "valid": [], "test": ["02_Fanfare_tbn_hn"]})
    )
    assert [r.split for r in URMPDataset(urmp_root).records] == ["train", "test"]
    assert [r.piece_id for r in URMPDataset(urmp_root, split="test").records] == ["02_Fanfare_tbn_hn"]
    assert len(URMPDataset(urmp_root, split="valid")) == 0


def test_urmp_bad_notes_row_names_file_and_line(urmp_root: Path) -> None:
    notes_file = urmp_root / "Dataset" / "02_Fanfare_tbn_hn" / "Notes_2_hn_02_Fanfare.txt"
    notes_file.write_text("0.0 349.23 0.3\n\n0.5 F4 0.3\n")
    with pytest.raises(DatasetError) as error:
        URMPDataset(urmp_root)
    assert error.value.line == 3 and error.value.path == notes_file
    assert f"{notes_file}:3:" in str(error.value)
    dataset = URMPDataset(urmp_root, skip_bad=True)
    assert [r.piece_id for r in dataset.records] == ["01_Jupiter_vn_vc"] and dataset.n_skipped == 1
    notes_file.write_text("0.0 349.23\n")
    with pytest.raises(DatasetError, match=r"Notes_2_hn_02_Fanfare.txt:1: expected 3 columns"):
        parse_notes_file(notes_file)


def test_urmp_prefers_the_audio_file_name_when_files_disagree(urmp_root: Path) -> None:
    piece = urmp_root / "Dataset" / "02_Fanfare_tbn_hn"
    (piece / "Notes_1_tpt_02_Fanfare.txt").rename(piece / "Notes_1_tbn_02_Fanfare.txt")
    with pytest.warns(UserWarning, match="part 1 files disagree"):
        dataset = URMPDataset(urmp_root, pieces=["Fanfare"])
    assert dataset.records[0].instruments == ("tpt", "hn")
    assert dataset.records[0].parts[0].notes_path.name == "Notes_1_tbn_02_Fanfare.txt"


def test_urmp_missing_stem_is_a_bad_piece(urmp_root: Path) -> None:
    (urmp_root / "Dataset" / "01_Jupiter_vn_vc" / "AuSep_2_vc_01_Jupiter.wav").unlink()
    with pytest.raises(DatasetError, match="part 2 has no AuSep"):
        URMPDataset(urmp_root)
    assert len(URMPDataset(urmp_root, skip_bad=True)) == 1


# --- Iowa MIS ----------------------------------------------------------------------------

IOWA_RATE = 22050
RUN_ONSETS_S = (0.2, 0.75, 1.3)
RUN_NOTE_S = 0.35


def write_iowa_run(path: Path, pitches: list[int]) -> None:
    """Notes of RUN_NOTE_S seconds at RUN_ONSETS_S, separated by (faintly noisy) silence."""
    rng = np.random.default_rng(0)
    wave = rng.normal(0, 1e-4, int(1.9 * IOWA_RATE)).astype(np.float32)
    t = np.arange(int(RUN_NOTE_S * IOWA_RATE)) / IOWA_RATE
    envelope = np.minimum(1.0, np.minimum(t, RUN_NOTE_S - t) / 0.01)
    for onset, pitch in zip(RUN_ONSETS_S, pitches):
        start = int(onset * IOWA_RATE)
        wave[start : start + t.size] += 0.4 * envelope * np.sin(2 * np.pi * midi_to_hz(pitch) * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, IOWA_RATE, subtype="PCM_16", format="AIFF")


@pytest.fixture()
def iowa_root(tmp_path: Path) -> Path:
    root = tmp_path / "iowa"
    write_iowa_run(root / "woodwinds" / "Flute.nonvib.ff.B3Db4.aiff", [59, 60, 61])
    write_sine(root / "piano" / "Piano.mf.Bb3.aiff", midi_to_hz(58), IOWA_RATE, 0.3, channels=2)
    write_sine(root / "newer" / "Flute.nonvib.pp.A4.stereo.aif", 440.0, IOWA_RATE, 0.3, channels=2)
    (root / "piano" / "._Piano.mf.Bb3.aiff").write_bytes(b"junk")
    return root


def test_iowa_note_names_and_file_names() -> None:
    assert [note_name_to_pitch("C", 4), note_name_to_pitch("Bb", 3), note_name_to_pitch("Db", 5)] == [60, 58, 73]
    assert [note_name_to_pitch("A", 0), note_name_to_pitch("C", 8), note_name_to_pitch("C#", 4)] == [21, 108, 61]
    run = parse_iowa_file_name("BbClar.ff.C4B4.aiff")
    assert (run.instrument, run.dynamic, run.low_pitch, run.high_pitch, run.is_run) == ("BbClar", "ff", 60, 71, True)
    newer = parse_iowa_file_name("Flute.nonvib.ff.A4.stereo.aif")
    assert (newer.articulation, newer.low_pitch, newer.is_run) == ("nonvib", 69, False)
    strings = parse_iowa_file_name("Violin.arco.ff.sulG.G3B3.aiff")
    assert strings.articulation == "arco.sulG" and strings.expected_note_count == 5
    with pytest.raises(ValueError, match="dynamic"):
        parse_iowa_file_name("Flute.nonvib.A4.aif")


def test_iowa_segments_runs_and_reads_one_note_files(iowa_root: Path) -> None:
    dataset = IowaDataset(iowa_root)
    assert dataset.n_skipped == 0
    by_file = {}
    for record in dataset.records:
        by_file.setdefault(record.audio_path.name, []).append(record)
    assert set(by_file) == {"Flute.nonvib.ff.B3Db4.aiff", "Piano.mf.Bb3.aiff", "Flute.nonvib.pp.A4.stereo.aif"}
    run = by_file["Flute.nonvib.ff.B3Db4.aiff"]
    assert [r.pitch for r in run] == [59, 60, 61] and all(r.is_run_segment for r in run)
    assert all((r.instrument, r.articulation, r.dynamic) == ("Flute", "nonvib", "ff") for r in run)
    for record, onset in zip(run, RUN_ONSETS_S):
        start_s, end_s = record.start_sample / IOWA_RATE, record.end_sample / IOWA_RATE
        assert onset - 0.05 <= start_s <= onset  # the segment holds the whole note, plus a margin
        assert onset + RUN_NOTE_S <= end_s <= onset + RUN_NOTE_S + 0.05
    for index, record in enumerate(dataset.records):
        if record.is_run_segment:
            wave, rate = dataset.load_note(index)
            spectrum = np.abs(np.fft.rfft(wave))
            peak_hz = np.argmax(spectrum) * rate / wave.size
            assert abs(peak_hz - midi_to_hz(record.pitch)) < 6.0  # each segment sounds its pitch
    (piano,) = by_file["Piano.mf.Bb3.aiff"]
    assert (piano.pitch, piano.dynamic, piano.start_sample, piano.end_sample) == (58, "mf", 0, int(0.3 * IOWA_RATE))
    (newer,) = by_file["Flute.nonvib.pp.A4.stereo.aif"]
    assert newer.pitch == 69 and newer.velocity < piano.velocity < run[0].velocity
    item = dataset[0]
    assert item["audio"].ndim == 1 and item["sample_rate"] == IOWA_RATE
    assert [r.pitch for r in IowaDataset(iowa_root, instruments=["flute"], dynamics=["ff"], pitches=[60]).records] == [60]


def test_segment_notes_counts_notes_in_silence() -> None:
    rate = 8000
    wave = np.zeros(rate * 2, dtype=np.float32)
    for start_s in (0.1, 0.9, 1.5):
        wave[int(start_s * rate) : int((start_s + 0.2) * rate)] = 0.5
    assert len(segment_notes(wave, rate)) == 3


def test_iowa_note_count_mismatch_is_reported(iowa_root: Path) -> None:
    bad = iowa_root / "woodwinds" / "BbClar.ff.C4E4.aiff"
    write_iowa_run(bad, [60, 61, 62])  # 3 notes where the name promises 5
    with pytest.raises(DatasetError, match=r"BbClar.ff.C4E4.aiff: found 3 notes .* holds 5"):
        IowaDataset(iowa_root)
    dataset = IowaDataset(iowa_root, skip_bad=True)
    assert dataset.n_skipped == 1 and dataset.skipped[0].path == bad and len(dataset) == 5


# --- MusicNet ----------------------------------------------------------------------------

LABEL_HEADER = "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n"


@pytest.fixture()
def musicnet_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    net = root / "musicnet"
    write_sine(net / "train_data" / "1727.wav", 220.0, 44100, 0.5)
    (net / "train_labels").mkdir(parents=True)
    (net / "train_labels" / "1727.csv").write_text(
        LABEL_HEADER
        + "22050,44100,43,57,1.0,0.5,Eighth\n"
        + "9182,90078,42,53,0.0,1.5,Dotted Quarter\n"
    )
    write_sine(net / "test_data" / "2106.wav", 440.0, 44100, 0.3)
    (net / "test_labels").mkdir(parents=True)
    (net / "test_labels" / "2106.csv").write_text(LABEL_HEADER + "0,4410,1,69,0.0,1.0,Quarter\n")
    (net / "train_data" / "._1727.wav").write_bytes(b"junk")
    return root


def test_musicnet_times_programs_and_splits(musicnet_root: Path) -> None:
    dataset = MusicNetDataset(musicnet_root)
    assert [(r.piece_id, r.split) for r in dataset.records] == [("1727", "train"), ("2106", "test")]
    notes = dataset.load_notes(0)
    assert [(n.pitch, n.program) for n in notes] == [(53, 41), (57, 42)]  # sorted by onset, 0-based programs
    assert notes[0].onset_s == pytest.approx(9182 / 44100, abs=MS)
    assert notes[0].offset_s == pytest.approx(90078 / 44100, abs=MS)
    assert (notes[0].start_beat, notes[0].duration_beats, notes[0].note_value) == (0.0, 1.5, "Dotted Quarter")
    assert notes[1].onset_s == pytest.approx(0.5, abs=MS) and notes[1].offset_s == pytest.approx(1.0, abs=MS)
    item = MusicNetDataset(musicnet_root / "musicnet", split="test", sample_rate=22050)[0]
    assert item["piece_id"] == "2106" and item["sample_rate"] == 22050 and abs(item["audio"].shape[0] - 6615) <= 2


def test_musicnet_bad_row_names_file_and_line(musicnet_root: Path) -> None:
    labels = musicnet_root / "musicnet" / "train_labels" / "1727.csv"
    labels.write_text(LABEL_HEADER + "22050,44100,43,57,1.0,0.5,Eighth\n" + "9182,90078,viola,53,0.0,1.5,Quarter\n")
    dataset = MusicNetDataset(musicnet_root)  # labels are parsed lazily
    with pytest.raises(DatasetError) as error:
        dataset.load_notes(0)
    assert error.value.line == 3 and f"{labels}:3:" in str(error.value)
    skipping = MusicNetDataset(musicnet_root, skip_bad=True)
    assert [r.piece_id for r in skipping.records] == ["2106"] and skipping.n_skipped == 1
    labels.write_text("start_time,end_time,note\n1,2,60\n")
    with pytest.raises(DatasetError, match=r"1727.csv:1: header misses column\(s\) instrument"):
        parse_labels_file(labels)


# --- MIDI folders ------------------------------------------------------------------------

MAESTRO_HEADER = "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration\n"


def write_midi_stub(path: Path) -> None:
    """A minimal valid format-0 MIDI file with one note (the reader only lists files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    track = bytes([0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    path.write_bytes(b"MThd" + (6).to_bytes(4, "big") + bytes([0, 0, 0, 1, 0, 96]) + b"MTrk" + len(track).to_bytes(4, "big") + track)


@pytest.fixture()
def maestro_root(tmp_path: Path) -> Path:
    root = tmp_path / "maestro-v3.0.0"
    for name in ("2004/a.midi", "2006/b.midi", "2018/c.midi"):
        write_midi_stub(root / name)
    (root / "maestro-v3.0.0.csv").write_text(
        MAESTRO_HEADER
        + 'Alban Berg,Sonata Op. 1,train,2018,2018/c.midi,2018/c.wav,698.66\n'
        + '"Bach, J.S.",Prelude,validation,2004,2004/a.midi,2004/a.wav,120.5\n'
        + 'Chopin,Ballade No. 1,test,2006,2006/b.midi,2006/b.wav,561.2\n'
    )
    return root


def test_maestro_csv_gives_splits_and_metadata(maestro_root: Path) -> None:
    corpus = MidiFolder(maestro_root)
    assert corpus.csv_path == maestro_root / "maestro-v3.0.0.csv"
    assert [(r.relative_path, r.split) for r in corpus.records] == [
        ("2018/c.midi", "train"), ("2004/a.midi", "valid"), ("2006/b.midi", "test")
    ]
    bach = corpus.records[1]
    assert (bach.composer, bach.title, bach.year, bach.duration_s) == ("Bach, J.S.", "Prelude", 2004, 120.5)
    assert bach.audio_path == maestro_root / "2004" / "a.wav"
    assert [r.relative_path for r in MidiFolder(maestro_root, split="valid").records] == ["2004/a.midi"]


def test_maestro_missing_file_row_names_csv_line(maestro_root: Path) -> None:
    (maestro_root / "2006" / "b.midi").unlink()
    with pytest.raises(DatasetError) as error:
        MidiFolder(maestro_root)
    assert error.value.line == 4 and "maestro-v3.0.0.csv:4:" in str(error.value)
    corpus = MidiFolder(maestro_root, skip_bad=True)
    assert len(corpus) == 2 and corpus.n_skipped == 1


def test_midi_folder_lists_recursively_with_a_stable_hash_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "midi"
    names = [f"set{i % 3}/song{i}.mid" for i in range(12)] + ["UPPER.MIDI", "deep/er/x.midi"]
    for name in names:
        write_midi_stub(root / name)
    (root / "set0" / "._song0.mid").write_bytes(b"junk")
    (root / "set0" / "readme.txt").write_text("not midi")
    corpus = MidiFolder(root)
    assert sorted(r.relative_path for r in corpus.records) == sorted(names)
    assert [r.split for r in corpus.records] == [assign_split(r.relative_path) for r in corpus.records]
    assert [r.split for r in MidiFolder(root).records] == [r.split for r in corpus.records]
    train_only = MidiFolder(root, split_ratios=(1, 0, 0))
    assert {r.split for r in train_only.records} == {"train"}

    # the default ratio is 80/10/10
    splits = [assign_split(f"corpus/file{i}.mid") for i in range(4000)]
    fractions = [splits.count(s) / len(splits) for s in ("train", "valid", "test")]
    assert fractions == pytest.approx([0.8, 0.1, 0.1], abs=0.025)
    md5s = [hashlib.md5(str(i).encode()).hexdigest() for i in range(30)]
    from_parent = [assign_split(f"lmd_full/{m[0]}/{m}.mid") for m in md5s]
    assert from_parent == [assign_split(f"{m[0]}/{m}.mid") for m in md5s]  # Lakh: root-independent
    assert set(from_parent) == {"train", "valid", "test"}
    with pytest.raises(ConfigError):
        MidiFolder(root, split_ratios=(0.8, 0.2))

    # MIDI is parsed lazily by orchestrion.symbolic.midi.read_midi
    parsed: list[Path] = []
    fake = types.ModuleType("orchestrion.symbolic.midi")
    fake.read_midi = lambda path: parsed.append(Path(path)) or "score"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "orchestrion.symbolic.midi", fake)
    assert parsed == [] and corpus[2] == "score" and parsed == [corpus.records[2].path]
