"""Reader for timbre-transfer pairs written by `orchestrion data pairs` (layout: build_pairs.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from orchestrion.audio.io import load_audio
from orchestrion.errors import DatasetError
from orchestrion.files import require_file

PAIRS_JSON = "pairs.json"


@dataclass(frozen=True)
class PairRecord:
    """One aligned pair: the same notes on the source and the target instrument."""

    name: str
    split: str
    kind: str  # "note" or "phrase"
    pitches: tuple[int, ...]
    velocity: int
    duration_s: float
    source_path: Path
    target_path: Path


class PairsDataset(Dataset):
    """Aligned (source, target) waveforms; items are dicts of float32 tensors (samples,) + record."""

    def __init__(self, root: str | Path, split: str | None = None, kind: str | None = None) -> None:
        self.root = Path(root)
        index_path = require_file(self.root / PAIRS_JSON)
        try:
            index = json.loads(index_path.read_text())
            self.sample_rate = int(index["sample_rate"])
            self.source_name = index["source"]["name"]
            self.target_name = index["target"]["name"]
            self.records = [
                PairRecord(
                    p["name"], p["split"], p["kind"], tuple(p["pitches"]), int(p["velocity"]),
                    float(p["duration_s"]),
                    self.root / p["split"] / self.source_name / f"{p['name']}.wav",
                    self.root / p["split"] / self.target_name / f"{p['name']}.wav",
                )
                for p in index["pairs"]
                if (split is None or p["split"] == split) and (kind is None or p["kind"] == kind)
            ]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"not a valid pairs index ({type(exc).__name__}: {exc})", index_path) from None

    def __len__(self) -> int:
        return len(self.records)

    def load(self, record: PairRecord) -> tuple[np.ndarray, np.ndarray]:
        source, _ = load_audio(record.source_path, self.sample_rate, require_sample_rate=True)
        target, _ = load_audio(record.target_path, self.sample_rate, require_sample_rate=True)
        if len(source) != len(target):
            raise DatasetError(f"pair lengths differ ({len(source)} vs {len(target)} samples)", record.target_path)
        return source, target

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        source, target = self.load(record)
        return {"source": torch.from_numpy(source), "target": torch.from_numpy(target), "record": record}
