"""Score sources for the dataset builders: music21's bundled corpus or a folder of MIDI files.

A source is named by one string:

``music21:<composer>`` (e.g. ``music21:bach``)
    the scores music21 ships for that composer (``music21.corpus.getComposer``), parsed
    with music21 and exported to MIDI at one fixed tempo (default 80 quarter notes per
    minute). Only pieces with `MUSIC21_MIN_PARTS`-`MUSIC21_MAX_PARTS` non-empty parts are
    kept: for ``bach`` that is the four-part chorales and the few with a continuo or
    one obbligato line, not the cantata movements with trumpets and timpani. Roman-numeral
    analyses (``.rntxt``) are not scores and are never listed; when a piece exists in
    several formats (``bwv277.krn`` and ``bwv277.mxl``) the MusicXML one is used.
any other string
    a folder, searched recursively for ``.mid`` / ``.midi`` files (AppleDouble ``._*``
    files ignored), each validated with `orchestrion.symbolic.midi.read_midi`.

Listing (`list_scores`) is cheap and parses nothing; `load_score` parses one piece. The
builders put a `ScoreRef` (plain strings, picklable) in each build item so that their
worker processes do the slow parsing (music21 needs ~0.4 s per chorale) in parallel.

Names are stable and unique within a source: the corpus file name without its suffix for
music21 (``bwv66.6``, ``bwv248.33-3``), the path below the folder without its suffix for a
folder (``sub/song``). The order is stable too: names sorted "naturally" (numbers by
value, so ``bwv2.6`` comes before ``bwv10.7``).
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pretty_midi

from orchestrion.data.records import SkippedEntry, is_resource_fork
from orchestrion.errors import (
    ConfigError,
    EmptyScoreError,
    InputFileNotFoundError,
    MidiReadError,
    OrchestrionError,
)
from orchestrion.symbolic.midi import read_midi, remove_invalid_notes

MUSIC21_PREFIX = "music21:"
DEFAULT_TEMPO_BPM = 80.0
"""Tempo of music21 scores, in quarter notes per minute (their own tempo marks are replaced)."""
MUSIC21_MIN_PARTS = 2
MUSIC21_MAX_PARTS = 6
MUSIC21_SCORE_SUFFIXES = (".mxl", ".musicxml", ".xml", ".krn", ".mid", ".midi", ".abc", ".mei")
"""Corpus file types read as scores, most preferred first (a piece in two formats keeps the first)."""
MIDI_SUFFIXES = (".mid", ".midi")


class ScoreReadError(MidiReadError):
    """A score file (MusicXML, Humdrum, ...) cannot be parsed or converted to MIDI."""


class PartCountError(OrchestrionError):
    """A score has more or fewer parts than the source or builder accepts."""


@dataclass(frozen=True)
class ScoreRef:
    """One score of a source, not yet parsed (picklable: plain strings).

    Attributes
    ----------
    name : stable unique name within the source, e.g. ``"bwv66.6"`` or ``"sub/song"``.
    source : the source string it came from (``"music21:bach"`` or a folder path).
    path : the score file (absolute).
    """

    name: str
    source: str
    path: str

    @property
    def is_music21(self) -> bool:
        """True when the score is read with music21 (a corpus score), False for a MIDI file."""
        return self.source.startswith(MUSIC21_PREFIX)


@dataclass(frozen=True)
class ScoreSource:
    """A parsed score: its stable `name`, the file it came from and the score as pretty_midi.

    Attributes
    ----------
    name : see `ScoreRef.name`.
    path : the score file.
    midi : the score; times in seconds, one instrument per part, empty parts removed.
    """

    name: str
    path: Path
    midi: pretty_midi.PrettyMIDI


def check_tempo(tempo_bpm: float) -> None:
    """Raise ConfigError unless `tempo_bpm` (quarter notes per minute) is a sensible tempo, 10-1000."""
    if not 10.0 <= float(tempo_bpm) <= 1000.0:
        raise ConfigError(f"tempo must be 10-1000 quarter notes per minute, got {tempo_bpm}")


def natural_sort_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing digit runs by value: "bwv2.6" < "bwv10.7" < "bwv10.7b"."""
    return tuple((0, int(run)) if run.isdigit() else (1, run) for run in re.findall(r"\d+|\D+", text))


