"""Reading and writing MIDI files, with checks that turn bad input into clear errors.

Everything symbolic in orchestrion goes through :func:`read_midi` and :func:`write_midi`;
scores are ``pretty_midi.PrettyMIDI`` objects, times in seconds, pitches as MIDI note
numbers (C4 = 60), velocities 1..127.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mido
import pretty_midi

from orchestrion.errors import ConfigError, DrumOnlyScoreError, EmptyScoreError, MidiReadError
from orchestrion.files import atomic_output, require_file
from orchestrion.symbolic.instruments import DrumTrackWarning, track_label, warn_drum_track

ScoreLike = pretty_midi.PrettyMIDI | str | Path
"""A score, or the path of a MIDI file to read with :func:`read_midi`."""

_DETAIL_CHARS = 120
DRUM_CHANNEL = 9
"""MIDI channel 10 (0-based 9): General MIDI's drum kit."""
MIDI_MAGICS = (b"MThd", b"RIFF")
"""The first 4 bytes of a Standard MIDI File, and of one wrapped in RIFF (RMID), which mido reads."""


class ScoreRepairWarning(UserWarning):
    """Notes that cannot be played (no duration) were removed from a score."""


def _short_reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError) and not str(exc):
        return "the file ends in the middle of the music data: it is cut short"
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def read_midi(path: str | Path) -> pretty_midi.PrettyMIDI:
    """Read a Standard MIDI File and check that it holds pitched notes.

    Notes whose end is at or before their start are removed (a
    :class:`ScoreRepairWarning` gives the count); drum tracks are kept in the returned
    score (see :func:`melodic_instruments` to leave them out).

    Parameters
    ----------
    path : str or Path
        A ``.mid`` / ``.midi`` file.

    Returns
    -------
    pretty_midi.PrettyMIDI
        The score; note times in seconds.

    Raises
    ------
    InputFileNotFoundError
        If `path` is not a file.
    MidiReadError
        If the file is damaged or not MIDI at all (every parser failure is turned into
        this error, with the parser's reason in brackets).
    EmptyScoreError
        If the file holds no notes, or only drum-kit notes.
    """
    path = require_file(path)
    with open(path, "rb") as head:
        magic = head.read(4)
    if magic not in MIDI_MAGICS:
        found = "it is empty" if not magic else f"it starts with {magic!r}"
        raise MidiReadError(f"is not a MIDI file: no MIDI header ('MThd'; {found})", path)
    try:
        midi_file = mido.MidiFile(filename=str(path))
    except Exception as exc:  # noqa: BLE001 - mido: OSError, EOFError, ValueError, KeyError, ...
        if isinstance(exc, MemoryError):
            raise
        raise MidiReadError(
            "cannot be read as MIDI: the file is damaged or is not a MIDI file"
            f" ({_short_reason(exc)})",
            path,
        ) from exc
    try:
        score = pretty_midi.PrettyMIDI(mido_object=midi_file)
    except Exception as exc:  # noqa: BLE001 - pretty_midi: ValueError, IndexError, KeyError, ...
        if isinstance(exc, MemoryError):
            raise
        raise MidiReadError(
            "holds MIDI data that makes no sense, the file is probably damaged"
            f" ({_short_reason(exc)})",
            path,
        ) from exc
    drum_notes = count_drum_notes(midi_file)
    unread_drum_notes = drum_notes - sum(len(inst.notes) for inst in score.instruments if inst.is_drum)
    remove_invalid_notes(score, source=path)
    if not any(inst.notes for inst in score.instruments if not inst.is_drum):
        if drum_notes:
            raise DrumOnlyScoreError(
                f"holds only drum notes ({drum_notes} on MIDI channel 10), which orchestrion cannot"
                " play: it needs at least one pitched instrument",
                path,
            )
        raise EmptyScoreError("holds no notes", path)
    if unread_drum_notes > 0:  # hits with no length: pretty_midi drops them without a track
        warnings.warn(
            f"{unread_drum_notes} drum note{'s' if unread_drum_notes != 1 else ''} of no length"
            " skipped (MIDI channel 10; drums have no instrument slot)",
            DrumTrackWarning,
            stacklevel=2,
        )
    return score


