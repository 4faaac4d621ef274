"""NSynth-format notes for SING: which data, which split, and the model's instrument table.

Two kinds of NSynth-format folder are read, both with `orchestrion.data.nsynth`:

- ``"orchestrion"``: a build of ``orchestrion data nsynth`` (a ``manifest.json`` with
  ``"dataset": "nsynth"`` sits beside the split folders). Its ``instrument`` id is the GM
  program, so instruments are named by the instrument vocabulary ("flute", "double bass").
  The builder already split the notes by (instrument, pitch) 80 / 10 / 10 and held every
  D#/Eb out of training, so the split folders are used as they are (``split_mode="folders"``).
- ``"nsynth"``: the real release (or any other NSynth-format folder). Its official splits
  are by *instrument*, which cannot train a lookup-table model on the test instruments, so
  the notes of every split folder are pooled and re-split by hashing (instrument_str, pitch)
  80 / 10 / 10 (``split_mode="pairs"``), all velocities of a pair together: the seed's and
  SING's split. Instruments keep their ``instrument_str`` as name
  ("keyboard_acoustic_007").

The model's instrument ids are compact (0 .. K - 1, K = instruments in the training split,
in the order of their dataset ids); `InstrumentTable` maps names and dataset ids to them,
and records the pitches each instrument was trained on, so inference can warn outside an
instrument's trained range and evaluation can tell pitches never seen for an instrument.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from orchestrion.audio.io import detune, load_audio
from orchestrion.data.build import MANIFEST_NAME
from orchestrion.data.nsynth import (
    NSYNTH_SAMPLE_RATE,
    NSynthDataset,
    find_split_folders,
    fit_length,
    parse_instrument_str,
)
from orchestrion.data.records import NoteRecord
from orchestrion.errors import ConfigError, DatasetError, OrchestrionError
from orchestrion.symbolic.instruments import InstrumentVocabulary, normalise_name
from orchestrion.systems.sing.presets import MAX_PITCH_SHIFT

SPLIT_MODES = ("auto", "folders", "pairs")
"""How notes are split: the dataset's split folders, or pooled and hashed by (instrument, pitch)."""
DATA_KINDS = ("orchestrion", "nsynth")
"""An orchestrion build (GM-program ids) or any other NSynth-format folder (the real release)."""
PAIR_SPLIT_BUCKETS = {"train": range(0, 8), "valid": range(8, 9), "test": range(9, 10)}
"""Buckets (of 10) of the (instrument_str, pitch) hash that go to each split: 80 / 10 / 10."""


# --------------------------------------------------------------------------- data source


@dataclass(frozen=True)
class DataSource:
    """What an NSynth-format folder is and how its notes are split.

    Attributes
    ----------
    root : the folder given (a split folder or the folder holding ``nsynth-<split>/``).
    kind : "orchestrion" (our build, GM-program ids) or "nsynth" (anything else).
    split_mode : "folders" (use the split folders) or "pairs" (pool and hash).
    command : the command that built the data (orchestrion builds), else "".
    """

    root: Path
    kind: str
    split_mode: str
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.root), "kind": self.kind, "split_mode": self.split_mode,
                "command": self.command}


def _find_manifest(root: Path) -> dict[str, Any] | None:
    """The orchestrion build manifest of `root` (or of its parent, for a split folder)."""
    for folder in (root, root.parent):
        path = folder / MANIFEST_NAME
        if path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                return None
            if isinstance(manifest, dict) and manifest.get("dataset") == "nsynth":
                return manifest
    return None


def describe_data(data_dir: str | Path, split_mode: str = "auto") -> DataSource:
    """Identify an NSynth-format folder and pick its split mode.

    Parameters
    ----------
    data_dir : an NSynth-format folder (``nsynth-<split>/examples.json`` inside) or one split.
    split_mode : "auto" (folders for an orchestrion build, pairs otherwise), "folders" or
        "pairs".

    Raises
    ------
    ConfigError for an unknown split mode; InputFileNotFoundError if no NSynth split is there.
    """
    if split_mode not in SPLIT_MODES:
        raise ConfigError(f"split mode must be one of {', '.join(SPLIT_MODES)}; got {split_mode!r}")
    root = Path(data_dir)
    find_split_folders(root)  # raises a clear error when there is no NSynth data here
    manifest = _find_manifest(root)
    kind = "orchestrion" if manifest is not None else "nsynth"
    if split_mode == "auto":
        split_mode = "folders" if kind == "orchestrion" else "pairs"
    command = str(manifest.get("command", "")) if manifest else ""
    return DataSource(root, kind, split_mode, command)


