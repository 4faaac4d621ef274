"""`evaluate render`'s headline table: the model beside its baselines, every row on the same chunks.

Rows, each rendering the same held-out scores:

* **this model**: the render as ``orchestrion render`` writes it;
* **note bank alone**: the model's note bank with the generator's part removed (no
  network; :mod:`~orchestrion.systems.organ.bank_render`), same phase recovery; only for a
  model whose output prior is the bank;
* **TimGM6mb**: another SoundFont (the one inside pretty_midi) rendering the same score
  with FluidSynth, scaled to the reference's peak;
* **silence**;
* **FluidR3 reference**: the piece's AuMix itself, the audio every row is compared with.

Columns: the audio protocol's mean MS-SSIM, MR-STFT and LSD over the pieces (vs the
AuMix), and the instrument judge's macro accuracy (chunks named in full at its fixed
threshold) over the same 2 s chunks of every piece: the chunks are cut from the start
of the AuMix, and each row's audio is cut at the same places. The truth of a chunk is the
slots whose notes sound in it (read from the piece's score). The reference row's judge
figure is the judge's ceiling on these very chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrion.audio.io import as_saved_wav, resample
from orchestrion.metrics.audio import compare_pair, protocol_pair
from orchestrion.metrics.judge import (
    InstrumentJudge,
    JudgeScores,
    chunk_count,
    judge_chunks,
    judge_scores,
    load_judge,
    score_chunk_labels,
)

MODEL_ROW = "this model"
BANK_ROW = "note bank alone"
OTHER_SOUNDFONT_ROW = "TimGM6mb (other SoundFont)"
SILENCE_ROW = "silence"
REFERENCE_ROW = "FluidR3 reference (judge ceiling)"
AUDIO_FIGURES = ("ms_ssim", "mr_stft", "lsd")


def other_soundfont() -> Path:
    """TimGM6mb.sf2, the General MIDI SoundFont that ships inside the pretty_midi package."""
    import pretty_midi  # noqa: PLC0415

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@dataclass
class BaselineRow:
    """One row's per-piece audio figures and its judge inputs, gathered piece by piece."""

    name: str
    audio: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in AUDIO_FIGURES})
    probabilities: list[np.ndarray] = field(default_factory=list)

    def mean(self, figure: str) -> float:
        values = self.audio[figure]
        return float(np.mean(values)) if values else math.nan


@dataclass
class BaselineTable:
    """The model and its baselines on the same pieces and chunks (see the module notes)."""

    judge: InstrumentJudge
    rows: dict[str, BaselineRow] = field(default_factory=dict)
    labels: list[np.ndarray] = field(default_factory=list)
    n_pieces: int = 0

    def add(self, name: str, reference: np.ndarray, reference_rate: int, audio: np.ndarray,
            audio_rate: int, n_chunks: int) -> None:
        """Score one row's audio of one piece: protocol figures vs the reference, judge probabilities."""
        row = self.rows.setdefault(name, BaselineRow(name))
        comparison = compare_pair(protocol_pair(reference, audio, reference_rate, audio_rate))
        for figure in AUDIO_FIGURES:
            row.audio[figure].append(float(getattr(comparison, figure)))
        row.probabilities.append(judge_chunks(audio, audio_rate, self.judge, n_chunks=n_chunks))

    def scores(self, name: str) -> JudgeScores:
        """The judge's figures for one row over every chunk of every piece."""
        config = self.judge.config
        return judge_scores(np.concatenate(self.rows[name].probabilities), np.concatenate(self.labels),
                            config.slots, config.threshold)

    def format(self) -> str:
        """The table: one line per row, then the judge's ceiling on its own held-out chunks."""
        n_chunks = int(sum(len(labels) for labels in self.labels))
        width = max(len(name) for name in self.rows)
        lines = [
            f"model and baselines on the same {self.n_pieces} pieces and {n_chunks} chunks of "
            f"{self.judge.config.chunk_s:g} s (audio vs the AuMix; judge: chunks whose instruments "
            f"it names in full, threshold {self.judge.config.threshold})",
            f"{'row'.ljust(width)}  {'MS-SSIM':>8}  {'MR-STFT':>8}  {'LSD dB':>8}  {'judge macroACC':>14}"
            f"  {'recall':>6}  {'precision':>9}",
        ]
        for name, row in self.rows.items():
            scores = self.scores(name)
            lines.append(f"{name.ljust(width)}  {row.mean('ms_ssim'):8.4f}  {row.mean('mr_stft'):8.4f}  "
                         f"{row.mean('lsd'):8.2f}  {scores.macro_accuracy:14.3f}  "
                         f"{scores.pooled_recall:6.3f}  {scores.pooled_precision:9.3f}")
        lines.append("(recall: the share of sounding instruments the judge names; precision: the share "
                     "of named instruments that sound)")
        lines.append(ceiling_line(self.judge))
        return "\n".join(lines)


def ceiling_line(judge: InstrumentJudge) -> str:
    """The judge's ceiling from its card: macro accuracy on real held-out chunks."""
    parts = [f"{split} {scores['macro_accuracy']:.3f} ({scores['n_chunks']} chunks)"
             for split, scores in judge.ceiling.items()]
    return "judge ceiling on its own real held-out mixtures: " + (", ".join(parts) if parts else "unknown")


def new_table(judge: InstrumentJudge | str | Path | None = None) -> BaselineTable:
    """An empty table scored by `judge` (default: the shipped judge)."""
    if not isinstance(judge, InstrumentJudge):
        judge = load_judge() if judge is None else load_judge(judge)
    return BaselineTable(judge)


def add_piece_baselines(table: BaselineTable, model, score, reference: np.ndarray, reference_rate: int,
                        model_audio: np.ndarray, model_rate: int, render_options: dict) -> None:
    """Every row of one piece: the model's audio (given), the bank, TimGM6mb, silence, the reference."""
    from orchestrion.data.render import FluidSynthRenderer  # noqa: PLC0415
    from orchestrion.systems.organ.infer import render_score  # noqa: PLC0415

    config = table.judge.config
    reference_16k = resample(np.asarray(reference, np.float32), reference_rate, config.sample_rate)
    n_chunks = chunk_count(len(reference_16k), config.chunk_samples)
    table.labels.append(score_chunk_labels(score, n_chunks, config))
    table.n_pieces += 1
    table.add(MODEL_ROW, reference, reference_rate, model_audio, model_rate, n_chunks)
    if model.network.note_bank is not None:
        model.bank_only = True
        try:
            bank = render_score(score, model, **render_options)
        finally:
            model.bank_only = False
        table.add(BANK_ROW, reference, reference_rate, as_saved_wav(bank.audio, bank.sample_rate),
                  bank.sample_rate, n_chunks)
    with FluidSynthRenderer(other_soundfont(), sample_rate=reference_rate) as renderer:
        other = renderer.render_score(score)
    other *= float(np.abs(reference).max()) / max(float(np.abs(other).max()), 1e-9)
    table.add(OTHER_SOUNDFONT_ROW, reference, reference_rate, other, reference_rate, n_chunks)
    table.add(SILENCE_ROW, reference, reference_rate, np.zeros_like(reference), reference_rate, n_chunks)
    table.add(REFERENCE_ROW, reference, reference_rate, reference, reference_rate, n_chunks)


__all__ = ["BaselineTable", "add_piece_baselines", "ceiling_line", "new_table", "other_soundfont"]
