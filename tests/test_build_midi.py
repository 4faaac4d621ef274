"""Score sources (music21 corpus, MIDI folders) and the clean-MIDI builder."""

from __future__ import annotations

import json
from pathlib import Path

import pretty_midi
import pytest

from orchestrion.data.build_midi import build_midi
from orchestrion.data.build_urmp import split_of_piece
from orchestrion.data.records import SkippedEntry
from orchestrion.data.scores import (
    PartCountError,
    ScoreReadError,
    iter_scores,
    list_scores,
    load_score,
    natural_sort_key,
)
from orchestrion.errors import ConfigError, EmptyScoreError, InputFileNotFoundError
from orchestrion.symbolic.midi import read_midi


def write_score(path: Path, parts: list[list[int]], is_drum: bool = False, note_s: float = 0.5) -> None:
    score = pretty_midi.PrettyMIDI()
    for pitches in parts:
        track = pretty_midi.Instrument(program=0, is_drum=is_drum)
        track.notes = [pretty_midi.Note(90, p, j * note_s, (j + 1) * note_s) for j, p in enumerate(pitches)]
        score.instruments.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.write(str(path))


@pytest.fixture()
def messy_folder(tmp_path: Path) -> Path:
    """Two good scores (one in a sub-folder, one .midi), a corrupt, an empty and a drum-only file."""
    folder = tmp_path / "corpus"
    write_score(folder / "sub" / "duet.mid", [[60, 62, 64], [48, 47, 45]])
    write_score(folder / "solo.midi", [[72, 71, 69, 67]])
    write_score(folder / "drums.mid", [[36, 38, 36]], is_drum=True)
    write_score(folder / "empty.mid", [])
    (folder / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x90<")
    (folder / "._duet.mid").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork: ignored
    (folder / "notes.txt").write_text("not a score")
    return folder


# --------------------------------------------------------------------------- sources


def test_music21_bach_lists_every_score_once_in_a_stable_natural_order() -> None:
    refs = list_scores("music21:bach")
    names = [r.name for r in refs]
    assert len(names) == len(set(names)) > 350
    assert names[:3] == ["bwv1.6", "bwv2.6", "bwv3.6"]
    assert names.index("bwv2.6") < names.index("bwv10.7") < names.index("bwv101.7")
    assert names == sorted(names, key=natural_sort_key)
    assert not any(r.path.endswith(".rntxt") for r in refs)  # analyses are not scores
    assert next(r for r in refs if r.name == "bwv277").path.endswith(".mxl")  # MusicXML preferred to kern
    assert [r.name for r in list_scores("music21:bach", limit=2)] == names[:2]


def test_music21_score_gets_the_fixed_tempo_and_part_filter() -> None:
    ref = next(r for r in list_scores("music21:bach") if r.name == "bwv66.6")
    score = load_score(ref)  # 4 parts, quarter = 80 by default
    assert score.name == "bwv66.6" and len(score.midi.instruments) == 4
    _, tempi = score.midi.get_tempo_changes()
    assert list(tempi) == pytest.approx([80.0])
    faster = load_score(ref, tempo_bpm=120)
    end = max(n.end for i in score.midi.instruments for n in i.notes)
    assert max(n.end for i in faster.midi.instruments for n in i.notes) == pytest.approx(end * 80 / 120, rel=1e-6)
    with pytest.raises(PartCountError, match="has 4 parts"):
        load_score(ref, max_parts=3)


def test_unparseable_corpus_file_is_a_score_read_error(tmp_path: Path) -> None:
    from orchestrion.data.scores import ScoreRef, _music21_to_midi

    bad = tmp_path / "broken.xml"
    bad.write_text("<score-partwise><part-list>")
    with pytest.raises(ScoreReadError, match="music21 cannot read"):
        _music21_to_midi(bad, 80.0)
    with pytest.raises(ScoreReadError):
        load_score(ScoreRef("broken", "music21:test", str(bad)))


def test_folder_source_lists_midi_files_and_skips_bad_ones(messy_folder: Path) -> None:
    names = [r.name for r in list_scores(str(messy_folder))]
    assert names == ["corrupt", "drums", "empty", "solo", "sub/duet"]
    skipped: list[SkippedEntry] = []
    scores = list(iter_scores(str(messy_folder), skipped=skipped))
    assert [s.name for s in scores] == ["solo", "sub/duet"]
    assert sorted(entry.path.name for entry in skipped) == ["corrupt.mid", "drums.mid", "empty.mid"]
    assert [s.name for s in iter_scores(str(messy_folder), limit=1)] == ["solo"]  # skipped ones don't count


def test_bad_sources_are_explained(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="score folder not found"):
        list_scores(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="no scores"):
        list_scores(str(tmp_path))
    with pytest.raises(ConfigError, match="composer"):
        list_scores("music21:nobody-at-all")
    with pytest.raises(ConfigError, match="at least 1"):
        list_scores("music21:bach", limit=0)


# --------------------------------------------------------------------------- the builder


def test_midi_build_skips_bad_files_with_counts_and_writes_valid_ones(messy_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "clean"
    report = build_midi(out, source=str(messy_folder), progress=False)
    manifest = report.manifest
    assert manifest["pieces_skipped"] == {"drum_only": 1, "empty": 1, "unreadable": 1}
    assert {p["name"] for p in manifest["skipped_pieces"]} == {"corrupt", "drums", "empty"}
    assert manifest["items_planned"] == manifest["items_finished"] == 5 and manifest["files"] == 2
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mid"))
    expected = sorted(f"{split_of_piece(name, 0)}/{name}.mid" for name in ("solo", "sub/duet"))
    assert written == expected and sorted(manifest["checksums"]) == expected
    duet = read_midi(out / next(name for name in expected if name.endswith("duet.mid")))
    assert [[n.pitch for n in t.notes] for t in duet.instruments] == [[60, 62, 64], [48, 47, 45]]


def test_midi_build_from_music21_is_split_by_piece_and_shard_invariant(tmp_path: Path) -> None:
    whole = build_midi(tmp_path / "whole", limit=3, progress=False)
    assert whole.manifest["files"] == 3 and whole.manifest["pieces_skipped"] == {}
    for name in ("bwv1.6", "bwv2.6", "bwv3.6"):
        split = split_of_piece(name, 0)
        score = read_midi(tmp_path / "whole" / split / f"{name}.mid")
        assert 2 <= len(score.instruments) <= 6
    build_midi(tmp_path / "sharded", limit=3, shard="1/2", progress=False)
    sharded = build_midi(tmp_path / "sharded", limit=3, shard="0/2", progress=False)
    assert sharded.manifest["checksums"] == whole.manifest["checksums"]
    other_seed = build_midi(tmp_path / "seed5", limit=3, seed=5, valid_fraction=0.5, test_fraction=0.5, progress=False)
    assert set(other_seed.manifest["splits"]) <= {"valid", "test"}
    with pytest.raises(ConfigError, match="fractions exceed 1"):
        build_midi(tmp_path / "bad", limit=1, valid_fraction=0.6, test_fraction=0.6, progress=False)
    with pytest.raises(ConfigError, match="tempo"):
        build_midi(tmp_path / "bad", limit=1, tempo_bpm=0, progress=False)


def test_midi_build_resumes(messy_folder: Path, tmp_path: Path) -> None:
    first = build_midi(tmp_path / "out", source=str(messy_folder), progress=False)
    again = build_midi(tmp_path / "out", source=str(messy_folder), progress=False)
    assert (again.built, again.skipped) == (0, 5)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["checksums"] == first.manifest["checksums"]
    assert again.manifest["pieces_skipped"] == first.manifest["pieces_skipped"]


def test_empty_score_error_is_ours(tmp_path: Path) -> None:
    write_score(tmp_path / "e.mid", [])
    from orchestrion.data.scores import ScoreRef

    with pytest.raises(EmptyScoreError):
        load_score(ScoreRef("e", str(tmp_path), str(tmp_path / "e.mid")))


def test_reader_takes_the_split_folders_the_builder_wrote(tmp_path):
    from orchestrion.data.build_midi import build_midi
    from orchestrion.data.midi_folder import MidiFolder

    build_midi(tmp_path, source="music21:bach", limit=12, progress=False)
    folder = MidiFolder(tmp_path)
    assert len(folder) >= 10
    for record in folder.records:
        assert record.relative_path.split("/")[0] == record.split
