"""Typed records the dataset readers list.

Records are frozen dataclasses that hold *paths*, never audio: listing a dataset only
reads its index files (json, csv, text), and the datasets load audio lazily per item.
Times are in seconds, pitches are MIDI note numbers (C4 = 60), velocities are MIDI
velocities (0-127), sample rates are in Hz and sample indices count frames of the
file at its own sample rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple


class SkippedEntry(NamedTuple):
    """One dataset entry a reader left out because it was bad (``skip_bad=True``).

    Attributes
    ----------
    path : the file at fault (an index file, an audio file, a label file).
    reason : the readable problem, with the line number or key where one applies.
    """

    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """One note of a performance or score.

    Attributes
    ----------
    onset_s : start time in seconds.
    offset_s : end time in seconds (``>= onset_s``).
    pitch : MIDI note number, 0-127.
    velocity : MIDI velocity 0-127, or None when the source has none (URMP).
    """

    onset_s: float
    offset_s: float
    pitch: int
    velocity: int | None = None

    @property
    def duration_s(self) -> float:
        """Length of the note in seconds."""
        return self.offset_s - self.onset_s


@dataclass(frozen=True, slots=True)
class LabeledNote:
    """One row of a MusicNet label file, converted to seconds and a 0-based program.

    Attributes
    ----------
    onset_s, offset_s : start and end in seconds (the file's sample indices / 44,100).
    pitch : MIDI note number.
    program : General MIDI program, 0-based as in pretty_midi (the file's value - 1).
    start_beat : onset in beats from the start of the piece.
    duration_beats : length in beats (the file's ``end_beat`` column is a duration).
    note_value : the written value, e.g. ``"Quarter"``, ``"Dotted Eighth"``.
    """

    onset_s: float
    offset_s: float
    pitch: int
    program: int
    start_beat: float
    duration_beats: float
    note_value: str


@dataclass(frozen=True)
class NoteRecord:
    """One NSynth note: a 4 s, 16 kHz mono recording of one instrument, pitch and velocity.

    Attributes
    ----------
    audio_path : ``<split folder>/audio/<note_str>.wav``.
    note_str : ``<instrument_str>-<pitch:03d>-<velocity:03d>``, the example's key.
    note_id : the example's integer ``note`` id.
    instrument_str : ``<family>_<source>_<NNN>``, e.g. ``synth_lead_synthetic_001``.
    instrument : integer instrument id (1,006 in the full release).
    family : family name, e.g. ``"synth_lead"``; `family_id` its index 0-10.
    source : ``"acoustic"``, ``"electronic"`` or ``"synthetic"``; `source_id` 0-2.
    instrument_number : the trailing ``NNN`` of `instrument_str`.
    pitch : MIDI note number 0-127.
    velocity : MIDI velocity 0-127.
    sample_rate : the rate the json declares, in Hz (16,000).
    qualities : 10 flags 0/1 in the order of ``orchestrion.data.nsynth.QUALITIES``.
    qualities_str : the names of the qualities present (may be empty).
    split : ``"train"``, ``"valid"`` or ``"test"`` (the split folder's suffix).
    """

    audio_path: Path
    note_str: str
    note_id: int
    instrument_str: str
    instrument: int
    family: str
    family_id: int
    source: str
    source_id: int
    instrument_number: int
    pitch: int
    velocity: int
    sample_rate: int
    qualities: tuple[int, ...]
    qualities_str: tuple[str, ...]
    split: str


@dataclass(frozen=True)
class PartRecord:
    """One part (one player) of a multi-track piece.

    Attributes
    ----------
    index : the part number k, 1-based as in URMP file names.
    instrument : instrument code as the files spell it, e.g. ``"vn"``, ``"tpt"``.
    audio_path : the isolated recording (URMP ``AuSep_*.wav``).
    notes : the part's notes sorted by onset, parsed from `notes_path`.
    notes_path : the note annotation (URMP ``Notes_*.txt``).
    f0_path : the pitch track (URMP ``F0s_*.txt``), or None if absent; loaded lazily.
    """

    index: int
    instrument: str
    audio_path: Path
    notes: tuple[Note, ...]
    notes_path: Path
    f0_path: Path | None = None


@dataclass(frozen=True)
class PieceRecord:
    """One multi-track piece: a mix, one stem per part, annotations and a score.

    Attributes
    ----------
    piece_id : the piece folder's name, e.g. ``"01_Jupiter_vn_vc"`` (the key of splits).
    number : the piece number NN.
    name : the piece name, e.g. ``"Jupiter"``.
    parts : the parts ordered by their index k.
    mix_path : the mixture recording (URMP ``AuMix_*.wav``).
    score_path : the MIDI score (URMP ``Sco_*.mid``), or None if absent.
    split : ``"train"``, ``"valid"``, ``"test"``, or ``"all"`` without a split file.
    folder : the piece's folder.
    """

    piece_id: str
    number: int
    name: str
    parts: tuple[PartRecord, ...]
    mix_path: Path
    score_path: Path | None
    split: str
    folder: Path

    @property
    def instruments(self) -> tuple[str, ...]:
        """Instrument code of each part, in part order (taken from the file names)."""
        return tuple(part.instrument for part in self.parts)


@dataclass(frozen=True)
class IowaNoteRecord:
    """One note of the University of Iowa MIS: a whole one-note file or a run segment.

    Attributes
    ----------
    audio_path : the AIFF file.
    instrument : the file name's instrument, e.g. ``"Flute"``, ``"BbClar"``, ``"Piano"``.
    articulation : the other name tokens joined by ``"."`` (e.g. ``"nonvib"``,
        ``"arco.sulG"``), or None.
    dynamic : ``"pp"``, ``"mf"``, ``"ff"`` (any of ppp..fff is accepted).
    velocity : a MIDI velocity for the dynamic (see ``orchestrion.data.iowa.DYNAMIC_VELOCITY``).
    pitch : sounding MIDI note number (C4 = 60).
    sample_rate : the file's rate in Hz.
    start_sample, end_sample : the note's frame range ``[start, end)`` in the file;
        for one-note files the whole file.
    is_run_segment : True if the note was cut out of a chromatic run file.
    """

    audio_path: Path
    instrument: str
    articulation: str | None
    dynamic: str
    velocity: int
    pitch: int
    sample_rate: int
    start_sample: int
    end_sample: int
    is_run_segment: bool

    @property
    def duration_s(self) -> float:
        """Length of the note in seconds."""
        return (self.end_sample - self.start_sample) / self.sample_rate


@dataclass(frozen=True)
class MusicNetRecord:
    """One MusicNet recording and its label file (labels are parsed lazily).

    Attributes
    ----------
    piece_id : the file stem, e.g. ``"1727"``.
    audio_path : ``{split}_data/<id>.wav`` (44.1 kHz mono).
    labels_path : ``{split}_labels/<id>.csv``.
    split : ``"train"`` or ``"test"``.
    """

    piece_id: str
    audio_path: Path
    labels_path: Path
    split: str


@dataclass(frozen=True)
class MidiFileRecord:
    """One MIDI file of a corpus folder (parsed lazily).

    Attributes
    ----------
    path : the ``.mid`` / ``.midi`` file.
    relative_path : its path below the corpus root, ``/``-separated (the split hash key).
    split : ``"train"``, ``"valid"`` or ``"test"``.
    composer, title, year, duration_s, audio_path : MAESTRO metadata, None elsewhere.
    """

    path: Path
    relative_path: str
    split: str
    composer: str | None = None
    title: str | None = None
    year: int | None = None
    duration_s: float | None = None
    audio_path: Path | None = None


# --- small helpers shared by the readers ------------------------------------------------


def is_resource_fork(path: str | Path) -> bool:
    """True for macOS AppleDouble files (``._name``) that sit beside real files in archives."""
    return Path(path).name.startswith("._")


def skip_or_raise(error: Exception, skip_bad: bool, skipped: list[SkippedEntry]) -> None:
    """Raise `error` (a DatasetError), or append it to `skipped` when `skip_bad` is True."""
    if not skip_bad:
        raise error
    path = getattr(error, "path", None)
    skipped.append(SkippedEntry(Path(path) if path is not None else Path("."), str(error)))