def pair_split(instrument_str: str, pitch: int) -> str:
    """The split of an (instrument, pitch) pair under ``split_mode="pairs"``: stable 80/10/10."""
    bucket = int(hashlib.sha256(f"{instrument_str}:{pitch}".encode()).hexdigest(), 16) % 10
    return next(name for name, buckets in PAIR_SPLIT_BUCKETS.items() if bucket in buckets)


def resolve_instrument_filter(
    tokens: Iterable[str | int] | None, source: DataSource
) -> list[int | str] | None:
    """Turn instrument words into the ids / instrument_strs `NSynthDataset` filters by.

    A whole number (``73``, ``"73"``) is a dataset instrument id; ``"gm074"`` is GM program 74
    (orchestrion builds); a ``<family>_<source>_<NNN>`` string is an ``instrument_str``
    (e.g. the seed's ``keyboard_acoustic_007``); any other word is an instrument-vocabulary
    name or alias ("flute", "fl"), which only an orchestrion build can resolve (its ids are
    GM programs).
    """
    if tokens is None:
        return None
    if isinstance(tokens, (str, int)):
        tokens = [tokens]
    selected: list[int | str] = []
    for token in tokens:
        if isinstance(token, int) and not isinstance(token, bool):
            selected.append(token)
            continue
        text = str(token).strip()
        if not text:
            continue
        if text.isdigit():
            selected.append(int(text))
        elif text.lower().startswith("gm") and text[2:].isdigit():
            selected.append(int(text[2:]))
        elif _is_instrument_str(text):
            selected.append(text)
        elif source.kind == "orchestrion":
            selected.append(InstrumentVocabulary.default().by_name(text).program)
        else:
            raise ConfigError(
                f"instrument {text!r}: this NSynth folder is not an orchestrion build, so name "
                "its instruments by instrument_str (e.g. keyboard_acoustic_007) or by id"
            )
    if not selected:
        raise ConfigError("the instrument filter names no instrument")
    return selected


def _is_instrument_str(text: str) -> bool:
    try:
        parse_instrument_str(text)
    except ValueError:
        return False
    return True


def list_notes(
    source: DataSource,
    split: str,
    instruments: Sequence[int | str] | None = None,
) -> list[NoteRecord]:
    """The NoteRecords of one split ("train", "valid" or "test"), sorted by note_str.

    Under ``split_mode="folders"`` a missing split folder gives an empty list; under
    ``"pairs"`` every split folder is read and the notes whose (instrument_str, pitch) hashes
    to `split` are kept.
    """
    if split not in PAIR_SPLIT_BUCKETS:
        raise ConfigError(f"split must be train, valid or test; got {split!r}")
    if source.split_mode == "folders":
        present = {name for name, _ in find_split_folders(source.root)}
        if split not in present:
            return []
        return NSynthDataset(source.root, split=split, instruments=instruments).records
    key = None if instruments is None else tuple(instruments)
    records = _every_split(str(source.root), key)
    kept = [r for r in records if pair_split(r.instrument_str, r.pitch) == split]
    return sorted(kept, key=lambda r: r.note_str)


@functools.lru_cache(maxsize=2)
def _every_split(root: str, instruments: tuple[int | str, ...] | None) -> tuple[NoteRecord, ...]:
    """Every note of every split folder (cached: the real NSynth's 305k entries take a while)."""
    return tuple(NSynthDataset(root, split=None, instruments=instruments).records)


def check_filter_matched(
    records: Sequence[NoteRecord], instruments: Sequence[int | str] | None, source: DataSource
) -> None:
    """ConfigError naming every filter token that matched no training note."""
    if instruments is None:
        return
    ids = {r.instrument for r in records}
    strs = {r.instrument_str for r in records}
    missing = [str(t) for t in instruments if t not in ids and t not in strs]
    if missing:
        raise ConfigError(
            f"no training notes for instrument(s) {', '.join(missing)} in {source.root}"
        )


# --------------------------------------------------------------------------- instrument table


