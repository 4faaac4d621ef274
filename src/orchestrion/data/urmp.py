"""Reader for URMP (University of Rochester Multi-Modal Music Performance) and URMP-format data.

Layout (``root`` may be the folder holding ``Dataset/`` or the folder holding the pieces)::

    Dataset/01_Jupiter_vn_vc/
        AuMix_01_Jupiter_vn_vc.wav          the mix
        AuSep_1_vn_01_Jupiter.wav           part k=1 alone (one per part)
        Notes_1_vn_01_Jupiter.txt           onset (s)  frequency (Hz)  duration (s)
        F0s_1_vn_01_Jupiter.txt             time (s)  f0 (Hz, 0 = unvoiced)
        Sco_01_Jupiter_vn_vc.mid            the score

Part k's instrument is read from its file names (``AuSep``, else ``Notes``, else
``F0s``), never from the folder name: one real folder lists ``tbn`` where its files say
``tpt``, and the files are right. Files whose names start with ``._`` are ignored.
Notes files give a frequency; the MIDI pitch is ``round(69 + 12 log2(f / 440))``.
Audio (48 kHz in URMP) is read lazily with `orchestrion.audio.io.load_audio`, at any
requested sample rate; F0 tracks are read lazily; notes are parsed while listing (the
files are small) so that a bad row is found up front.

Splits
------
If a file ``splits.json`` sits in the pieces folder (or in `root`), it assigns pieces to
splits; our builders write it. Its format is one object mapping a split name to a list
of piece ids, a piece id being the piece folder's name::

    {"train": ["01_Jupiter_vn_vc", "02_Sonata_vn_vn"], "valid": ["03_Dance_fl_cl"],
     "test": ["04_Allegro_fl_fl"]}

A piece may appear in one split only. Pieces not listed, and every piece when there is
no ``splits.json``, get the split ``"all"``. Ids listed but absent on disk are ignored.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from orchestrion.audio.io import load_audio
from orchestrion.errors import ConfigError, DatasetError, InputFileNotFoundError, OrchestrionError
from orchestrion.data.records import (
    Note,
    PartRecord,
    PieceRecord,
    SkippedEntry,
    is_resource_fork,
    skip_or_raise,
)

URMP_SAMPLE_RATE = 48_000
"""Sample rate of the URMP recordings, in Hz."""
INSTRUMENT_NAMES = {
    "vn": "violin", "va": "viola", "vc": "cello", "db": "double bass", "fl": "flute",
    "ob": "oboe", "cl": "clarinet", "sax": "saxophone", "bn": "bassoon", "tpt": "trumpet",
    "hn": "horn", "tbn": "trombone", "tba": "tuba",
}
"""URMP instrument codes and the instruments they name."""
SPLITS_FILE_NAME = "splits.json"
UNASSIGNED_SPLIT = "all"

_PIECE_FOLDER = re.compile(r"^(\d+)_(.+)$")
_MIX = re.compile(r"^AuMix_(\d+)_(.+)\.wav$", re.IGNORECASE)
_PART_FILE = re.compile(r"^(AuSep|Notes|F0s)_(\d+)_([A-Za-z]+)_(\d+)_(.+)\.(wav|txt)$", re.IGNORECASE)
_SCORE = re.compile(r"^Sco_(\d+)_(.+)\.midi?$", re.IGNORECASE)
_PART_SUFFIX = {"ausep": ".wav", "notes": ".txt", "f0s": ".txt"}


def frequency_to_pitch(frequency_hz: float) -> int:
    """MIDI note number nearest to `frequency_hz` (A4 = 440 Hz = 69)."""
    return int(round(69.0 + 12.0 * math.log2(frequency_hz / 440.0)))


def parse_notes_file(path: str | Path) -> tuple[Note, ...]:
    """Read a URMP ``Notes_*.txt`` file: one note per line, ``onset_s frequency_hz duration_s``.

    Blank lines and lines starting with ``#`` are ignored.

    Returns
    -------
    Notes sorted by onset, with ``offset_s = onset_s + duration_s`` and velocity None.

    Raises
    ------
    DatasetError
        Naming the file and the 1-based line of the first row that does not parse.
    """
    path = Path(path)
    notes = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read notes file ({exc})", path) from exc
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 3:
            raise DatasetError(
                f"expected 3 columns (onset s, frequency Hz, duration s), found {len(fields)}: {line.strip()!r}",
                path, line_number,
            )
        try:
            onset_s, frequency_hz, duration_s = (float(field) for field in fields)
        except ValueError:
            raise DatasetError(f"not three numbers: {line.strip()!r}", path, line_number) from None
        if not all(math.isfinite(v) for v in (onset_s, frequency_hz, duration_s)):
            raise DatasetError(f"non-finite value in {line.strip()!r}", path, line_number)
        if onset_s < 0 or duration_s < 0:
            raise DatasetError(f"negative onset or duration in {line.strip()!r}", path, line_number)
        if frequency_hz <= 0:
            raise DatasetError(f"frequency must be positive, got {frequency_hz} Hz", path, line_number)
        pitch = frequency_to_pitch(frequency_hz)
        if not 0 <= pitch <= 127:
            raise DatasetError(f"frequency {frequency_hz} Hz is outside the MIDI range", path, line_number)
        notes.append(Note(onset_s=onset_s, offset_s=onset_s + duration_s, pitch=pitch))
    notes.sort(key=lambda note: (note.onset_s, note.pitch))
    return tuple(notes)


def parse_f0_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a URMP ``F0s_*.txt`` pitch track: one frame per line, ``time_s f0_hz``.

    Returns
    -------
    times_s : float64 (frames,), frame times in seconds as written in the file.
    f0_hz : float32 (frames,), fundamental frequency in Hz, 0 where unvoiced.

    Raises
    ------
    DatasetError
        Naming the file and the line of the first bad row (not two numbers, negative f0,
        non-finite, or time going backwards).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read F0 file ({exc})", path) from exc
    times: list[float] = []
    f0s: list[float] = []
    for line_number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            time_s, f0_hz = float(fields[0]), float(fields[1])
        except ValueError:
            problem = f"expected two numbers (time s, f0 Hz), got {line.strip()!r}"
            raise DatasetError(problem, path, line_number) from None
        if not (math.isfinite(time_s) and math.isfinite(f0_hz)) or f0_hz < 0:
            raise DatasetError(f"f0 must be finite and >= 0, got {line.strip()!r}", path, line_number)
        if times and time_s < times[-1]:
            raise DatasetError(f"time {time_s} s goes back before {times[-1]} s", path, line_number)
        times.append(time_s)
        f0s.append(f0_hz)
    return np.asarray(times, dtype=np.float64), np.asarray(f0s, dtype=np.float32)


def find_pieces_folder(root: str | Path) -> Path:
    """Return the folder holding the piece folders: ``root/Dataset`` if present, else `root`."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileNotFoundError("URMP folder not found", root)
    dataset = root / "Dataset"
    return dataset if dataset.is_dir() else root


