"""Training data for orGAN from URMP-format pieces (ours or the real URMP).

Per the seed: every non-empty subset of a piece's parts is mixed (2^n - 1 mixes), chunks of
`chunk_s` seconds are cut with a stride of `chunk_stride_s`, silent chunks are dropped, and
pieces (never chunks) are split into train / valid / test. Stems are held in memory once;
the mix of a subset, its log-power spectrogram and its pianoroll are made per item.

Velocities: URMP's Notes files carry none. When the piece's Sco_*.mid is aligned with the
performance (as in our renders) each note takes the velocity of the score note with the
same pitch starting within 50 ms; otherwise it gets `DEFAULT_VELOCITY`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import torch
from rich.progress import track
from torch.utils.data import Dataset

from orchestrion.audio.spectral import LogPower, Stft
from orchestrion.data.records import PieceRecord
from orchestrion.data.urmp import URMPDataset
from orchestrion.errors import ConfigError
from orchestrion.symbolic.instruments import InstrumentVocabulary
from orchestrion.symbolic.pianoroll import score_to_pianoroll
from orchestrion.systems.organ.encoding import AGE_UNKNOWN, note_ages
from orchestrion.systems.organ.presets import OrganConfig

DEFAULT_VELOCITY = 100
VELOCITY_MATCH_S = 0.05
MIN_ACTIVE_FRACTION = 0.25


@dataclass
class PieceTensors:
    """One piece in memory: stems (parts, samples) float32 and per-part rolls (parts, 128, frames)."""

    piece_id: str
    slots: tuple[int, ...]
    stems: np.ndarray
    rolls: np.ndarray  # float16 velocity / 127
    onsets: np.ndarray  # bool


def _score_velocities(score_path: Path | None, n_parts: int) -> list[dict[int, list[tuple[float, int]]]]:
    """Per part: pitch -> [(start s, velocity)] from the Sco_*.mid, if it can be read."""
    tables: list[dict[int, list[tuple[float, int]]]] = [{} for _ in range(n_parts)]
    if score_path is None or not Path(score_path).is_file():
        return tables
    try:
        score = pretty_midi.PrettyMIDI(str(score_path))
    except Exception:  # noqa: BLE001 - an unreadable score only costs the velocities
        return tables
    melodic = [inst for inst in score.instruments if not inst.is_drum]
    for part, inst in zip(tables, melodic):
        for note in inst.notes:
            part.setdefault(note.pitch, []).append((note.start, note.velocity))
    return tables


def _velocity(table: dict[int, list[tuple[float, int]]], pitch: int, onset_s: float) -> int:
    best = min(table.get(pitch, []), key=lambda sv: abs(sv[0] - onset_s), default=None)
    if best is None or abs(best[0] - onset_s) > VELOCITY_MATCH_S:
        return DEFAULT_VELOCITY
    return int(best[1])


def piece_tensors(dataset: URMPDataset, record: PieceRecord, config: OrganConfig,
                  vocabulary: InstrumentVocabulary) -> PieceTensors:
    """Load one piece's stems at the config's rate and rasterise each part's notes."""
    stems, _ = dataset.load_stems(record, config.sample_rate)
    n_frames = 1 + stems.shape[1] // config.hop_length
    velocities = _score_velocities(record.score_path, len(record.parts))
    slots, rolls, onsets = [], [], []
    for part, table in zip(record.parts, velocities):
        slot = vocabulary.by_name(part.instrument)
        inst = pretty_midi.Instrument(program=slot.program)
        inst.notes = [pretty_midi.Note(_velocity(table, n.pitch, n.onset_s), int(n.pitch), n.onset_s, n.offset_s)
                      for n in part.notes if n.offset_s > n.onset_s]
        score = pretty_midi.PrettyMIDI()
        score.instruments.append(inst)
        roll, onset = score_to_pianoroll(score, config.frame_rate_hz, vocabulary=vocabulary,
                                         mode="velocity", n_frames=n_frames, onsets=True)
        slots.append(slot.index)
        rolls.append(roll[slot.index].astype(np.float16))
        onsets.append(onset[slot.index] > 0)
    return PieceTensors(record.piece_id, tuple(slots), stems.astype(np.float32),
                        np.stack(rolls), np.stack(onsets))


def subsets_for(n_parts: int, max_size: int | None) -> list[tuple[int, ...]]:
    """Every non-empty subset of part indices, smallest first, up to `max_size` parts."""
    top = n_parts if max_size is None else min(max_size, n_parts)
    return [c for size in range(1, top + 1) for c in itertools.combinations(range(n_parts), size)]