@dataclass(frozen=True)
class InstrumentEntry:
    """One instrument the model knows.

    Attributes
    ----------
    name : vocabulary name ("flute", "double bass") for orchestrion builds, else the
        ``instrument_str``.
    model_id : row of the model's instrument embedding, 0 .. K - 1.
    dataset_id : the dataset's ``instrument`` (the GM program for orchestrion builds).
    instrument_str : NSynth ``<family>_<source>_<NNN>``.
    train_pitches : MIDI pitches of the training notes, sorted.
    """

    name: str
    model_id: int
    dataset_id: int
    instrument_str: str
    train_pitches: tuple[int, ...]

    @property
    def lowest_pitch(self) -> int:
        """Lowest trained MIDI pitch."""
        return self.train_pitches[0]

    @property
    def highest_pitch(self) -> int:
        """Highest trained MIDI pitch."""
        return self.train_pitches[-1]

    @property
    def display_name(self) -> str:
        """The name a musician knows: ``gm006`` (a GM program outside the 16-name
        vocabulary) reads as its General MIDI name, ``harpsichord``; others are `name`."""
        match = _GM_ID.fullmatch(self.name)
        if match is None or int(match.group(1)) != self.dataset_id:
            return self.name
        return InstrumentVocabulary.default().program_mapping(self.dataset_id).gm_name.lower()

    @property
    def file_stem(self) -> str:
        """The display name as used in NSynth-style file names: spaces become underscores."""
        return self.display_name.replace(" ", "_")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model_id": self.model_id, "dataset_id": self.dataset_id,
                "instrument_str": self.instrument_str, "lowest_pitch": self.lowest_pitch,
                "highest_pitch": self.highest_pitch, "train_pitches": list(self.train_pitches)}


