"""Reader for MIDI corpora: any folder of ``.mid`` / ``.midi`` files, Lakh, MAESTRO v3.

Listing never parses MIDI; `MidiFolder.load` (and item access) parse one file with
`orchestrion.symbolic.midi.read_midi`.

- MAESTRO: if the root holds ``maestro-v*.csv`` (columns ``canonical_composer,
  canonical_title, split, year, midi_filename, audio_filename, duration``) the csv lists
  the corpus and gives each file its split; MAESTRO's ``validation`` is called ``valid``
  here, like NSynth's. A row whose MIDI file is missing is a bad entry (DatasetError
  naming the csv line, or skipped with ``skip_bad=True``).
- Otherwise every ``.mid`` / ``.midi`` file below the root is listed (recursively; ``._*``
  files and hidden folders are ignored). A file below a top-level ``train/``, ``valid/``
  (or ``validation/``) or ``test/`` folder, as `orchestrion data midi` writes them, takes
  that split; any other file's split is drawn deterministically: the first 8 bytes of the SHA-256 of the file's split key, read as a fraction of
  2^64, fall into train / valid / test by `split_ratios` (default 80 / 10 / 10). The
  split key is the ``/``-separated path below the root, except for Lakh files (named by
  their 32-hex-digit MD5, ``lmd_full/<md5[0]>/<md5>.mid``), whose key is the MD5, so a
  Lakh file keeps its split whether the root is ``lmd_full`` or its parent. The split of
  a file never changes when files are added or removed.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from orchestrion.errors import ConfigError, DatasetError, InputFileNotFoundError
from orchestrion.data.records import MidiFileRecord, SkippedEntry, is_resource_fork, skip_or_raise

MIDI_SUFFIXES = (".mid", ".midi")
SPLITS = ("train", "valid", "test")
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)
"""Fractions of files in train, valid and test when no csv gives the splits."""
MAESTRO_COLUMNS = (
    "canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration",
)
MAESTRO_SPLIT_NAMES = {"train": "train", "validation": "valid", "valid": "valid", "test": "test"}
_MD5_STEM = re.compile(r"^[0-9a-f]{32}$")


def split_key(relative_path: str) -> str:
    """The string a file's split is hashed from: the Lakh MD5 if the name is one, else the path."""
    stem = relative_path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return stem if _MD5_STEM.match(stem) else relative_path


SPLIT_FOLDERS = ("train", "valid", "test")


def folder_split(relative_path: str) -> str | None:
    """The split a file's top-level folder names (``train/``, ``valid/``, ``test/``, as
    `orchestrion data midi` writes them; ``validation/`` counts as valid), else None."""
    top = relative_path.split("/", 1)[0].lower() if "/" in relative_path else ""
    top = "valid" if top == "validation" else top
    return top if top in SPLIT_FOLDERS else None


def assign_split(relative_path: str, split_ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS) -> str:
    """Deterministic split of a file from the SHA-256 of its split key (see the module docstring).

    Parameters
    ----------
    relative_path : the file's ``/``-separated path below the corpus root.
    split_ratios : relative sizes of (train, valid, test); normalised to sum to 1.
    """
    ratios = _check_ratios(split_ratios)
    digest = hashlib.sha256(split_key(relative_path).encode("utf-8")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    cumulative = 0.0
    for split, ratio in zip(SPLITS, ratios):
        cumulative += ratio
        if fraction < cumulative:
            return split
    return next(s for s, r in zip(reversed(SPLITS), reversed(ratios)) if r > 0)


def _check_ratios(split_ratios: Sequence[float]) -> tuple[float, float, float]:
    ratios = tuple(float(r) for r in split_ratios)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ConfigError(f"split_ratios must be three non-negative numbers (train, valid, test), got {split_ratios!r}")
    total = sum(ratios)
    return tuple(r / total for r in ratios)  # type: ignore[return-value]


def find_maestro_csv(root: str | Path) -> Path | None:
    """The ``maestro-v*.csv`` in `root` (the highest version if several), or None."""
    candidates = sorted(
        (p for p in Path(root).glob("maestro-v*.csv") if not is_resource_fork(p)),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.name)],
    )
    return candidates[-1] if candidates else None


