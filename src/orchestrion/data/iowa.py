"""Reader for the University of Iowa Musical Instrument Samples (MIS).

Three kinds of file, all AIFF (``.aiff`` or ``.aif``), found anywhere below the root:

- older chromatic runs, several notes separated by silence:
  ``<Instr>.<articulation?>.<dyn>.<Low><High>.aiff``, e.g. ``Flute.nonvib.ff.B3B4.aiff``,
  ``BbClar.ff.C4B4.aiff``. The notes are cut at the silences and given consecutive
  chromatic pitches from Low; if the number of notes found is not ``High - Low + 1``
  the file is reported (DatasetError, or skipped with ``skip_bad=True``).
- one-note piano files ``Piano.<dyn>.<Note><Oct>.aiff`` (A0-C8);
- newer one-note files, e.g. ``Flute.nonvib.ff.A4.stereo.aif``.

Note names use flats (``Bb3``, ``Db5``; sharps are accepted too), C4 = MIDI 60, and
pitches are as sounding. Name tokens other than the instrument (first), the dynamic,
the note and a trailing ``stereo``/``mono`` (e.g. ``nonvib``, ``arco``, ``sulG``) are kept
as the record's articulation. AppleDouble files (``._*``) are ignored.

Listing reads one-note files' headers and decodes run files once to segment them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from orchestrion.audio.io import load_audio, resample
from orchestrion.errors import ConfigError, DatasetError, InputFileNotFoundError, OrchestrionError
from orchestrion.data.records import IowaNoteRecord, SkippedEntry, is_resource_fork, skip_or_raise

IOWA_SUFFIXES = (".aiff", ".aif")
DYNAMIC_VELOCITY = {"ppp": 16, "pp": 33, "p": 49, "mp": 64, "mf": 80, "f": 96, "ff": 112, "fff": 127}
"""MIDI velocity given to each written dynamic (the common DAW convention)."""
CHANNEL_TOKENS = ("stereo", "mono")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NOTE = r"([A-G](?:b|#)?)(\d)"
_ONE_NOTE = re.compile(rf"^{_NOTE}$")
_NOTE_RANGE = re.compile(rf"^{_NOTE}{_NOTE}$")


def note_name_to_pitch(name: str, octave: int) -> int:
    """MIDI number of a note name (``"Bb"``, ``"C#"``, ``"A"``) in `octave`, with C4 = 60."""
    letter, accidental = name[0].upper(), name[1:]
    offset = {"": 0, "b": -1, "#": 1}.get(accidental)
    if letter not in _PITCH_CLASS or offset is None:
        raise ValueError(f"not a note name: {name!r}")
    return 12 * (octave + 1) + _PITCH_CLASS[letter] + offset


@dataclass(frozen=True)
class IowaFileName:
    """What an Iowa MIS file name says.

    Attributes
    ----------
    path : the file.
    instrument : first name token, e.g. ``"BbClar"``.
    articulation : the remaining descriptive tokens joined by ``"."``, or None.
    dynamic : ``"pp"``, ``"mf"``, ``"ff"`` (any of ppp..fff).
    low_pitch, high_pitch : MIDI range of the file (equal for one-note files).
    is_run : True for ``<Low><High>`` chromatic-run files.
    """

    path: Path
    instrument: str
    articulation: str | None
    dynamic: str
    low_pitch: int
    high_pitch: int
    is_run: bool

    @property
    def expected_note_count(self) -> int:
        """Number of notes the file should hold."""
        return self.high_pitch - self.low_pitch + 1


def parse_iowa_file_name(path: str | Path) -> IowaFileName:
    """Parse an Iowa MIS file name (see the module docstring).

    Raises
    ------
    ValueError
        If the name has no dynamic or no note / note range, or the range runs downwards.
    """
    path = Path(path)
    stem = path.name
    for suffix in IOWA_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    tokens = stem.split(".")
    while len(tokens) > 1 and tokens[-1].lower() in CHANNEL_TOKENS:
        tokens.pop()
    if len(tokens) < 3:
        raise ValueError("expected <Instrument>.<articulation?>.<dynamic>.<Note> or <Low><High>")
    instrument, rest = tokens[0], tokens[1:]
    pitch_index = next(
        (i for i in range(len(rest) - 1, -1, -1) if _ONE_NOTE.match(rest[i]) or _NOTE_RANGE.match(rest[i])), None
    )
    if pitch_index is None:
        raise ValueError("no note (e.g. A4) or note range (e.g. B3B4) in the name")
    dynamic_index = next((i for i, token in enumerate(rest) if token.lower() in DYNAMIC_VELOCITY), None)
    if dynamic_index is None:
        raise ValueError(f"no dynamic ({', '.join(DYNAMIC_VELOCITY)}) in the name")
    pitch_token = rest[pitch_index]
    if match := _NOTE_RANGE.match(pitch_token):
        low = note_name_to_pitch(match.group(1), int(match.group(2)))
        high = note_name_to_pitch(match.group(3), int(match.group(4)))
        is_run = True
        if high < low:
            raise ValueError(f"note range {pitch_token} runs downwards")
    else:
        match = _ONE_NOTE.match(pitch_token)
        low = high = note_name_to_pitch(match.group(1), int(match.group(2)))
        is_run = False
    others = [t for i, t in enumerate(rest) if i not in (pitch_index, dynamic_index)]
    return IowaFileName(
        path=path,
        instrument=instrument,
        articulation=".".join(others) or None,
        dynamic=rest[dynamic_index].lower(),
        low_pitch=low,
        high_pitch=high,
        is_run=is_run,
    )


@dataclass(frozen=True)
class SegmentationConfig:
    """How run files are cut into notes at their silences.

    A frame is "sounding" when its RMS level exceeds
    ``max(peak + relative_threshold_db, noise_floor + noise_margin_db)``, capped at
    ``peak - min_prominence_db``; the noise floor is the `noise_percentile`-th
    percentile of the frame levels. Sounding stretches closer than `min_silence_s`
    merge; stretches shorter than `min_note_s` are dropped; each note is widened by
    `margin_s` on both sides (never into its neighbour).

    Attributes
    ----------
    frame_s : frame length and hop of the level analysis, seconds.
    relative_threshold_db : threshold relative to the loudest frame, dB (negative).
    noise_margin_db : minimum height of the threshold above the noise floor, dB.
    noise_percentile : percentile of frame levels taken as the noise floor.
    min_prominence_db : the threshold stays at least this far below the peak, dB.
    min_silence_s : shortest gap that separates two notes, seconds.
    min_note_s : shortest stretch counted as a note, seconds.
    margin_s : padding kept around each note, seconds.
    """

    frame_s: float = 0.01
    relative_threshold_db: float = -45.0
    noise_margin_db: float = 10.0
    noise_percentile: float = 10.0
    min_prominence_db: float = 20.0
    min_silence_s: float = 0.15
    min_note_s: float = 0.05
    margin_s: float = 0.02


def segment_notes(
    wave: np.ndarray, sample_rate: int, config: SegmentationConfig = SegmentationConfig()
) -> list[tuple[int, int]]:
    """Find the notes of a recording separated by silence.

    Parameters
    ----------
    wave : float (samples,) mono audio.
    sample_rate : its rate in Hz.
    config : thresholds and durations.

    Returns
    -------
    list of ``(start_sample, end_sample)`` half-open ranges in time order.
    """
    hop = max(1, int(round(config.frame_s * sample_rate)))
    n_frames = int(np.ceil(wave.shape[0] / hop))
    if n_frames == 0:
        return []
    padded = np.zeros(n_frames * hop, dtype=np.float64)
    padded[: wave.shape[0]] = wave
    rms = np.sqrt(np.mean(padded.reshape(n_frames, hop) ** 2, axis=1))
    level_db = 20.0 * np.log10(rms + 1e-10)
    peak_db = float(level_db.max())
    noise_db = float(np.percentile(level_db, config.noise_percentile))
    threshold_db = max(peak_db + config.relative_threshold_db, noise_db + config.noise_margin_db)
    threshold_db = min(threshold_db, peak_db - config.min_prominence_db)
    sounding = level_db > threshold_db
    # start/end frames of sounding stretches
    edges = np.diff(np.concatenate([[0], sounding.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    min_gap = config.min_silence_s / config.frame_s
    merged: list[list[int]] = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        if merged and start - merged[-1][1] < min_gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    min_len = config.min_note_s / config.frame_s
    frames = [(s, e) for s, e in merged if e - s >= min_len]
    margin = int(round(config.margin_s * sample_rate))
    segments = []
    for i, (start, end) in enumerate(frames):
        lower = 0 if i == 0 else (frames[i - 1][1] * hop + start * hop) // 2
        upper = wave.shape[0] if i == len(frames) - 1 else (end * hop + frames[i + 1][0] * hop) // 2
        segments.append((max(lower, start * hop - margin), min(upper, end * hop + margin, wave.shape[0])))
    return segments


def _as_set(values: Iterable[Any] | None, lower: bool = False) -> set[Any] | None:
    if values is None:
        return None
    if isinstance(values, (str, int)):
        values = [values]
    return {v.lower() if lower and isinstance(v, str) else v for v in values}


class IowaDataset(Dataset):
    """Iowa MIS notes as a torch Dataset, one item per note (run files are segmented).

    Parameters
    ----------
    root : folder searched recursively for ``.aiff`` / ``.aif`` files.
    instruments : keep only these instruments as the file names spell them (any case),
        e.g. ``{"Flute", "BbClar"}``.
    dynamics : keep only these dynamics, e.g. ``{"ff"}``.
    pitches : keep only these MIDI pitches.
    skip_bad : skip bad files (recorded in `skipped`) instead of raising DatasetError.
    sample_rate : rate in Hz of the audio items return (None: the file's own).
    segmentation : thresholds for cutting run files.

    Attributes
    ----------
    records : the kept IowaNoteRecords, by file path then pitch.
    skipped : (file, reason) for every bad file left out (unparsable name, unreadable
        audio, note count of a run not matching its name).

    Items are dicts: ``audio`` float32 tensor (samples,) of the note (variable length),
    ``sample_rate`` int, ``pitch``, ``velocity``, ``index`` ints.
    """

    def __init__(
        self,
        root: str | Path,
        instruments: Iterable[str] | None = None,
        dynamics: Iterable[str] | None = None,
        pitches: Iterable[int] | None = None,
        skip_bad: bool = False,
        sample_rate: int | None = None,
        segmentation: SegmentationConfig = SegmentationConfig(),
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputFileNotFoundError("Iowa MIS folder not found", self.root)
        self.skip_bad = skip_bad
        self.sample_rate = sample_rate
        self.segmentation = segmentation
        self.skipped: list[SkippedEntry] = []
        instrument_set = _as_set(instruments, lower=True)
        dynamic_set = _as_set(dynamics, lower=True)
        pitch_set = _as_set(pitches)
        if dynamic_set is not None and not dynamic_set <= set(DYNAMIC_VELOCITY):
            raise ConfigError(f"unknown dynamic(s) {sorted(dynamic_set - set(DYNAMIC_VELOCITY))}")
        records: list[IowaNoteRecord] = []
        for path in self._audio_files():
            try:
                name = parse_iowa_file_name(path)
            except ValueError as exc:
                skip_or_raise(DatasetError(f"cannot read the file name: {exc}", path), skip_bad, self.skipped)
                continue
            if instrument_set is not None and name.instrument.lower() not in instrument_set:
                continue
            if dynamic_set is not None and name.dynamic not in dynamic_set:
                continue
            if pitch_set is not None and not any(name.low_pitch <= p <= name.high_pitch for p in pitch_set):
                continue
            try:
                notes = self._notes_of(name)
            except DatasetError as exc:
                skip_or_raise(exc, skip_bad, self.skipped)
                continue
            records.extend(n for n in notes if pitch_set is None or n.pitch in pitch_set)
        self.records: list[IowaNoteRecord] = records

    def _audio_files(self) -> list[Path]:
        found = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(
                Path(folder) / f for f in files if f.lower().endswith(IOWA_SUFFIXES) and not is_resource_fork(f)
            )
        return sorted(found)

    def _notes_of(self, name: IowaFileName) -> list[IowaNoteRecord]:
        common = dict(
            audio_path=name.path,
            instrument=name.instrument,
            articulation=name.articulation,
            dynamic=name.dynamic,
            velocity=DYNAMIC_VELOCITY[name.dynamic],
        )
        if not name.is_run:
            try:
                info = sf.info(str(name.path))
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
                raise DatasetError(f"cannot read audio ({exc})", name.path) from exc
            if info.frames == 0:
                raise DatasetError("audio file holds no samples", name.path)
            return [
                IowaNoteRecord(
                    **common, pitch=name.low_pitch, sample_rate=int(info.samplerate),
                    start_sample=0, end_sample=int(info.frames), is_run_segment=False,
                )
            ]
        try:
            wave, rate = load_audio(name.path, mono=True)
        except OrchestrionError as exc:
            raise DatasetError(exc.problem, name.path) from exc
        segments = segment_notes(wave, rate, self.segmentation)
        if len(segments) != name.expected_note_count:
            raise DatasetError(
                f"found {len(segments)} notes separated by silence, but the name's range "
                f"(MIDI {name.low_pitch}-{name.high_pitch}) holds {name.expected_note_count}",
                name.path,
            )
        return [
            IowaNoteRecord(
                **common, pitch=name.low_pitch + i, sample_rate=rate,
                start_sample=start, end_sample=end, is_run_segment=True,
            )
            for i, (start, end) in enumerate(segments)
        ]

    @property
    def n_skipped(self) -> int:
        """Number of bad files left out."""
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.records)

    def load_note(self, index: int, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """Read one note as float32 (samples,) mono; returns (wave, rate in Hz).

        `sample_rate` resamples (None keeps the file's rate).
        """
        record = self.records[index]
        try:
            wave, rate = load_audio(record.audio_path, mono=True)
        except OrchestrionError as exc:
            raise DatasetError(exc.problem, record.audio_path) from exc
        wave = wave[record.start_sample : record.end_sample]
        if sample_rate is not None and sample_rate != rate:
            wave, rate = resample(wave, rate, sample_rate), sample_rate
        return np.ascontiguousarray(wave, dtype=np.float32), rate

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = range(len(self.records))[index]
        record = self.records[index]
        wave, rate = self.load_note(index, self.sample_rate)
        return {
            "audio": torch.from_numpy(wave),
            "sample_rate": rate,
            "pitch": record.pitch,
            "velocity": record.velocity,
            "index": index,
        }