@dataclass(frozen=True)
class InstrumentTable:
    """The instruments of a model, by model id, with the trained velocities.

    `lookup` accepts a table name, an ``instrument_str``, or (for vocabulary names) any
    alias of the instrument vocabulary ("fl" for flute).
    """

    entries: tuple[InstrumentEntry, ...]
    train_velocities: tuple[int, ...] = ()
    _by_key: dict[str, InstrumentEntry] = field(default_factory=dict, init=False, repr=False,
                                                compare=False)

    def __post_init__(self) -> None:
        if not self.entries:
            raise ConfigError("a note model needs at least one instrument")
        if [e.model_id for e in self.entries] != list(range(len(self.entries))):
            raise ConfigError("instrument table: model ids must run 0 .. K - 1 in order")
        for entry in self.entries:
            if not entry.train_pitches:
                raise ConfigError(f"instrument table: {entry.name!r} has no trained pitches")
            for key in (entry.name, entry.display_name, entry.instrument_str):
                self._by_key[normalise_name(key)] = entry

    @classmethod
    def from_records(cls, records: Sequence[NoteRecord], source: DataSource) -> InstrumentTable:
        """Build the table from the training notes (model ids in order of dataset id)."""
        if not records:
            raise DatasetError("no training notes (is the train split empty, or the filter too narrow?)",
                               source.root)
        pitches: dict[int, set[int]] = {}
        instrument_strs: dict[int, str] = {}
        for record in records:
            pitches.setdefault(record.instrument, set()).add(record.pitch)
            instrument_strs[record.instrument] = record.instrument_str
        entries = []
        for model_id, dataset_id in enumerate(sorted(pitches)):
            entries.append(InstrumentEntry(
                name=_instrument_name(dataset_id, instrument_strs[dataset_id], source),
                model_id=model_id,
                dataset_id=dataset_id,
                instrument_str=instrument_strs[dataset_id],
                train_pitches=tuple(sorted(pitches[dataset_id])),
            ))
        names = [e.name for e in entries]
        if len(set(names)) != len(names):  # two GM programs of one slot name: keep them apart
            entries = [InstrumentEntry(e.instrument_str, e.model_id, e.dataset_id, e.instrument_str,
                                       e.train_pitches) for e in entries]
        velocities = tuple(sorted({r.velocity for r in records}))
        return cls(tuple(entries), velocities)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    @property
    def names(self) -> tuple[str, ...]:
        """The instruments' display names (``harpsichord``, not ``gm006``), in model order."""
        return tuple(e.display_name for e in self.entries)

    def lookup(self, name: str) -> InstrumentEntry:
        """The entry called `name` (table name, instrument_str, vocabulary alias, or, for an
        an orchestrion build's instrument, its General MIDI number or name: ``6`` or
        ``harpsichord`` find ``gm006``, ``73`` finds ``flute``).

        Raises
        ------
        ConfigError
            Naming the model's instruments, for an instrument the model does not know.
        """
        key = normalise_name(str(name))
        entry = self._by_key.get(key)
        if entry is None:
            try:
                slot = InstrumentVocabulary.default().by_name(str(name))
            except ConfigError:
                slot = None
            if slot is not None:
                entry = self._by_key.get(normalise_name(slot.name))
        if entry is None:
            program = InstrumentVocabulary.default().general_midi_program(str(name))
            if program is not None:
                entry = self._by_key.get(normalise_name(_program_name(program)))
        if entry is None:
            raise ConfigError(
                f"this model has no instrument {name!r}; it knows: {', '.join(self.names)}"
            )
        return entry

    def by_instrument_str(self, instrument_str: str) -> InstrumentEntry | None:
        """The entry of a dataset instrument, or None if the model never trained on it."""
        entry = self._by_key.get(normalise_name(instrument_str))
        return entry if entry is not None and entry.instrument_str == instrument_str else None

    def all_train_pitches(self) -> set[int]:
        """Pitches some instrument trained on (the others have untrained pitch embeddings)."""
        return {p for e in self.entries for p in e.train_pitches}

    def to_dict(self) -> dict[str, Any]:
        return {"instruments": [e.to_dict() for e in self.entries],
                "train_velocities": list(self.train_velocities)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstrumentTable:
        """Rebuild a table from `to_dict` output (a checkpoint's config)."""
        try:
            entries = tuple(
                InstrumentEntry(str(e["name"]), int(e["model_id"]), int(e["dataset_id"]),
                                str(e["instrument_str"]), tuple(int(p) for p in e["train_pitches"]))
                for e in data["instruments"]
            )
            velocities = tuple(int(v) for v in data.get("train_velocities", ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed instrument table ({type(exc).__name__}: {exc})") from None
        return cls(entries, velocities)


def _instrument_name(dataset_id: int, instrument_str: str, source: DataSource) -> str:
    """Vocabulary name of a GM program (orchestrion builds), else the instrument_str."""
    if source.kind != "orchestrion" or not 0 <= dataset_id <= 127:
        return instrument_str
    return _program_name(dataset_id)


_GM_ID = re.compile(r"gm(\d{3})")
"""The stored name of a GM program outside the vocabulary (``gm006``)."""


def _program_name(program: int) -> str:
    """An orchestrion build's name for a GM program: its vocabulary name, else ``gmNNN``."""
    slot = InstrumentVocabulary.default().slot_for_program(program)
    return slot.name if slot.program == program else f"gm{program:03d}"


# --------------------------------------------------------------------------- torch dataset


def read_note(record: NoteRecord, n_samples: int) -> np.ndarray:
    """The note of `record` as float32 (n_samples,) at 16 kHz: trimmed or zero-padded."""
    try:
        wave, _ = load_audio(record.audio_path, sample_rate=NSYNTH_SAMPLE_RATE, mono=True,
                             require_sample_rate=True)
    except OrchestrionError as exc:
        raise DatasetError(f"note {record.note_str!r}: {exc.problem}", record.audio_path) from exc
    return np.ascontiguousarray(fit_length(wave, n_samples), dtype=np.float32)


class SingNotes(Dataset):
    """Notes of instruments the model knows, as training items.

    Items: ``audio`` float32 (n_samples,), ``instrument`` (model id), ``pitch``,
    ``velocity`` (MIDI), ``index`` (position in `records`). Notes of instruments missing
    from `table` are left out (counted in `n_unknown`).

    With ``pitch_shift > 0`` every item is detuned anew by a uniform random shift in
    +-pitch_shift semitones (torch's random generator, so Lightning's per-worker seeding
    applies) and ``pitch`` is the fractional MIDI pitch it now has.
    """

    def __init__(self, records: Sequence[NoteRecord], table: InstrumentTable, n_samples: int,
                 pitch_shift: float = 0.0) -> None:
        if not 0.0 <= pitch_shift <= MAX_PITCH_SHIFT:
            raise ConfigError(f"pitch_shift must lie in 0..{MAX_PITCH_SHIFT:g} semitones, got {pitch_shift}")
        self.table = table
        self.n_samples = n_samples
        self.pitch_shift = float(pitch_shift)
        self.records: list[NoteRecord] = []
        self.model_ids: list[int] = []
        self.n_unknown = 0
        for record in records:
            entry = table.by_instrument_str(record.instrument_str)
            if entry is None:
                self.n_unknown += 1
                continue
            self.records.append(record)
            self.model_ids.append(entry.model_id)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        wave = read_note(record, self.n_samples)
        pitch: float | int = record.pitch
        if self.pitch_shift > 0:
            shift = float(torch.empty(()).uniform_(-self.pitch_shift, self.pitch_shift))
            shift = min(max(shift, -float(record.pitch)), 127.0 - record.pitch)
            wave = np.ascontiguousarray(fit_length(detune(wave, shift), self.n_samples))
            pitch = record.pitch + shift
        return {
            "audio": torch.from_numpy(wave),
            "instrument": self.model_ids[index],
            "pitch": pitch,
            "velocity": record.velocity,
            "index": index,
        }


def spread_subset(count: int, limit: int | None) -> list[int]:
    """`limit` indices spread evenly over range(count) (all of them if limit is None or larger)."""
    if limit is None or limit >= count:
        return list(range(count))
    if limit <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})
