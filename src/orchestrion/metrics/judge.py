"""The instrument judge: a fixed, independent log-mel CNN naming the instruments heard in audio.

The judge reads audio only, never a score: 2 s chunks at 16 kHz (any input is mixed to
mono and resampled), a log-mel image, a small CNN, and one sigmoid per instrument slot of
`InstrumentVocabulary.default()`. It was trained only on FluidSynth renders of real
scores (`orchestrion train judge`), is never a training loss of any model and is never
retrained to move a figure; its threshold (0.5) is fixed in its config. What it says
about a model's audio is worth what it says about real audio: its *ceiling*, the same
figures on real held-out chunks, stands beside every figure it gives.

Figures: a chunk is *named in full* when the set of slots above the threshold equals the
set of slots sounding in it; macro accuracy is the share of chunks named in full. A
slot sounds in a chunk when its notes cover at least `present_min_s` of it.

Examples
--------
>>> judge = load_judge()                                    # doctest: +SKIP
>>> judge_chunks(wave, 44100, judge).shape                  # doctest: +SKIP
(n_chunks, 16)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from orchestrion.audio.io import resample, to_mono
from orchestrion.audio.spectral import MelScale, Stft
from orchestrion.errors import ConfigError
from orchestrion.presets import check_field_names

JUDGE_SYSTEM = "judge"
SHIPPED_JUDGE = "judge-cpu"


def _default_slots() -> tuple[str, ...]:
    from orchestrion.symbolic.instruments import InstrumentVocabulary  # noqa: PLC0415

    return InstrumentVocabulary.default().names


@dataclass(frozen=True)
class JudgeConfig:
    """What inference needs: the front-end, the network's widths, the slots and the threshold."""

    sample_rate: int = 16_000
    chunk_s: float = 2.0
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    fmin_hz: float = 30.0
    power_floor: float = 1e-7
    peak_range_db: float | None = None
    """If set, the log-mel image is in dB re its chunk's peak, clipped this far below (level-free)."""
    channels: tuple[int, ...] = (16, 32, 64, 128)
    threshold: float = 0.5
    present_min_s: float = 0.1
    slots: tuple[str, ...] = field(default_factory=_default_slots)

    @property
    def chunk_samples(self) -> int:
        return int(round(self.chunk_s * self.sample_rate))

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in document.items()}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> JudgeConfig:
        check_field_names(cls, document, "judge")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in document.items()}
        return cls(**values)