def count_drum_notes(midi_file: mido.MidiFile) -> int:
    """The note-ons on the drum channel (MIDI channel 10), hits of no length included."""
    return sum(
        1
        for track in midi_file.tracks
        for message in track
        if message.type == "note_on" and message.velocity > 0 and message.channel == DRUM_CHANNEL
    )


def write_midi(score: pretty_midi.PrettyMIDI, path: str | Path) -> Path:
    """Write `score` to a Standard MIDI File atomically.

    The file appears only once it is complete: a failed write leaves any existing file at
    `path` untouched.

    Parameters
    ----------
    score : pretty_midi.PrettyMIDI
        Notes with pitch 0..127, velocity 1..127, 0 <= start < end (seconds).
    path : str or Path
        Output file; parent folders are created.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    ConfigError
        If a note cannot be written (pitch or velocity out of range, no duration,
        negative time) or a program is outside 0..127; the message names the track.
    """
    if not isinstance(score, pretty_midi.PrettyMIDI):
        raise ConfigError(
            f"write_midi needs a pretty_midi.PrettyMIDI score, got {type(score).__name__}", path
        )
    for index, inst in enumerate(score.instruments):
        if not 0 <= inst.program <= 127:
            raise ConfigError(
                f"{track_label(inst, index)} has program {inst.program}, outside 0..127", path
            )
        for note in inst.notes:
            problem = None
            if not 0 <= note.pitch <= 127:
                problem = f"pitch {note.pitch} is outside MIDI notes 0..127"
            elif not 1 <= note.velocity <= 127:
                problem = f"velocity {note.velocity} is outside 1..127"
            elif note.start < 0:
                problem = "it starts before time 0"
            elif note.end <= note.start:
                problem = "it ends at or before its start"
            if problem:
                raise ConfigError(
                    f"cannot write the note at {note.start:.3f} s in {track_label(inst, index)}:"
                    f" {problem}",
                    path,
                )
    path = Path(path)
    with atomic_output(path) as tmp:
        score.write(str(tmp))
    return path


def remove_invalid_notes(score: pretty_midi.PrettyMIDI, source: str | Path | None = None) -> int:
    """Remove notes whose end is at or before their start, in place.

    Parameters
    ----------
    score : pretty_midi.PrettyMIDI
        Modified in place.
    source : str or Path, optional
        Named in the :class:`ScoreRepairWarning` issued when notes are removed.

    Returns
    -------
    int
        Number of notes removed.
    """
    removed = 0
    for inst in score.instruments:
        kept = [note for note in inst.notes if note.end > note.start]
        removed += len(inst.notes) - len(kept)
        inst.notes = kept
    if removed:
        where = f"{source}: " if source is not None else ""
        warnings.warn(
            f"{where}removed {removed} note{'s' if removed != 1 else ''} with no duration"
            " (end at or before start)",
            ScoreRepairWarning,
            stacklevel=2,
        )
    return removed


def melodic_instruments(score: pretty_midi.PrettyMIDI) -> list[pretty_midi.Instrument]:
    """The score's pitched tracks that hold notes, in score order.

    Drum-kit tracks with notes are left out with a :class:`DrumTrackWarning` naming each one.
    """
    melodic = []
    for index, inst in enumerate(score.instruments):
        if not inst.notes:
            continue
        if inst.is_drum:
            warn_drum_track(inst, index)
            continue
        melodic.append(inst)
    return melodic


def score_duration(score: pretty_midi.PrettyMIDI, include_drums: bool = False) -> float:
    """End of the last note, in seconds (0.0 for a score without notes).

    Unlike ``PrettyMIDI.get_end_time`` this ignores trailing control changes and meta events.
    """
    tracks = [inst for inst in score.instruments if include_drums or not inst.is_drum]
    ends = [note.end for inst in tracks for note in inst.notes]
    return max(ends, default=0.0)


def as_score(score_or_path: ScoreLike) -> pretty_midi.PrettyMIDI:
    """Return `score_or_path` itself if it is a score, else read it with :func:`read_midi`."""
    if isinstance(score_or_path, pretty_midi.PrettyMIDI):
        return score_or_path
    if isinstance(score_or_path, (str, Path)):
        return read_midi(score_or_path)
    raise ConfigError(
        "expected a pretty_midi.PrettyMIDI score or a MIDI file path,"
        f" got {type(score_or_path).__name__}"
    )
