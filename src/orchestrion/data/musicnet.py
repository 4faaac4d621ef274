"""Reader for MusicNet: classical recordings with aligned note labels.

Layout (``root`` may be the ``musicnet`` folder itself or its parent)::

    musicnet/train_data/<id>.wav      44.1 kHz mono
    musicnet/train_labels/<id>.csv    start_time,end_time,instrument,note,start_beat,end_beat,note_value
    musicnet/test_data/  musicnet/test_labels/

Label times are sample indices at 44,100 Hz and are converted to seconds; ``instrument``
is a 1-based General MIDI program and becomes 0-based (pretty_midi's convention);
``end_beat`` is a duration in beats. Labels are parsed lazily (`MusicNetDataset.load_notes`);
a bad row raises `orchestrion.errors.DatasetError` naming the file and its line. With
``skip_bad=True`` (or ``verify_labels=True``) every label file is parsed while listing,
so bad recordings are skipped up front. AppleDouble files (``._*``) are ignored.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from orchestrion.audio.io import load_audio
from orchestrion.errors import ConfigError, DatasetError, InputFileNotFoundError, OrchestrionError
from orchestrion.data.records import LabeledNote, MusicNetRecord, SkippedEntry, is_resource_fork, skip_or_raise

MUSICNET_SAMPLE_RATE = 44_100
"""Sample rate of MusicNet audio and of its label times, in Hz."""
SPLITS = ("train", "test")
LABEL_COLUMNS = ("start_time", "end_time", "instrument", "note", "start_beat", "end_beat", "note_value")


def _integer(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _numeric_first(piece_id: str) -> tuple[bool, int, str]:
    """Sort key: numeric ids in numeric order, then the others by name."""
    return (not piece_id.isdigit(), int(piece_id) if piece_id.isdigit() else 0, piece_id)


def parse_labels_file(path: str | Path, sample_rate: int = MUSICNET_SAMPLE_RATE) -> tuple[LabeledNote, ...]:
    """Read a MusicNet label csv.

    Parameters
    ----------
    path : ``<split>_labels/<id>.csv`` with the header of `LABEL_COLUMNS`.
    sample_rate : rate in Hz of the file's sample-index times.

    Returns
    -------
    Notes sorted by onset then pitch.

    Raises
    ------
    DatasetError
        Naming the file and the 1-based line of a missing header column or a bad row.
    """
    path = Path(path)
    notes = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DatasetError("empty label file (no header)", path, 1)
            header = [name.strip() for name in header]
            missing = [name for name in LABEL_COLUMNS if name not in header]
            if missing:
                raise DatasetError(f"header misses column(s) {', '.join(missing)}", path, 1)
            column = {name: header.index(name) for name in LABEL_COLUMNS}
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DatasetError(f"expected {len(header)} columns, found {len(row)}", path, line)
                cell = {name: row[index].strip() for name, index in column.items()}
                try:
                    start, end = _integer(cell["start_time"]), _integer(cell["end_time"])
                    program, pitch = _integer(cell["instrument"]), _integer(cell["note"])
                    start_beat, duration_beats = float(cell["start_beat"]), float(cell["end_beat"])
                except ValueError:
                    raise DatasetError(f"a number does not parse in {','.join(row)!r}", path, line) from None
                if start < 0 or end < start:
                    raise DatasetError(f"times run from sample {start} to {end}", path, line)
                if not 1 <= program <= 128:
                    raise DatasetError(f"instrument {program} is not a 1-based GM program (1-128)", path, line)
                if not 0 <= pitch <= 127:
                    raise DatasetError(f"note {pitch} is outside the MIDI range 0-127", path, line)
                if not (math.isfinite(start_beat) and math.isfinite(duration_beats)):
                    raise DatasetError("beat values must be finite", path, line)
                notes.append(
                    LabeledNote(
                        onset_s=start / sample_rate,
                        offset_s=end / sample_rate,
                        pitch=pitch,
                        program=program - 1,
                        start_beat=start_beat,
                        duration_beats=duration_beats,
                        note_value=cell["note_value"],
                    )
                )
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read label file ({exc})", path) from exc
    notes.sort(key=lambda note: (note.onset_s, note.pitch))
    return tuple(notes)


def find_musicnet_root(root: str | Path) -> Path:
    """Return the folder holding ``{train,test}_data``: `root` or ``root/musicnet``."""
    root = Path(root)
    for candidate in (root, root / "musicnet"):
        if any((candidate / f"{split}_data").is_dir() for split in SPLITS):
            return candidate
    raise InputFileNotFoundError("no train_data/ or test_data/ folder (MusicNet layout)", root)


class MusicNetDataset(Dataset):
    """MusicNet recordings as a torch Dataset; audio and labels are read lazily.

    Parameters
    ----------
    root : the ``musicnet`` folder or its parent.
    split : ``"train"``, ``"test"`` or None for both.
    skip_bad : skip bad recordings (recorded in `skipped`) instead of raising DatasetError.
    verify_labels : parse every label file while listing; None means "only when `skip_bad`".
    sample_rate : rate in Hz of the audio items return (None: 44.1 kHz as stored).

    Attributes
    ----------
    records : MusicNetRecords by split then numeric id.
    skipped : (file, reason) for every recording left out (no label file, no audio, bad rows).

    Items are dicts: ``audio`` float32 tensor (samples,), ``sample_rate`` int, ``index``
    int, ``piece_id`` str. Labels: ``dataset.load_notes(index)``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        skip_bad: bool = False,
        verify_labels: bool | None = None,
        sample_rate: int | None = None,
    ) -> None:
        if split is not None and split not in SPLITS:
            raise ConfigError(f"unknown MusicNet split {split!r}; choose from {', '.join(SPLITS)}")
        self.root = find_musicnet_root(root)
        self.skip_bad = skip_bad
        self.sample_rate = sample_rate
        self.skipped: list[SkippedEntry] = []
        verify = skip_bad if verify_labels is None else verify_labels
        records = []
        for split_name in SPLITS if split is None else (split,):
            data_dir, labels_dir = self.root / f"{split_name}_data", self.root / f"{split_name}_labels"
            audio = self._files(data_dir, ".wav")
            labels = self._files(labels_dir, ".csv")
            for piece_id in sorted(set(audio) | set(labels), key=_numeric_first):
                if piece_id not in labels:
                    skip_or_raise(
                        DatasetError(f"no label file {labels_dir.name}/{piece_id}.csv", audio[piece_id]),
                        skip_bad, self.skipped,
                    )
                    continue
                if piece_id not in audio:
                    skip_or_raise(
                        DatasetError(f"no audio file {data_dir.name}/{piece_id}.wav", labels[piece_id]),
                        skip_bad, self.skipped,
                    )
                    continue
                if verify:
                    try:
                        parse_labels_file(labels[piece_id])
                    except DatasetError as exc:
                        skip_or_raise(exc, skip_bad, self.skipped)
                        continue
                records.append(MusicNetRecord(piece_id, audio[piece_id], labels[piece_id], split_name))
        self.records: list[MusicNetRecord] = records

    @staticmethod
    def _files(folder: Path, suffix: str) -> dict[str, Path]:
        if not folder.is_dir():
            return {}
        return {
            p.stem: p for p in folder.iterdir()
            if p.suffix.lower() == suffix and p.is_file() and not is_resource_fork(p)
        }

    @property
    def n_skipped(self) -> int:
        """Number of recordings left out."""
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.records)

    def _record(self, item: MusicNetRecord | int) -> MusicNetRecord:
        return self.records[item] if isinstance(item, int) else item

    def load_notes(self, item: MusicNetRecord | int) -> tuple[LabeledNote, ...]:
        """Parse the labels of a recording (by record or index); see `parse_labels_file`."""
        return parse_labels_file(self._record(item).labels_path)

    def load_audio(self, item: MusicNetRecord | int, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """Read a recording as float32 (samples,) mono; returns (wave, rate in Hz)."""
        record = self._record(item)
        try:
            return load_audio(record.audio_path, sample_rate=sample_rate, mono=True)
        except OrchestrionError as exc:
            raise DatasetError(f"recording {record.piece_id}: {exc.problem}", record.audio_path) from exc

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = range(len(self.records))[index]
        wave, rate = self.load_audio(index, self.sample_rate)
        return {
            "audio": torch.from_numpy(wave),
            "sample_rate": rate,
            "index": index,
            "piece_id": self.records[index].piece_id,
        }