class TargetSpectrogram(torch.nn.Module):
    """The generator's target: S = ln(1 + |STFT(input_gain * audio)|^2), (B, samples) -> (B, n_bins, T)."""

    def __init__(self, config: OrganConfig) -> None:
        super().__init__()
        self.input_gain = config.input_gain
        self.stft = Stft(config.n_fft, config.hop_length)
        self.log_power = LogPower()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.log_power(self.stft(audio * self.input_gain))

    def inverse_magnitude(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """Log-power -> the magnitude of the audio itself (the input gain divided out)."""
        return self.log_power.inverse(spectrogram) / self.input_gain


class OrganChunks(Dataset):
    """Chunks of (roll, onsets, audio, instrument labels) for training.

    Items are dicts: ``roll`` (16, 128, T) float32 velocity/127; ``onsets`` (16, 128, T);
    ``ages`` (16, 128, T) frames since each note's onset, only with note-age features;
    ``instruments`` (16,) multi-hot; ``audio`` ((T - 1) * hop,) the chunk's mix. The
    target spectrogram is made from ``audio`` batch-wise by :class:`TargetSpectrogram`
    (one batched STFT is far cheaper than one per item). T = config.chunk_frames.
    """

    def __init__(self, pieces: list[PieceTensors], config: OrganConfig,
                 max_subset_size: int | None = None, stride_s: float | None = None) -> None:
        if not pieces:
            raise ConfigError("no pieces to train on (check the dataset folder and its split)")
        self.pieces = pieces
        self.config = config
        stride = int(round((stride_s or config.chunk_stride_s) * config.frame_rate_hz))
        frames = config.chunk_frames
        self.index: list[tuple[int, tuple[int, ...], int]] = []
        for p, piece in enumerate(pieces):
            total = piece.rolls.shape[-1]
            for subset in subsets_for(len(piece.slots), max_subset_size):
                active = piece.rolls[list(subset)].max(axis=(0, 1)) > 0
                for start in range(0, max(1, total - frames + 1), max(1, stride)):
                    if active[start:start + frames].mean() >= MIN_ACTIVE_FRACTION:
                        self.index.append((p, subset, start))
        if not self.index:
            raise ConfigError("every chunk is silent: the pieces hold no notes")

    def __len__(self) -> int:
        return len(self.index)

    def label_counts(self) -> np.ndarray:
        """How many chunks each slot plays in (for the class-weighted classifier loss)."""
        counts = np.zeros(self.config.n_slots, dtype=np.int64)
        for p, subset, _ in self.index:
            for k in subset:
                counts[self.pieces[p].slots[k]] += 1
        return counts

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        p, subset, start = self.index[i]
        piece, config = self.pieces[p], self.config
        frames = config.chunk_frames
        parts = list(subset)
        audio = sum(self.part_audio(p, k, start) for k in parts)
        roll = np.zeros((config.n_slots, 128, frames), dtype=np.float32)
        onsets = np.zeros_like(roll)
        labels = np.zeros(config.n_slots, dtype=np.float32)
        lookback = config.note_age_lookback
        ages = np.full_like(roll, AGE_UNKNOWN) if lookback else None
        for k in parts:
            slot = piece.slots[k]
            self.add_part_roll(roll, p, k, start)
            onset = piece.onsets[k, :, start:start + frames]
            onsets[slot, :, :onset.shape[-1]] = np.maximum(onsets[slot, :, :onset.shape[-1]], onset)
            labels[slot] = 1.0
            if ages is not None:
                since = max(0, start - lookback)  # the onsets of notes still sounding at `start`
                part_ages = note_ages(torch.from_numpy(piece.rolls[k, :, since:start + frames]),
                                      torch.from_numpy(piece.onsets[k, :, since:start + frames]))
                part_ages = part_ages[:, start - since:].numpy()
                view = ages[slot, :, :part_ages.shape[-1]]
                np.minimum(view, part_ages, out=view)  # two parts on one slot: the latest onset
        item = {"roll": torch.from_numpy(roll), "onsets": torch.from_numpy(onsets),
                "instruments": torch.from_numpy(labels), "audio": torch.from_numpy(audio)}
        if ages is not None:
            item["ages"] = torch.from_numpy(ages)
        return item

    def part_audio(self, p: int, k: int, start: int, gain_db: float = 0.0) -> np.ndarray:
        """Part `k` of piece `p` over the chunk that starts at frame `start` (zero-padded at
        the piece's end), scaled by `gain_db`; a view of the stem when neither applies (read only)."""
        hop = self.config.hop_length
        n_samples = (self.config.chunk_frames - 1) * hop
        audio = self.pieces[p].stems[k, start * hop:start * hop + n_samples]
        if len(audio) < n_samples:  # only at a piece's end: elsewhere the slice is used as it is
            audio = np.pad(audio, (0, n_samples - len(audio)))
        return audio * np.float32(10 ** (gain_db / 20)) if gain_db else audio

    def add_part_roll(self, roll: np.ndarray, p: int, k: int, start: int) -> None:
        """Add part `k` of piece `p` over the chunk at frame `start` into `roll` (slots, 128,
        chunk frames) on its slot, in place; a slot two parts share keeps the louder note."""
        slot = self.pieces[p].slots[k]
        segment = self.pieces[p].rolls[k, :, start:start + self.config.chunk_frames].astype(np.float32)
        view = roll[slot, :, :segment.shape[-1]]
        np.maximum(view, segment, out=view)

    def single_instrument_indices(self) -> list[int]:
        """Items that mix one part only (the `single` regime and `transfer`'s first stage)."""
        return [i for i, (_, subset, _) in enumerate(self.index) if len(subset) == 1]


def load_pieces(root: str | Path, config: OrganConfig, split: str | None = None,
                limit: int | None = None, progress: bool = True) -> list[PieceTensors]:
    """All pieces of a URMP-format folder (one split of it) in memory at the config's rate."""
    dataset = URMPDataset(root, split=split)
    vocabulary = InstrumentVocabulary.default()
    records = dataset.records[:limit] if limit else dataset.records
    if not records:
        raise ConfigError(f"no URMP pieces found in {root}" + (f" for split {split!r}" if split else ""))
    return [piece_tensors(dataset, r, config, vocabulary)
            for r in track(records, description=f"loading {split or 'all'} pieces", disable=not progress)]