def list_scores(source: str, limit: int | None = None) -> list[ScoreRef]:
    """List the scores of `source` in their stable order, without parsing any.

    Parameters
    ----------
    source : ``"music21:<composer>"`` or a folder of MIDI files (see the module docstring).
    limit : keep only the first `limit` scores of the order (None keeps all). Pieces that
        later fail to parse or are filtered out still count towards the limit.

    Raises
    ------
    ConfigError
        Unknown music21 composer, music21 not installed, `limit` < 1, or no scores found.
    InputFileNotFoundError
        The folder does not exist.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    source = str(source)
    if source.startswith(MUSIC21_PREFIX):
        refs = _list_music21(source)
    else:
        refs = _list_midi_folder(source)
    if not refs:
        raise ConfigError(f"score source {source!r} holds no scores")
    return refs if limit is None else refs[:limit]


def load_score(
    ref: ScoreRef,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    min_parts: int = MUSIC21_MIN_PARTS,
    max_parts: int = MUSIC21_MAX_PARTS,
) -> ScoreSource:
    """Parse one listed score into pretty_midi (empty parts removed).

    Parameters
    ----------
    ref : a score from `list_scores`.
    tempo_bpm : tempo for music21 scores in quarter notes per minute (MIDI files keep
        their own tempo map).
    min_parts, max_parts : for music21 scores, the accepted number of non-empty parts
        (MIDI files are not filtered by part count; their builders decide).

    Raises
    ------
    ScoreReadError
        music21 cannot parse the file or export it to MIDI.
    MidiReadError, EmptyScoreError
        From `read_midi` for a MIDI file (corrupt; no playable notes).
    EmptyScoreError
        A music21 score with no notes.
    PartCountError
        A music21 score with fewer than `min_parts` or more than `max_parts` parts.
    """
    if not ref.is_music21:
        midi = read_midi(ref.path)
        return ScoreSource(ref.name, Path(ref.path), _without_empty_parts(midi))
    check_tempo(tempo_bpm)
    midi = _music21_to_midi(Path(ref.path), float(tempo_bpm))
    remove_invalid_notes(midi, source=ref.path)  # e.g. grace notes exported without duration
    midi = _without_empty_parts(midi)
    n_parts = sum(1 for inst in midi.instruments if not inst.is_drum)
    if n_parts == 0:
        raise EmptyScoreError("the score holds no notes", ref.path)
    if not min_parts <= n_parts <= max_parts:
        raise PartCountError(
            f"has {n_parts} parts; this source keeps pieces with {min_parts}-{max_parts}", ref.path
        )
    return ScoreSource(ref.name, Path(ref.path), midi)


def iter_scores(
    source: str,
    limit: int | None = None,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    skipped: list[SkippedEntry] | None = None,
) -> Iterator[ScoreSource]:
    """Yield the parsed scores of `source` in their stable order, skipping bad ones.

    Parameters
    ----------
    source : ``"music21:<composer>"`` or a folder of MIDI files.
    limit : stop after yielding this many scores (None: all). Unlike `list_scores`,
        skipped pieces do not count.
    tempo_bpm : tempo of music21 scores, quarter notes per minute.
    skipped : if given, every skipped piece is appended as (file, reason).
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    yielded = 0
    for ref in list_scores(source):
        try:
            score = load_score(ref, tempo_bpm)
        except OrchestrionError as exc:
            if skipped is not None:
                skipped.append(SkippedEntry(Path(ref.path), str(exc)))
            continue
        yield score
        yielded += 1
        if limit is not None and yielded >= limit:
            return


# --------------------------------------------------------------------------- music21


