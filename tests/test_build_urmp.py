"""URMP-format builds: the real layout and names, exact mixes, notes = score, ranges, splits,
shard/worker invariance, resuming, the balanced instrument draw and our URMP reader."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from orchestrion.data.build import load_records
from orchestrion.data.build_urmp import (
    F0_HOP_S,
    HAND_STRIDE,
    PieceSkippedWarning,
    SPLITS_FILE_NAME,
    assign_ensemble,
    best_octave_shift,
    build_urmp,
    draw_balanced_ensemble,
    fold_into_range,
    number_digits,
    perform_parts,
    piece_name,
    resolve_ensemble,
    split_of_piece,
    urmp_slots,
)
from orchestrion.data.scores import PartCountError
from orchestrion.errors import ConfigError
from orchestrion.symbolic.instruments import InstrumentVocabulary
from orchestrion.symbolic.midi import read_midi

RATE = 16000
N_PIECES = 3
CODES = {"vn", "va", "vc", "db", "fl", "ob", "cl", "sax", "bn", "tpt", "hn", "tbn", "tba"}
FOLDER = re.compile(r"^(\d{2})_([A-Za-z0-9-]+)((?:_[a-z]+)+)$")
VOCABULARY = InstrumentVocabulary.default()


def slot(code: str):
    return VOCABULARY.by_name(code)


def midi_pitch(frequency_hz: float) -> int:
    return int(round(69 + 12 * math.log2(frequency_hz / 440.0)))


def read_notes(path: Path) -> np.ndarray:
    """(notes, 3): onset s, frequency Hz, duration s."""
    return np.loadtxt(path, ndmin=2)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory) -> Path:
    """Three chorales (music21's first three Bach pieces), balanced draw, 16 kHz."""
    out = tmp_path_factory.mktemp("urmp") / "tiny"
    report = build_urmp(out, limit=N_PIECES, sample_rate=RATE, progress=False)
    assert (report.total, report.built, report.skipped) == (N_PIECES, N_PIECES, 0)
    return out


def piece_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


# --------------------------------------------------------------------------- the tiny build


def test_layout_and_names_follow_urmp(tiny_build: Path) -> None:
    folders = piece_folders(tiny_build)
    assert [f.name[:3] for f in folders] == ["01_", "02_", "03_"]
    assert [f.name.split("_")[1] for f in folders] == ["Bwv1-6", "Bwv2-6", "Bwv3-6"]
    for folder in folders:
        match = FOLDER.match(folder.name)
        assert match, folder.name
        number, name, codes = match.group(1), match.group(2), match.group(3).strip("_").split("_")
        assert set(codes) <= CODES and 2 <= len(codes) <= 6
        insts = "_".join(codes)
        expected = {f"AuMix_{number}_{name}_{insts}.wav", f"Sco_{number}_{name}_{insts}.mid"}
        for k, code in enumerate(codes, start=1):
            expected |= {f"AuSep_{k}_{code}_{number}_{name}.wav", f"Notes_{k}_{code}_{number}_{name}.txt",
                         f"F0s_{k}_{code}_{number}_{name}.txt"}
        assert {p.name for p in folder.iterdir()} == expected
        info = sf.info(folder / f"AuMix_{number}_{name}_{insts}.wav")
        assert (info.samplerate, info.channels, info.subtype, info.format) == (RATE, 1, "PCM_16", "WAV")
    assert (tiny_build / SPLITS_FILE_NAME).is_file() and (tiny_build / "manifest.json").is_file()


def test_mix_is_exactly_the_sum_of_the_parts(tiny_build: Path) -> None:
    for folder in piece_folders(tiny_build):
        mix, rate = sf.read(next(folder.glob("AuMix_*.wav")), dtype="int16")
        parts = [sf.read(p, dtype="int16")[0] for p in sorted(folder.glob("AuSep_*.wav"))]
        assert rate == RATE and all(len(p) == len(mix) for p in parts)
        assert np.array_equal(mix.astype(np.int32), np.sum([p.astype(np.int32) for p in parts], axis=0))
        assert 0.8 < np.abs(mix).max() / 32768 <= 0.91  # peak-normalised to 0.9
        assert all(np.abs(p).max() > 0 for p in parts)  # every part sounds


def test_notes_equal_the_performed_score_and_fit_the_instruments(tiny_build: Path) -> None:
    for folder in piece_folders(tiny_build):
        score = read_midi(next(folder.glob("Sco_*.mid")))
        codes = folder.name.split("_")[2:]
        assert len(score.instruments) == len(codes)
        for k, (code, track) in enumerate(zip(codes, score.instruments), start=1):
            instrument = slot(code)
            assert track.program == instrument.program
            notes = read_notes(next(folder.glob(f"Notes_{k}_{code}_*.txt")))
            score_notes = sorted(track.notes, key=lambda n: (n.start, n.pitch))
            assert len(notes) == len(score_notes) > 0
            assert [midi_pitch(f) for f in notes[:, 1]] == [n.pitch for n in score_notes]
            assert np.allclose(notes[:, 0], [n.start for n in score_notes], atol=1e-3)
            assert np.allclose(notes[:, 2], [n.end - n.start for n in score_notes], atol=1e-3)
            pitches = np.array([midi_pitch(f) for f in notes[:, 1]])
            assert pitches.min() >= instrument.lowest_pitch and pitches.max() <= instrument.highest_pitch


def test_f0_tracks_follow_the_notes(tiny_build: Path) -> None:
    folder = piece_folders(tiny_build)[0]
    duration_s = sf.info(next(folder.glob("AuMix_*.wav"))).duration
    for notes_path in folder.glob("Notes_*.txt"):
        f0 = np.loadtxt(folder / notes_path.name.replace("Notes_", "F0s_"), ndmin=2)
        times, hz = f0[:, 0], f0[:, 1]
        assert np.allclose(np.diff(times), F0_HOP_S, atol=1e-6) and times[0] == 0.0
        assert abs(times[-1] - duration_s) < F0_HOP_S
        notes = read_notes(notes_path)
        assert set(np.round(hz[hz > 0], 3)) <= set(np.round(notes[:, 1], 3))
        assert hz[-1] == 0.0  # release tail is unvoiced
        for onset, frequency, duration in notes:
            frame = int(round((onset + duration / 2) / F0_HOP_S))
            others = [(o, f) for o, f, d in notes if o <= times[frame] < o + d]
            if len(others) == 1:  # not inside a chord of this part
                assert hz[frame] == pytest.approx(frequency, abs=1e-3)


def test_splits_are_by_piece_and_cover_every_piece_once(tiny_build: Path) -> None:
    splits = json.loads((tiny_build / SPLITS_FILE_NAME).read_text())
    assert set(splits) == {"train", "valid", "test"}
    listed = [piece for ids in splits.values() for piece in ids]
    assert sorted(listed) == [f.name for f in piece_folders(tiny_build)]
    assert all(splits.values()), splits  # three pieces: one in each split, lent if need be
    lent = 0
    for split, ids in splits.items():
        for piece in ids:
            source_name = {"Bwv1-6": "bwv1.6", "Bwv2-6": "bwv2.6", "Bwv3-6": "bwv3.6"}[piece.split("_")[1]]
            lent += split_of_piece(source_name, seed=0) != split
    assert lent <= 2


def test_split_rule_is_stable_and_near_the_fractions() -> None:
    names = [f"piece{i}" for i in range(4000)]
    counts = Counter(split_of_piece(n, seed=3, valid_fraction=0.1, test_fraction=0.1) for n in names)
    assert abs(counts["test"] / 4000 - 0.1) < 0.02 and abs(counts["valid"] / 4000 - 0.1) < 0.02
    assert [split_of_piece(n, 3) for n in names[:50]] == [split_of_piece(n, 3) for n in names[:50]]
    assert Counter(split_of_piece(n, seed=4) for n in names) != counts  # the seed matters


def test_resume_builds_nothing_and_keeps_the_manifest(tiny_build: Path) -> None:
    before = json.loads((tiny_build / "manifest.json").read_text())
    report = build_urmp(tiny_build, limit=N_PIECES, sample_rate=RATE, progress=False)
    assert (report.built, report.skipped) == (0, N_PIECES)
    after = json.loads((tiny_build / "manifest.json").read_text())
    assert after["checksums"] == before["checksums"] and after["parts_per_instrument"] == before["parts_per_instrument"]


def test_other_settings_in_the_same_folder_are_refused(tiny_build: Path) -> None:
    with pytest.raises(ConfigError, match="other settings"):
        build_urmp(tiny_build, limit=N_PIECES, sample_rate=RATE, seed=1, progress=False)
    with pytest.raises(ConfigError, match="number_digits 2 -> 3"):  # 01_... would become 001_...
        build_urmp(tiny_build, limit=100, sample_rate=RATE, progress=False)


def test_sharded_build_equals_unsharded(tiny_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    first = build_urmp(out, limit=N_PIECES, sample_rate=RATE, shard="0/2", progress=False)
    assert first.total == 2 and not first.manifest["complete"]
    second = build_urmp(out, limit=N_PIECES, sample_rate=RATE, shard="1/2", progress=False)
    assert second.total == 1 and second.manifest["complete"]
    reference = json.loads((tiny_build / "manifest.json").read_text())
    assert second.manifest["checksums"] == reference["checksums"]
    assert (out / SPLITS_FILE_NAME).read_bytes() == (tiny_build / SPLITS_FILE_NAME).read_bytes()


def test_two_workers_give_identical_files(tiny_build: Path, tmp_path: Path) -> None:
    report = build_urmp(tmp_path / "two", limit=N_PIECES, sample_rate=RATE, workers=2, progress=False)
    reference = json.loads((tiny_build / "manifest.json").read_text())
    assert report.manifest["checksums"] == reference["checksums"]


def test_our_urmp_reader_reads_the_build(tiny_build: Path) -> None:
    from orchestrion.data.urmp import URMPDataset

    dataset = URMPDataset(tiny_build)
    manifest = json.loads((tiny_build / "manifest.json").read_text())
    extras = {r["extra"]["piece_id"]: r["extra"] for r in load_records(tiny_build)}
    assert [r.piece_id for r in dataset.records] == [f.name for f in piece_folders(tiny_build)]
    splits = json.loads((tiny_build / SPLITS_FILE_NAME).read_text())
    for record in dataset.records:
        extra = extras[record.piece_id]
        assert list(record.instruments) == extra["instruments"] == record.piece_id.split("_")[2:]
        assert record.number == int(record.piece_id[:2]) and record.name == record.piece_id.split("_")[1]
        assert [len(part.notes) for part in record.parts] == extra["notes"]
        assert record.piece_id in splits[record.split]
        assert record.score_path is not None and all(part.f0_path is not None for part in record.parts)
    times_s, f0_hz = dataset.load_f0(dataset.records[0].parts[0])
    assert len(times_s) == len(f0_hz) > 0 and f0_hz.max() > 0
    mix, rate = dataset.load_mix(0)
    stems, _ = dataset.load_stems(0)
    assert rate == RATE and np.allclose(stems.sum(axis=0), mix, atol=1e-6)
    assert len(dataset) == len(extras) == manifest["items_finished"] == N_PIECES


# --------------------------------------------------------------------------- explicit ensembles


def write_score(path: Path, parts: list[list[int]], note_s: float = 0.25) -> None:
    """A tiny score: part i plays its pitches one after another."""
    score = pretty_midi.PrettyMIDI()
    for pitches in parts:
        track = pretty_midi.Instrument(program=0)
        for j, pitch in enumerate(pitches):
            track.notes.append(pretty_midi.Note(90, pitch, j * note_s, (j + 1) * note_s))
        score.instruments.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.write(str(path))


def test_explicit_ensembles_in_turn_and_too_many_parts_skipped(tmp_path: Path) -> None:
    scores = tmp_path / "scores"
    write_score(scores / "a_duo.mid", [[72, 74, 76], [48, 50, 52]])
    write_score(scores / "b_quintet.mid", [[72], [67], [60], [55], [48]])
    write_score(scores / "c_trio.mid", [[84, 86], [60, 62], [36, 38]])
    with pytest.warns(PieceSkippedWarning, match="5 parts but the ensemble vn,va,vc has only 3"):
        report = build_urmp(tmp_path / "out", scores=str(scores), ensembles=["fl,cl,hn,bn", "violin,viola,cello"],
                            sample_rate=RATE, progress=False)
    folders = [f.name for f in piece_folders(tmp_path / "out")]
    assert folders == ["01_A-duo_fl_cl", "03_C-trio_fl_cl_hn"]  # ensembles in turn: 1st, 2nd, 1st
    assert report.manifest["pieces_skipped"] == {"part_count": 1}
    assert report.manifest["splits"]["skipped"] == 1
    # every trio part already lies in its instrument's range: no shift (horn B1..F5 takes C2, D2)
    trio = read_midi(tmp_path / "out" / folders[1] / f"Sco_{folders[1]}.mid")
    assert [[n.pitch for n in t.notes] for t in trio.instruments] == [[84, 86], [60, 62], [36, 38]]
    assert [t.program for t in trio.instruments] == [73, 71, 60]


def test_parts_move_into_the_keys_the_soundfont_sounds(tmp_path: Path) -> None:
    # a bass line inside the double bass's real range (E1..G4), but above A3 (57), where
    # FluidR3's contrabass has no samples: it must be moved down, and every note must sound
    line = [60, 62, 64, 65, 67]
    write_score(tmp_path / "scores" / "a_bass.mid", [line], note_s=0.5)
    build_urmp(tmp_path / "out", scores=str(tmp_path / "scores"), ensembles=["db"],
               sample_rate=RATE, progress=False)
    folder = piece_folders(tmp_path / "out")[0]
    notes = read_notes(next(folder.glob("Notes_1_db_*.txt")))
    pitches = [midi_pitch(f) for f in notes[:, 1]]
    assert pitches == [p - 12 for p in line]  # one octave down, the shape kept
    audio, rate = sf.read(next(folder.glob("AuSep_1_db_*.wav")), dtype="float32")
    for onset, _, duration in notes:
        inside = audio[int(onset * rate) + 800:int((onset + duration) * rate)]
        assert np.abs(inside).max() > 0.01, (onset, pitches)


def test_sounding_range_is_the_longest_run_of_sounding_keys(renderer_16k) -> None:
    lowest, highest = renderer_16k.sounding_range(43, 28, 67)  # contrabass, its real range
    assert lowest == 28 and 50 <= highest < 67
    sounding = renderer_16k.sounding_pitches(43)
    assert set(range(lowest, highest + 1)) <= sounding and highest + 1 not in sounding
    silent = renderer_16k.render_note(43, highest + 1, 100, 0.25, 0.0)
    assert np.abs(silent).max() < 1e-4  # the probe agrees with a plain render
    assert renderer_16k.sounding_range(73, 60, 98) == (60, 98)  # flute: every key sampled
    with pytest.raises(ConfigError, match="sounds no pitch from 120 to 127"):
        renderer_16k.sounding_range(43, 120, 127)


def test_ensemble_words_are_checked() -> None:
    assert [s.urmp_code for s in resolve_ensemble("fl, clarinet ,Horn,bn")] == ["fl", "cl", "hn", "bn"]
    with pytest.raises(ConfigError, match="not a URMP instrument"):
        resolve_ensemble("vn,piano")
    with pytest.raises(ConfigError, match="unknown instrument"):
        resolve_ensemble("vn,kazoo")
    with pytest.raises(ConfigError):
        resolve_ensemble(" , ")


# --------------------------------------------------------------------------- the instrument rules


def test_names_and_numbers() -> None:
    assert piece_name("bwv66.6") == "Bwv66-6"
    assert piece_name("bwv248.33-3") == "Bwv248-33-3"
    assert piece_name("sub/my_song (v2)") == "Sub-my-song-v2"
    assert piece_name("___") == "Piece"
    assert (number_digits(3), number_digits(99), number_digits(100), number_digits(1000)) == (2, 2, 3, 4)


def test_octave_shift_and_folding() -> None:
    violin = slot("vn")  # G3..A7 = 55..105
    fit = best_octave_shift(np.array([43, 45, 50, 52]), violin.lowest_pitch, violin.highest_pitch)
    assert (fit.shift_semitones, fit.notes_outside) == (12, 0)
    tuba = slot("tba")  # 26..65
    fit = best_octave_shift(np.array([60, 72, 76]), tuba.lowest_pitch, tuba.highest_pitch)
    assert (fit.shift_semitones, fit.notes_outside) == (-12, 0)
    # a part wider than the range: fewest notes outside, the rest folded by octaves
    trumpet = slot("tpt")  # 52..84
    wide = np.array([40, 60, 62, 64, 66, 96])
    fit = best_octave_shift(wide, trumpet.lowest_pitch, trumpet.highest_pitch)
    # shift 0 leaves 40 and 96 outside, +1 octave only 108: the fewer wins, 108 is then folded
    assert fit == best_octave_shift(wide, 52, 84) and (fit.shift_semitones, fit.notes_outside) == (12, 1)
    fit = best_octave_shift(np.array([30, 68, 106]), 52, 84)  # -1, 0, +1 octave all leave 2: the smallest
    assert (fit.shift_semitones, fit.notes_outside) == (0, 2)
    assert fold_into_range(40, 52, 84) == 52 and fold_into_range(96, 52, 84) == 84
    assert fold_into_range(99, 52, 84) == 75 and fold_into_range(30, 52, 84) == 54


def test_performed_parts_lie_in_range_and_keep_timing() -> None:
    part = pretty_midi.Instrument(program=0)
    part.notes = [pretty_midi.Note(80, p, i * 0.5, i * 0.5 + 0.4) for i, p in enumerate([40, 60, 62, 64, 66, 96])]
    (assignment,) = assign_ensemble([np.array([n.pitch for n in part.notes])], (slot("tpt"),))
    (performed,) = perform_parts([part], [assignment])
    assert performed.program == slot("tpt").program
    assert (assignment.shift_semitones, assignment.notes_folded) == (12, 1)
    assert [n.pitch for n in performed.notes] == [52, 72, 74, 76, 78, 84]  # 96 + 12 = 108 folded to 84
    assert [(n.start, n.end, n.velocity) for n in performed.notes] == [(n.start, n.end, 80) for n in part.notes]
    with pytest.raises(PartCountError):
        assign_ensemble([np.array([60])] * 3, (slot("fl"), slot("cl")))


def random_parts(rng: np.random.Generator, n_parts: int) -> list[np.ndarray]:
    """SATB-like parts: each a random melody over about an octave and a half around a random centre."""
    parts = []
    for centre in sorted(rng.integers(40, 80, size=n_parts))[::-1]:
        parts.append(np.clip(centre + rng.integers(-9, 10, size=30), 0, 127))
    return parts


def test_balanced_draw_uses_all_13_instruments_evenly_and_fits_them() -> None:
    rng = np.random.default_rng(7)
    counts: Counter[str] = Counter()
    for index in range(52):  # 52 four-part pieces = 16 full passes through the deck
        parts = random_parts(rng, 4)
        assignments = draw_balanced_ensemble(parts, index, seed=11)
        for pitches, assignment in zip(parts, assignments):
            shifted = pitches + assignment.shift_semitones
            inside = (shifted >= assignment.slot.lowest_pitch) & (shifted <= assignment.slot.highest_pitch)
            assert assignment.shift_semitones % 12 == 0
            assert assignment.notes_folded == int((~inside).sum()) == 0  # parts this narrow always fit
        counts.update(a.slot.urmp_code for a in assignments)
    assert set(counts) == CODES
    assert max(counts.values()) - min(counts.values()) <= 2  # 208 parts over 13 instruments: 16 each


def test_balanced_draw_covers_all_instruments_within_a_few_pieces() -> None:
    rng = np.random.default_rng(0)
    for seed in range(5):
        used = set()
        for index in range(4):  # 4 x 4 parts >= 13
            used |= {a.slot.urmp_code for a in draw_balanced_ensemble(random_parts(rng, 4), index, seed)}
        assert used == CODES
    assert HAND_STRIDE == 4


def test_balanced_draw_is_deterministic_and_seeded() -> None:
    parts = random_parts(np.random.default_rng(1), 4)
    first = [a.slot.urmp_code for a in draw_balanced_ensemble(parts, 5, seed=0)]
    assert first == [a.slot.urmp_code for a in draw_balanced_ensemble(parts, 5, seed=0)]
    others = {tuple(a.slot.urmp_code for a in draw_balanced_ensemble(parts, 5, seed=s)) for s in range(1, 8)}
    assert len(others | {tuple(first)}) > 1


def test_balanced_draw_prefers_an_instrument_that_fits_a_wide_part() -> None:
    wide = np.array([36, 50, 64, 79])  # C2..G5: 43 semitones, wider than most ranges
    fitting = {s.urmp_code for s in urmp_slots()
               if best_octave_shift(wide, s.lowest_pitch, s.highest_pitch).notes_outside == 0}
    assert 0 < len(fitting) < 13
    for index in range(13):  # every start position of the deck
        (assignment,) = draw_balanced_ensemble([wide], index, seed=2)
        assert assignment.notes_folded == 0 and assignment.slot.urmp_code in fitting