class MidiFolder(Dataset):
    """A MIDI corpus; items are parsed scores (`orchestrion.symbolic.midi.read_midi`).

    Parameters
    ----------
    root : the corpus folder (a MAESTRO root holding its csv, a Lakh ``lmd_full``, or any).
    split : keep only ``"train"``, ``"valid"`` or ``"test"``; None keeps all.
    split_ratios : (train, valid, test) fractions for the hash split (no csv).
    skip_bad : skip csv rows that name missing files instead of raising DatasetError.
    use_maestro_csv : take files and splits from a ``maestro-v*.csv`` in `root` if present.

    Attributes
    ----------
    records : MidiFileRecords (csv order for MAESTRO, else sorted by relative path).
    csv_path : the MAESTRO csv used, or None.
    skipped : (file, reason) of bad rows left out.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        split_ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS,
        skip_bad: bool = False,
        use_maestro_csv: bool = True,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputFileNotFoundError("MIDI folder not found", self.root)
        if split is not None and split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        self.split_ratios = _check_ratios(split_ratios)
        self.skip_bad = skip_bad
        self.skipped: list[SkippedEntry] = []
        self.csv_path = find_maestro_csv(self.root) if use_maestro_csv else None
        records = self._list_maestro(self.csv_path) if self.csv_path is not None else self._list_folder()
        self.records: list[MidiFileRecord] = [r for r in records if split is None or r.split == split]

    def _list_folder(self) -> list[MidiFileRecord]:
        records = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file_name in files:
                if file_name.lower().endswith(MIDI_SUFFIXES) and not is_resource_fork(file_name):
                    path = Path(folder) / file_name
                    relative = path.relative_to(self.root).as_posix()
                    split = folder_split(relative) or assign_split(relative, self.split_ratios)
                    records.append(MidiFileRecord(path, relative, split))
        records.sort(key=lambda r: r.relative_path)
        return records

    def _list_maestro(self, csv_path: Path) -> list[MidiFileRecord]:
        records = []
        try:
            with open(csv_path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in MAESTRO_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise DatasetError(f"header misses column(s) {', '.join(missing)}", csv_path, 1)
                for row in reader:
                    line = reader.line_num
                    try:
                        records.append(self._maestro_row(row, csv_path, line))
                    except DatasetError as exc:
                        skip_or_raise(exc, self.skip_bad, self.skipped)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DatasetError(f"cannot read ({exc})", csv_path) from exc
        return records

    def _maestro_row(self, row: dict[str, Any], csv_path: Path, line: int) -> MidiFileRecord:
        if any(row.get(c) is None for c in MAESTRO_COLUMNS) or None in row:
            raise DatasetError(f"expected {len(MAESTRO_COLUMNS)} columns", csv_path, line)
        split = MAESTRO_SPLIT_NAMES.get(row["split"].strip().lower())
        if split is None:
            raise DatasetError(f"unknown split {row['split']!r} (train, validation, test)", csv_path, line)
        try:
            year = int(row["year"]) if row["year"].strip() else None
            duration_s = float(row["duration"]) if row["duration"].strip() else None
        except ValueError:
            problem = f"year {row['year']!r} or duration {row['duration']!r} is not a number"
            raise DatasetError(problem, csv_path, line) from None
        relative = row["midi_filename"].strip()
        path = self.root / relative
        if not relative or not path.is_file():
            raise DatasetError(f"MIDI file {relative!r} listed here does not exist", csv_path, line)
        audio = row["audio_filename"].strip()
        return MidiFileRecord(
            path=path,
            relative_path=Path(relative).as_posix(),
            split=split,
            composer=row["canonical_composer"],
            title=row["canonical_title"],
            year=year,
            duration_s=duration_s,
            audio_path=self.root / audio if audio else None,
        )

    @property
    def n_skipped(self) -> int:
        """Number of bad rows left out."""
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> Any:
        """Parse file `index` with `orchestrion.symbolic.midi.read_midi` (its errors pass through)."""
        from orchestrion.symbolic.midi import read_midi

        return read_midi(self.records[index].path)

    def __getitem__(self, index: int) -> Any:
        return self.load(range(len(self.records))[index])