class InstrumentJudge(nn.Module):
    """Wave chunks (batch, samples) at the config's rate -> instrument logits (batch, slots)."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.config = config
        self.ceiling: dict[str, Any] = {}
        """Its figures on real held-out chunks, by split (from its card's config when loaded)."""
        self.stft = Stft(config.n_fft, config.hop_length, check_finite=False)
        self.mel = MelScale(config.sample_rate, config.n_fft, config.n_mels, fmin=config.fmin_hz,
                            persistent=False)
        self.input_norm = nn.BatchNorm2d(1)
        blocks: list[nn.Module] = []
        width = 1
        for channels in config.channels:
            blocks += [
                nn.Conv2d(width, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
                nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            width = channels
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(2 * width, len(config.slots))

    def log_mel(self, wave: Tensor) -> Tensor:
        """(batch, samples) -> (batch, 1, n_mels, frames), log10 of mel power (re the chunk's peak if set)."""
        power = self.stft(wave).abs().square()
        image = torch.log10(self.mel(power) + self.config.power_floor).unsqueeze(1)
        if self.config.peak_range_db is None:
            return image
        relative = image - image.amax(dim=(2, 3), keepdim=True)
        return torch.clamp(relative, min=-self.config.peak_range_db / 10.0)

    def forward(self, wave: Tensor) -> Tensor:
        maps = self.features(self.input_norm(self.log_mel(wave)))
        pooled = maps.mean(dim=2)  # over frequency: (batch, channels, frames)
        summary = torch.cat([pooled.mean(dim=2), pooled.amax(dim=2)], dim=1)
        return self.head(self.dropout(summary))

    @torch.inference_mode()
    def probabilities(self, chunks: Tensor, batch_size: int = 64) -> Tensor:
        """Sigmoid probabilities (n_chunks, slots) of wave chunks (n_chunks, samples), in batches."""
        return torch.cat([torch.sigmoid(self(chunks[i:i + batch_size])) for i in range(0, len(chunks), batch_size)])


def load_judge(name_or_path: str | Path = SHIPPED_JUDGE) -> InstrumentJudge:
    """The shipped judge (or a judge folder), in evaluation mode on the CPU."""
    from orchestrion.checkpoints import load_checkpoint, load_state_into  # noqa: PLC0415

    checkpoint = load_checkpoint(name_or_path, system=JUDGE_SYSTEM)
    judge = InstrumentJudge(JudgeConfig.from_dict(dict(checkpoint.config["model"])))
    load_state_into(judge, checkpoint)  # float16 weights are copied into float32 parameters
    judge.ceiling = dict(checkpoint.config.get("ceiling", {}))
    return judge.eval()


def chunk_count(n_samples: int, chunk_samples: int) -> int:
    """Chunks a wave of `n_samples` is cut into: whole chunks, plus a last one at least half full."""
    whole, rest = divmod(int(n_samples), int(chunk_samples))
    return whole + (1 if rest >= chunk_samples / 2 else 0)


def cut_chunks(wave: np.ndarray, n_chunks: int, chunk_samples: int) -> np.ndarray:
    """(n_chunks, chunk_samples): consecutive chunks from the start, the tail zero-padded."""
    need = n_chunks * chunk_samples
    wave = np.asarray(wave, np.float32)[:need]
    return np.pad(wave, (0, need - len(wave))).reshape(n_chunks, chunk_samples)


@torch.inference_mode()
def judge_chunks(wave: np.ndarray, sample_rate: int, judge: InstrumentJudge | None = None,
                 n_chunks: int | None = None, batch_size: int = 64) -> np.ndarray:
    """Probabilities (n_chunks, slots) that each slot sounds in each 2 s chunk of `wave`.

    `wave` is (samples,) or (channels, samples) at `sample_rate` Hz; it is mixed to mono
    and resampled to the judge's rate. `n_chunks` fixes the number of chunks (a shorter
    wave is padded with silence), so several waves can be judged on the same chunks.
    """
    judge = judge or load_judge()
    config = judge.config
    wave = np.asarray(wave, np.float32)
    mono = to_mono(wave) if wave.ndim == 2 else wave
    mono = resample(mono, int(sample_rate), config.sample_rate)
    n_chunks = chunk_count(len(mono), config.chunk_samples) if n_chunks is None else int(n_chunks)
    if n_chunks < 1:
        raise ConfigError(f"the judge needs at least {config.chunk_s / 2:g} s of audio")
    chunks = torch.from_numpy(cut_chunks(mono, n_chunks, config.chunk_samples))
    return judge.probabilities(chunks, batch_size).numpy().astype(np.float64)


def overlap_s(starts_s: np.ndarray, ends_s: np.ndarray, begin_s: float, end_s: float) -> float:
    """Seconds of [begin_s, end_s) covered by the notes (overlapping notes counted once each)."""
    covered = np.clip(np.minimum(ends_s, end_s) - np.maximum(starts_s, begin_s), 0.0, None)
    return float(covered.sum())


def score_chunk_labels(score, n_chunks: int, config: JudgeConfig | None = None) -> np.ndarray:
    """Multi-hot truth (n_chunks, slots): the slots whose notes sound in each chunk of a score.

    `score` is a pretty_midi score; each melodic track counts for the slot its GM program
    maps to (drum tracks are not instruments of the vocabulary).
    """
    from orchestrion.symbolic.instruments import InstrumentVocabulary  # noqa: PLC0415

    config = config or JudgeConfig()
    vocabulary = InstrumentVocabulary.default()
    labels = np.zeros((n_chunks, len(config.slots)), np.float32)
    for track in score.instruments:
        if track.is_drum or not track.notes:
            continue
        slot = vocabulary.slot_for_program(track.program).index
        starts = np.array([n.start for n in track.notes])
        ends = np.array([n.end for n in track.notes])
        for c in range(n_chunks):
            begin = c * config.chunk_s
            if overlap_s(starts, ends, begin, begin + config.chunk_s) >= config.present_min_s:
                labels[c, slot] = 1.0
    return labels


@dataclass(frozen=True)
class JudgeScores:
    """The judge's figures on a set of chunks.

    Attributes
    ----------
    macro_accuracy : share of chunks named in full (predicted set == true set).
    n_chunks : chunks scored.
    recall, precision : per slot name, over the chunks where the slot sounds / is named
        (NaN where it never does).
    pooled_recall, pooled_precision : over every (chunk, slot): the share of sounding
        instruments named, and of named instruments sounding (NaN with none).
    """

    macro_accuracy: float
    n_chunks: int
    recall: dict[str, float]
    precision: dict[str, float]
    pooled_recall: float = math.nan
    pooled_precision: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format_per_slot(self, indent: str = "  ") -> list[str]:
        """One line per slot: recall and precision."""
        width = max(len(name) for name in self.recall)
        return [f"{indent}{name.ljust(width)}  recall {_fmt(self.recall[name])}  "
                f"precision {_fmt(self.precision[name])}" for name in self.recall]


def _fmt(value: float) -> str:
    return "  n/a" if math.isnan(value) else f"{value:.3f}"


def judge_scores(probabilities: np.ndarray, labels: np.ndarray, slots: Sequence[str],
                 threshold: float) -> JudgeScores:
    """Macro accuracy and per-slot recall/precision of thresholded probabilities."""
    predicted = np.asarray(probabilities) > threshold
    truth = np.asarray(labels) > 0.5
    if predicted.shape != truth.shape or predicted.ndim != 2 or len(predicted) == 0:
        raise ConfigError(f"probabilities {predicted.shape} and labels {truth.shape} must match and be non-empty")
    hits = (predicted & truth).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / truth.sum(axis=0)
        precision = hits / predicted.sum(axis=0)
        pooled_recall = hits.sum() / truth.sum()
        pooled_precision = hits.sum() / predicted.sum()
    return JudgeScores(
        macro_accuracy=float((predicted == truth).all(axis=1).mean()),
        n_chunks=int(len(truth)),
        recall={name: float(recall[i]) for i, name in enumerate(slots)},
        precision={name: float(precision[i]) for i, name in enumerate(slots)},
        pooled_recall=float(pooled_recall),
        pooled_precision=float(pooled_precision),
    )


__all__ = [
    "InstrumentJudge",
    "JudgeConfig",
    "JudgeScores",
    "SHIPPED_JUDGE",
    "chunk_count",
    "cut_chunks",
    "judge_chunks",
    "judge_scores",
    "load_judge",
    "overlap_s",
    "score_chunk_labels",
]