def _import_music21():
    try:
        import music21  # noqa: PLC0415  (slow import, only for music21 sources)
    except ImportError as exc:
        raise ConfigError(
            f"score source {MUSIC21_PREFIX}... needs the music21 package ({exc}); "
            "install it with `pip install music21`, or give a folder of MIDI files"
        ) from exc
    return music21


def _list_music21(source: str) -> list[ScoreRef]:
    composer = source[len(MUSIC21_PREFIX):].strip()
    if not composer:
        raise ConfigError(f"score source {source!r}: name a composer, e.g. {MUSIC21_PREFIX}bach")
    music21 = _import_music21()
    paths = [Path(p) for p in music21.corpus.getComposer(composer)]
    if not paths:
        raise ConfigError(
            f"music21's corpus has no scores for composer {composer!r} (try {MUSIC21_PREFIX}bach)"
        )
    root = Path(os.path.commonpath([p.parent for p in paths]))
    rank = {suffix: i for i, suffix in enumerate(MUSIC21_SCORE_SUFFIXES)}
    chosen: dict[str, Path] = {}
    for path in paths:
        suffix = path.suffix.lower()
        if suffix not in rank:
            continue
        name = path.relative_to(root).with_suffix("").as_posix()
        if name not in chosen or rank[suffix] < rank[chosen[name].suffix.lower()]:
            chosen[name] = path
    return [ScoreRef(name, source, str(chosen[name])) for name in sorted(chosen, key=natural_sort_key)]


def _music21_to_midi(path: Path, tempo_bpm: float) -> pretty_midi.PrettyMIDI:
    """Parse with music21, set one tempo, export to a temporary MIDI file, read it back."""
    music21 = _import_music21()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # forceSource: never read or write music21's pickle cache (a shared temp folder:
            # racy across worker processes, and unpickling files there is unsafe).
            score = music21.converter.parse(str(path), forceSource=True)
            if isinstance(score, music21.stream.Opus):
                raise ScoreReadError("holds several pieces (an opus); give one piece per file", path)
            for mark in list(score.recurse().getElementsByClass(music21.tempo.TempoIndication)):
                mark.activeSite.remove(mark)
            parts = list(score.parts) or [score]
            quarter = music21.duration.Duration(1.0)
            parts[0].insert(0, music21.tempo.MetronomeMark(number=tempo_bpm, referent=quarter))
            with tempfile.TemporaryDirectory(prefix="orchestrion-score-") as folder:
                midi_path = Path(folder) / "score.mid"
                score.write("midi", fp=str(midi_path))
                return pretty_midi.PrettyMIDI(str(midi_path))
    except OrchestrionError:
        raise
    except Exception as exc:  # music21 and its parsers raise many unrelated exception types
        reason = f"{type(exc).__name__}: {exc}"
        raise ScoreReadError(f"music21 cannot read this score ({reason})", path) from exc


# --------------------------------------------------------------------------- MIDI folders


def _list_midi_folder(source: str) -> list[ScoreRef]:
    folder = Path(source)
    if not folder.is_dir():
        if folder.is_file():
            raise ConfigError(
                f"score source {source!r} is a file; give a folder of MIDI files or {MUSIC21_PREFIX}bach"
            )
        raise InputFileNotFoundError(
            "score folder not found (a score source is a folder of MIDI files"
            f" or {MUSIC21_PREFIX}<composer>)",
            folder,
        )
    files = [
        p for p in folder.rglob("*")
        if p.suffix.lower() in MIDI_SUFFIXES and p.is_file() and not is_resource_fork(p)
    ]
    relative = sorted((p.relative_to(folder).as_posix() for p in files), key=natural_sort_key)
    refs: list[ScoreRef] = []
    names: set[str] = set()
    for rel in relative:
        name = rel.rsplit(".", 1)[0]
        if name in names:  # song.mid beside song.midi: the second keeps its suffix
            name = rel
        names.add(name)
        refs.append(ScoreRef(name, source, str((folder / rel).resolve())))
    return refs


def _without_empty_parts(midi: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    midi.instruments = [inst for inst in midi.instruments if inst.notes]
    return midi