def read_splits_file(path: str | Path) -> dict[str, str]:
    """Read a ``splits.json`` (see the module docstring) into {piece id: split}.

    Raises
    ------
    DatasetError
        If the file is not valid JSON of that shape or lists a piece twice.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"not valid JSON ({exc.msg})", path, exc.lineno) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read ({exc})", path) from exc
    if not isinstance(data, dict):
        raise DatasetError('must be an object {"train": [piece ids], "valid": [...], "test": [...]}', path)
    split_of: dict[str, str] = {}
    for split, piece_ids in data.items():
        if not isinstance(piece_ids, list) or not all(isinstance(p, str) for p in piece_ids):
            raise DatasetError(f"split {split!r} must list piece ids (folder names) as strings", path)
        for piece_id in piece_ids:
            if piece_id in split_of and split_of[piece_id] != split:
                raise DatasetError(f"piece {piece_id!r} is in both {split_of[piece_id]!r} and {split!r}", path)
            split_of[piece_id] = split
    return split_of


def parse_piece_folder(folder: str | Path, split: str = UNASSIGNED_SPLIT) -> PieceRecord:
    """List one URMP piece folder and parse its notes.

    Parameters
    ----------
    folder : a piece folder, e.g. ``Dataset/01_Jupiter_vn_vc``.
    split : the split to store in the record.

    Raises
    ------
    DatasetError
        If the mix, a part's ``AuSep`` or ``Notes`` file is missing, part numbers are
        not 1..K, a file is duplicated, or a notes row does not parse (file and line).
    """
    folder = Path(folder)
    mixes: list[Path] = []
    scores: list[Path] = []
    part_files: dict[int, dict[str, tuple[str, Path]]] = {}
    piece_numbers: dict[int, Path] = {}
    piece_name: str | None = None
    for path in sorted(folder.iterdir()):
        if is_resource_fork(path) or not path.is_file():
            continue
        if _MIX.match(path.name):
            mixes.append(path)
        elif _SCORE.match(path.name):
            scores.append(path)
        elif match := _PART_FILE.match(path.name):
            kind, k, code, number, name, suffix = match.groups()
            kind = kind.lower()
            if "." + suffix.lower() != _PART_SUFFIX[kind]:
                continue
            files = part_files.setdefault(int(k), {})
            if kind in files:
                raise DatasetError(f"two {kind} files for part {k}: {files[kind][1].name} and {path.name}", folder)
            files[kind] = (code.lower(), path)
            piece_numbers.setdefault(int(number), path)
            if kind == "ausep" or piece_name is None:
                piece_name = name
    if not mixes:
        raise DatasetError("no AuMix_*.wav mix file", folder)
    if len(mixes) > 1:
        raise DatasetError(f"several mix files: {', '.join(p.name for p in mixes)}", folder)
    if not part_files:
        raise DatasetError("no AuSep_/Notes_ part files", folder)
    if sorted(part_files) != list(range(1, len(part_files) + 1)):
        raise DatasetError(f"part numbers are {sorted(part_files)}, expected 1..{len(part_files)}", folder)
    if len(piece_numbers) > 1:
        raise DatasetError(
            f"file names disagree on the piece number: {', '.join(p.name for p in piece_numbers.values())}", folder
        )
    parts = []
    for k in sorted(part_files):
        files = part_files[k]
        for kind in ("ausep", "notes"):
            if kind not in files:
                name = {"ausep": "AuSep_*.wav", "notes": "Notes_*.txt"}[kind]
                raise DatasetError(f"part {k} has no {name} file", folder)
        codes = {code for code, _ in files.values()}
        instrument = files["ausep"][0]
        if len(codes) > 1:
            warnings.warn(
                f"{folder}: part {k} files disagree on the instrument "
                f"({', '.join(p.name for _, p in files.values())}); using {instrument!r} from the AuSep file",
                stacklevel=2,
            )
        parts.append(
            PartRecord(
                index=k,
                instrument=instrument,
                audio_path=files["ausep"][1],
                notes=parse_notes_file(files["notes"][1]),
                notes_path=files["notes"][1],
                f0_path=files["f0s"][1] if "f0s" in files else None,
            )
        )
    (number,) = piece_numbers
    return PieceRecord(
        piece_id=folder.name,
        number=number,
        name=piece_name or folder.name,
        parts=tuple(parts),
        mix_path=mixes[0],
        score_path=scores[0] if scores else None,
        split=split,
        folder=folder,
    )


class URMPDataset(Dataset):
    """URMP pieces as a torch Dataset; audio and F0 tracks are read lazily.

    Parameters
    ----------
    root : the folder holding ``Dataset/``, or the folder holding the piece folders.
    pieces : keep only these pieces, each given as a folder name (``"01_Jupiter_vn_vc"``),
        ``"01_Jupiter"``, a name (``"Jupiter"``) or a number (``1``).
    instruments : keep only pieces whose every part plays one of these codes
        (e.g. ``{"vn", "va", "vc", "db"}`` for strings only).
    split : keep only pieces of this split (from ``splits.json``); None keeps all.
    skip_bad : skip bad pieces (recorded in `skipped`) instead of raising DatasetError.
    sample_rate : rate in Hz of the audio items return (None: the files' own, 48 kHz).
    with_stems : items also hold the stems (one row per part).

    Attributes
    ----------
    records : the kept PieceRecords, ordered by folder name.
    skipped : (folder or file, reason) for every bad piece left out.

    Items are dicts: ``mix`` float32 tensor (samples,); ``stems`` float32 tensor
    (parts, samples) when `with_stems`; ``sample_rate`` int (Hz); ``index`` int;
    ``piece_id`` str. Notes are in ``dataset.records[index].parts[k].notes``.
    """

    def __init__(
        self,
        root: str | Path,
        pieces: Iterable[str | int] | None = None,
        instruments: Iterable[str] | None = None,
        split: str | None = None,
        skip_bad: bool = False,
        sample_rate: int | None = None,
        with_stems: bool = False,
    ) -> None:
        self.root = Path(root)
        self.pieces_folder = find_pieces_folder(self.root)
        self.skip_bad = skip_bad
        self.sample_rate = sample_rate
        self.with_stems = with_stems
        self.skipped: list[SkippedEntry] = []
        self.splits_path = next(
            (p for p in (self.pieces_folder / SPLITS_FILE_NAME, self.root / SPLITS_FILE_NAME) if p.is_file()), None
        )
        split_of = read_splits_file(self.splits_path) if self.splits_path is not None else {}
        if split is not None and self.splits_path is None and split != UNASSIGNED_SPLIT:
            raise ConfigError(
                f"asked for split {split!r} but {self.pieces_folder} has no {SPLITS_FILE_NAME}; "
                f"every piece is in split {UNASSIGNED_SPLIT!r}"
            )
        wanted = None if pieces is None else ({pieces} if isinstance(pieces, (str, int)) else set(pieces))
        instrument_set = None if instruments is None else (
            {instruments} if isinstance(instruments, str) else set(instruments)
        )
        folders = sorted(
            p for p in self.pieces_folder.iterdir()
            if p.is_dir() and not is_resource_fork(p) and _PIECE_FOLDER.match(p.name)
        )
        if not folders:
            raise InputFileNotFoundError("no piece folders (NN_Piece_inst1_inst2...) found", self.pieces_folder)
        records = []
        for folder in folders:
            piece_split = split_of.get(folder.name, UNASSIGNED_SPLIT)
            if split is not None and piece_split != split:
                continue
            if wanted is not None and not self._folder_may_match(folder.name, wanted):
                continue
            try:
                record = parse_piece_folder(folder, piece_split)
            except DatasetError as exc:
                skip_or_raise(exc, skip_bad, self.skipped)
                continue
            if wanted is not None and not self._record_matches(record, wanted):
                continue
            if instrument_set is not None and not set(record.instruments) <= instrument_set:
                continue
            records.append(record)
        self.records: list[PieceRecord] = records

    @staticmethod
    def _folder_may_match(folder_name: str, wanted: set[Any]) -> bool:
        match = _PIECE_FOLDER.match(folder_name)
        number = int(match.group(1)) if match else None
        rest = match.group(2) if match else folder_name
        return any(
            w == folder_name or w == number or (isinstance(w, str) and rest.startswith(w.split("_", 1)[-1]))
            for w in wanted
        )

    @staticmethod
    def _record_matches(record: PieceRecord, wanted: set[Any]) -> bool:
        labels = {record.piece_id, f"{record.number:02d}_{record.name}", record.name, record.number}
        return bool(labels & wanted)

    @property
    def n_skipped(self) -> int:
        """Number of bad pieces left out."""
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.records)

    def _piece(self, piece: PieceRecord | int) -> PieceRecord:
        return self.records[piece] if isinstance(piece, int) else piece

    def _load(self, path: Path, sample_rate: int | None, what: str) -> tuple[np.ndarray, int]:
        try:
            return load_audio(path, sample_rate=sample_rate, mono=True)
        except OrchestrionError as exc:
            raise DatasetError(f"{what}: {exc.problem}", path) from exc

    def load_mix(self, piece: PieceRecord | int, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """Read a piece's mix as float32 (samples,) mono; returns (wave, sample rate in Hz).

        `sample_rate` resamples (None keeps the file's rate, 48 kHz in URMP).
        """
        record = self._piece(piece)
        return self._load(record.mix_path, sample_rate, f"mix of {record.piece_id}")

    def load_stem(self, part: PartRecord, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """Read one part's isolated recording as float32 (samples,) mono; returns (wave, rate Hz)."""
        return self._load(part.audio_path, sample_rate, f"part {part.index} ({part.instrument})")

    def load_stems(self, piece: PieceRecord | int, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """Read every part of a piece as float32 (parts, samples), zero-padded to the longest stem."""
        record = self._piece(piece)
        waves, rates = zip(*(self.load_stem(part, sample_rate) for part in record.parts))
        if len(set(rates)) > 1:
            raise DatasetError(f"stems have different sample rates {sorted(set(rates))} Hz", record.folder)
        length = max(w.shape[0] for w in waves)
        stems = np.zeros((len(waves), length), dtype=np.float32)
        for row, wave in zip(stems, waves):
            row[: wave.shape[0]] = wave
        return stems, rates[0]

    def load_f0(self, part: PartRecord) -> tuple[np.ndarray, np.ndarray]:
        """Read a part's F0 track: (times_s float64 (frames,), f0_hz float32 (frames,), 0 = unvoiced)."""
        if part.f0_path is None:
            raise DatasetError(f"part {part.index} ({part.instrument}) has no F0s_*.txt file", part.audio_path.parent)
        return parse_f0_file(part.f0_path)

    def load_score(self, piece: PieceRecord | int) -> Any:
        """Parse a piece's ``Sco_*.mid`` with `orchestrion.symbolic.midi.read_midi`."""
        from orchestrion.symbolic.midi import read_midi

        record = self._piece(piece)
        if record.score_path is None:
            raise DatasetError(f"piece {record.piece_id} has no Sco_*.mid score", record.folder)
        return read_midi(record.score_path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = range(len(self.records))[index]
        record = self.records[index]
        mix, rate = self.load_mix(record, self.sample_rate)
        item: dict[str, Any] = {
            "mix": torch.from_numpy(mix),
            "sample_rate": rate,
            "index": index,
            "piece_id": record.piece_id,
        }
        if self.with_stems:
            stems, _ = self.load_stems(record, rate)
            item["stems"] = torch.from_numpy(stems)
        return item
