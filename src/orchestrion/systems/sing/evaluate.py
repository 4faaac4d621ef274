"""`orchestrion evaluate note`: a SING model against held-out NSynth-format notes.

For every evaluated note (instrument, pitch, velocity) the model generates the note and it
is compared with the recorded one:

- spectral loss: the model's own training loss, ``distance(log(eps + |F(x)|^2))`` (SING:
  L1 of the log-power STFT, n_fft 1024, hop 256, eps 1), averaged over bins and frames of
  the 64,000-sample note;
- waveform L1: mean |generated - recorded| per sample (sample units, full scale 1);
- pitch accuracy: the f0 of the generated note (``librosa.pyin`` on its held part,
  0.25-2.25 s, median over voiced frames, searched two octaves either side of the requested
  pitch) lies within `tolerance_cents` (50) of the requested MIDI pitch. A note with no
  voiced frame counts as a miss. The same measure on the recorded notes (the reference
  accuracy) shows how far pyin itself can be trusted on those instruments, and the
  accuracy over just the notes whose recording pyin reads right ("readable") takes pyin's
  own misses out of the figure;
- unvoiced: the share of generated notes in which pyin finds no voiced frame;
- level: the generated note's RMS against the recorded one's, in dB (mean over notes;
  negative = quieter than the recording).

Figures are given for all evaluated notes and for two subsets: pitches never trained *for
that instrument* (every held-out pair, when evaluating a model on the split it was not
trained on) and pitches never trained for *any* instrument (e.g. the D#/Eb held out of
orchestrion builds: their pitch embedding never received a gradient).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from orchestrion.errors import ConfigError, DatasetError
from orchestrion.nn.spectral_losses import LogSpectralLoss
from orchestrion.systems.sing.data import SingNotes, describe_data, list_notes, spread_subset
from orchestrion.systems.sing.baselines import NoteBaselines, new_note_baselines
from orchestrion.systems.sing.infer import NoteModel

PITCH_TOLERANCE_CENTS = 50.0
PYIN_SEGMENT_S = (0.25, 2.25)
"""Part of the note pyin reads, in seconds (inside NSynth's 3 s hold)."""
PYIN_SEARCH_SEMITONES = 24
PYIN_FRAME_LENGTH = 2048
PYIN_HOP_LENGTH = 512


@dataclass(frozen=True)
class GroupFigures:
    """Mean figures over a group of notes (NaN when the group is empty).

    Attributes
    ----------
    notes : number of notes in the group.
    spectral_loss : mean spectral loss (the model's training loss) per note.
    waveform_l1 : mean |generated - recorded| per sample.
    pitch_accuracy : fraction of generated notes whose f0 is within tolerance.
    reference_pitch_accuracy : the same for the recorded notes (NaN if not measured).
    readable_pitch_accuracy : pitch accuracy over the notes whose recording pyin reads
        within tolerance (NaN if the reference was not measured or none reads right).
    unvoiced : fraction of generated notes without a voiced pyin frame (NaN if not given).
    level_db : mean of 20 log10(RMS generated / RMS recorded) (NaN if not given).
    """

    notes: int
    spectral_loss: float
    waveform_l1: float
    pitch_accuracy: float
    reference_pitch_accuracy: float
    readable_pitch_accuracy: float = float("nan")
    unvoiced: float = float("nan")
    level_db: float = float("nan")

    @classmethod
    def of(cls, spectral: np.ndarray, l1: np.ndarray, hits: np.ndarray, reference_hits: np.ndarray | None,
           mask: np.ndarray, unvoiced: np.ndarray | None = None,
           level_db: np.ndarray | None = None) -> GroupFigures:
        count = int(mask.sum())

        def mean(values: np.ndarray | None) -> float:
            return float(values[mask].mean()) if values is not None and count else float("nan")

        readable = float("nan")
        if reference_hits is not None:
            read_right = mask & (reference_hits > 0)
            readable = float(hits[read_right].mean()) if read_right.any() else float("nan")
        return cls(count, mean(spectral), mean(l1), mean(hits), mean(reference_hits),
                   readable, mean(unvoiced), mean(level_db))


@dataclass
class NoteEvaluation:
    """Evaluation of a note model on one split of an NSynth-format folder."""

    model: str
    data: str
    split: str
    tolerance_cents: float
    overall: GroupFigures
    unseen_for_instrument: GroupFigures
    unseen_for_all: GroupFigures
    skipped_notes: int = 0
    baselines: NoteBaselines | None = None

    def groups(self) -> dict[str, GroupFigures]:
        return {"all notes": self.overall,
                "pitch unseen for its instrument": self.unseen_for_instrument,
                "pitch unseen for every instrument": self.unseen_for_all}

    def format(self) -> str:
        """A plain-text table, one row per group."""
        def cell(value: float, percent: bool = False) -> str:
            if math.isnan(value):
                return "-"
            return f"{100 * value:.1f}%" if percent else f"{value:.4f}"

        def level(value: float) -> str:
            return "-" if math.isnan(value) else f"{value:+.1f} dB"

        header = (f"{'':<34}{'notes':>6}{'spectral':>10}{'wave L1':>9}"
                  f"{'pitch acc':>11}{'(recorded)':>12}{'readable':>10}{'unvoiced':>10}{'level':>10}")
        rows = [f"{name:<34}{g.notes:>6}{cell(g.spectral_loss):>10}{cell(g.waveform_l1):>9}"
                f"{cell(g.pitch_accuracy, True):>11}{cell(g.reference_pitch_accuracy, True):>12}"
                f"{cell(g.readable_pitch_accuracy, True):>10}{cell(g.unvoiced, True):>10}"
                f"{level(g.level_db):>10}"
                for name, g in self.groups().items()]
        title = (f"note model {self.model} on {self.data} ({self.split} split); pitch within "
                 f"{self.tolerance_cents:g} cents (pyin)")
        lines = [title, header, *rows]
        if self.skipped_notes:
            lines.append(f"({self.skipped_notes} notes of instruments the model does not know were skipped)")
        if self.baselines is not None:
            lines += ["", self.baselines.format()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "data": self.data, "split": self.split,
                "tolerance_cents": self.tolerance_cents, "skipped_notes": self.skipped_notes,
                **{key: _finite_or_none(asdict(group)) for key, group in (
                    ("overall", self.overall), ("unseen_for_instrument", self.unseen_for_instrument),
                    ("unseen_for_all", self.unseen_for_all))},
                **({"baselines": self.baselines.to_dict()} if self.baselines is not None else {})}


def _finite_or_none(values: dict[str, Any]) -> dict[str, Any]:
    """NaN -> None, so the dict is valid JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def lowest_pyin_fmin(sample_rate: int) -> float:
    """The lowest f0 with more than two periods in a pyin frame (librosa warns at exactly two)."""
    return float(np.nextafter(2.0 * sample_rate / PYIN_FRAME_LENGTH, np.inf))


def estimate_f0(wave: np.ndarray, sample_rate: int, pitch: int) -> float:
    """Median pyin f0 (Hz) of the held part of a note, searched +-2 octaves around `pitch`.

    Parameters
    ----------
    wave : (samples,) float audio.
    sample_rate : Hz.
    pitch : the requested MIDI pitch, which centres the search range.

    Returns
    -------
    f0 in Hz, or NaN if no frame is voiced (or the range is not measurable).
    """
    start, stop = (int(s * sample_rate) for s in PYIN_SEGMENT_S)
    segment = np.asarray(wave[start:stop], dtype=np.float32)
    fmin = max(float(librosa.midi_to_hz(pitch - PYIN_SEARCH_SEMITONES)),
               lowest_pyin_fmin(sample_rate))
    fmax = min(float(librosa.midi_to_hz(pitch + PYIN_SEARCH_SEMITONES)), 0.49 * sample_rate)
    if fmin >= fmax or len(segment) < PYIN_FRAME_LENGTH or not np.any(segment):
        return float("nan")
    f0, _, _ = librosa.pyin(segment, fmin=fmin, fmax=fmax, sr=sample_rate,
                            frame_length=PYIN_FRAME_LENGTH, hop_length=PYIN_HOP_LENGTH)
    voiced = f0[np.isfinite(f0)]
    return float(np.median(voiced)) if voiced.size else float("nan")


def _level_db(generated: torch.Tensor, recorded: torch.Tensor) -> float:
    """20 log10 of the RMS ratio generated / recorded, floored at -120 dB either way."""
    tiny = 1e-6
    rms = [float(x.double().pow(2).mean().sqrt()) for x in (generated, recorded)]
    return 20.0 * math.log10(max(rms[0], tiny) / max(rms[1], tiny))


def pitch_error_cents(f0_hz: float, pitch: int) -> float:
    """Signed distance of `f0_hz` from MIDI `pitch` in cents (NaN if f0 is NaN)."""
    if not f0_hz > 0:
        return float("nan")
    return 1200.0 * math.log2(f0_hz / float(librosa.midi_to_hz(pitch)))


def _per_note_spectral_loss(model: NoteModel) -> LogSpectralLoss:
    config = model.config
    return LogSpectralLoss(config.loss_transform, distance=config.loss_distance, eps=config.loss_eps,
                           reduction="none", sample_rate=config.sample_rate,
                           n_fft=config.loss_n_fft, hop_length=config.loss_hop_length)


@torch.inference_mode()
def evaluate_note(
    model: NoteModel | str | Path,
    data_dir: str | Path,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 16,
    tolerance_cents: float = PITCH_TOLERANCE_CENTS,
    split_mode: str | None = None,
    reference: bool = True,
    progress: bool = False,
    baselines: bool = True,
    judge=None,
) -> NoteEvaluation:
    """Evaluate `model` on the notes of `split` whose instrument it knows.

    Parameters
    ----------
    model : a NoteModel, or a model name / folder.
    data_dir : NSynth-format folder.
    split : "train", "valid" or "test".
    limit : at most this many notes, spread evenly over the sorted split (None: all).
    batch_size : notes generated per forward pass.
    tolerance_cents : pitch-accuracy tolerance.
    split_mode : how to split the data; None uses the model's own (from its config) when the
        data is of the kind it was trained on, else "auto".
    reference : also measure pyin's accuracy on the recorded notes (doubles the pyin time,
        ~0.3 s per note on 2 cores).
    progress : show a progress bar on stderr.
    baselines : also score silence, a sawtooth and FluidR3's neighbouring key on the same
        notes, with the instrument judge (:mod:`~orchestrion.systems.sing.baselines`).
    judge : the judge for those rows (default: the shipped ``judge-cpu``).
    """
    if not isinstance(model, NoteModel):
        model = NoteModel.from_pretrained(model)
    if tolerance_cents <= 0:
        raise ConfigError(f"pitch tolerance must be positive, got {tolerance_cents} cents")
    if split_mode is None:
        trained = model.info.get("data", {})
        source = describe_data(data_dir)
        if trained.get("kind") == source.kind and trained.get("split_mode"):
            source = describe_data(data_dir, trained["split_mode"])
    else:
        source = describe_data(data_dir, split_mode)
    notes = SingNotes(list_notes(source, split), model.table, model.n_samples)
    subset = spread_subset(len(notes), limit)
    if not subset:
        raise DatasetError(
            f"no {split} notes of this model's instruments ({', '.join(model.table.names)})",
            source.root)
    loss = _per_note_spectral_loss(model)
    sing, sample_rate = model.sing, model.sample_rate
    spectral, l1, hits, reference_hits, unvoiced, level_db = [], [], [], [], [], []
    seen_for_instrument, seen_anywhere = [], []
    all_pitches = model.table.all_train_pitches()
    table = new_note_baselines(sample_rate, judge, by_construction=sing.config.harmonic_partials > 0) \
        if baselines else None
    with _progress(progress) as bar:
        task = bar.add_task("evaluating", total=len(subset)) if bar is not None else None
        for start in range(0, len(subset), batch_size):
            items = [notes[i] for i in subset[start : start + batch_size]]
            recorded = torch.stack([item["audio"] for item in items])
            ids = [torch.tensor([item[key] for item in items]) for key in ("instrument", "pitch", "velocity")]
            generated = sing(*ids).float()
            spectral.append(loss(generated, recorded).mean(dim=(-2, -1)).numpy())
            l1.append((generated - recorded).abs().mean(dim=-1).numpy())
            if table is not None:
                table.add_batch([notes.records[i] for i in subset[start : start + batch_size]],
                                recorded, generated, loss)
            for row, item in enumerate(items):
                pitch = int(item["pitch"])
                entry = model.table.entries[int(item["instrument"])]
                seen_for_instrument.append(pitch in entry.train_pitches)
                seen_anywhere.append(pitch in all_pitches)
                error = pitch_error_cents(estimate_f0(generated[row].numpy(), sample_rate, pitch), pitch)
                hits.append(abs(error) <= tolerance_cents)
                unvoiced.append(math.isnan(error))
                level_db.append(_level_db(generated[row], recorded[row]))
                if reference:
                    error = pitch_error_cents(estimate_f0(recorded[row].numpy(), sample_rate, pitch), pitch)
                    reference_hits.append(abs(error) <= tolerance_cents)
                if bar is not None:
                    bar.advance(task)
    spectral_all, l1_all = np.concatenate(spectral), np.concatenate(l1)
    hits_all = np.asarray(hits, dtype=np.float64)
    reference_all = np.asarray(reference_hits, dtype=np.float64) if reference else None
    seen_i, seen_a = np.asarray(seen_for_instrument), np.asarray(seen_anywhere)
    unvoiced_all, level_all = np.asarray(unvoiced, dtype=np.float64), np.asarray(level_db)

    def group(mask: np.ndarray) -> GroupFigures:
        return GroupFigures.of(spectral_all, l1_all, hits_all, reference_all, mask,
                               unvoiced_all, level_all)

    name = str(model.path) if model.path is not None else "(in memory)"
    return NoteEvaluation(
        model=name, data=str(source.root), split=split, tolerance_cents=float(tolerance_cents),
        overall=group(np.ones(len(hits), dtype=bool)),
        unseen_for_instrument=group(~seen_i),
        unseen_for_all=group(~seen_a),
        skipped_notes=notes.n_unknown,
        baselines=table,
    )


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), transient=True)

