"""`evaluate note`'s baselines: the model beside silence, a sawtooth and FluidR3's neighbouring key.

Every row is the same evaluated notes (instrument, pitch, velocity), each 4 s:

* **this model**: the generated note;
* **silence**;
* **1/k sawtooth**: every harmonic of the requested pitch below Nyquist at amplitude 1/k,
  under the recorded note's amplitude envelope (its frame RMS), at the recording's RMS: the
  right pitch and the right loudness course, and no timbre at all;
* **FluidR3 neighbouring key**: the same instrument's note one key below (above, if the
  SoundFont has no sample there) rendered by FluidSynth and resampled to the requested
  pitch: a practical ceiling (the real sampler, a semitone's resampling away);
* **FluidR3 itself**: the recorded note (spectral distance 0; its judge figure is the
  judge's ceiling on these notes).

Columns: the spectral distance (the model's own per-note loss, as `evaluate note`) and the
instrument judge's macro accuracy over the two 2 s chunks of each note, for the notes of
instruments the judge knows (a GM program that is one of its slots' programs); others
are listed as n/a.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from orchestrion.audio.io import detune
from orchestrion.data.nsynth import fit_length
from orchestrion.metrics.judge import InstrumentJudge, JudgeScores, judge_chunks, judge_scores, load_judge

MODEL_ROW = "this model"
SILENCE_ROW = "silence"
SAWTOOTH_ROW = "1/k sawtooth at the pitch"
NEIGHBOUR_ROW = "FluidR3 neighbouring key, resampled"
REFERENCE_ROW = "FluidR3 note itself (judge ceiling)"
ENVELOPE_HOP = 256
NSYNTH_HELD_S, NSYNTH_RELEASE_S = 3.0, 1.0
BY_CONSTRUCTION = ("The model's pitch is right by construction (its harmonic branch places the "
                   "partials at the requested pitch): these rows measure timbre.")


def envelope(wave: np.ndarray, n_samples: int, hop: int = ENVELOPE_HOP) -> np.ndarray:
    """Frame RMS of `wave` (hop `hop`), linearly interpolated to `n_samples`."""
    wave = np.asarray(wave, np.float64)
    n_frames = max(1, len(wave) // hop)
    frames = wave[:n_frames * hop].reshape(n_frames, hop)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    centres = (np.arange(n_frames) + 0.5) * hop
    return np.interp(np.arange(n_samples), centres, rms)


def sawtooth_note(pitch: int, reference: np.ndarray, sample_rate: int) -> np.ndarray:
    """A 1/k sawtooth at MIDI `pitch` under `reference`'s envelope, at `reference`'s RMS."""
    n = len(reference)
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    t = np.arange(n) / sample_rate
    harmonics = np.arange(1, max(1, int((sample_rate / 2) // f0)) + 1)
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in harmonics)
    wave = wave * envelope(reference, n)
    rms, target = float(np.sqrt(np.mean(wave ** 2))), float(np.sqrt(np.mean(np.square(reference))))
    return (wave * (target / rms if rms > 0 else 0.0)).astype(np.float32)


def neighbour_key_note(renderer, program: int, pitch: int, velocity: int, n_samples: int) -> np.ndarray:
    """FluidR3's note one key away (below if it sounds, else above), resampled to `pitch`."""
    sounding = renderer.sounding_pitches(program)
    neighbour = pitch - 1 if pitch - 1 in sounding else pitch + 1
    note = renderer.render_note(program, neighbour, velocity, NSYNTH_HELD_S, NSYNTH_RELEASE_S)
    return fit_length(detune(note, float(pitch - neighbour)), n_samples)


@dataclass
class NoteBaselines:
    """Spectral distances and judge probabilities of every row, gathered note by note."""

    judge: InstrumentJudge
    renderer: object
    sample_rate: int
    spectral: dict[str, list[float]] = field(default_factory=dict)
    probabilities: dict[str, list[np.ndarray]] = field(default_factory=dict)
    labels: list[np.ndarray] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)
    by_construction: bool = False

    def add_batch(self, records: list, recorded: torch.Tensor, generated: torch.Tensor, loss) -> None:
        """Score every row on one batch of notes (records: NoteRecords, audio (B, samples))."""
        from orchestrion.symbolic.instruments import InstrumentVocabulary  # noqa: PLC0415

        slot_of_program = {slot.program: slot.index for slot in InstrumentVocabulary.default()}
        n = recorded.shape[-1]
        rows = {MODEL_ROW: generated.float(), SILENCE_ROW: torch.zeros_like(recorded)}
        saw, neighbour = [], []
        for record, wave in zip(records, recorded.numpy()):
            saw.append(sawtooth_note(record.pitch, wave, self.sample_rate))
            neighbour.append(neighbour_key_note(self.renderer, record.instrument_number, record.pitch,
                                                max(1, record.velocity), n))
        rows[SAWTOOTH_ROW] = torch.from_numpy(np.stack(saw))
        rows[NEIGHBOUR_ROW] = torch.from_numpy(np.stack(neighbour))
        rows[REFERENCE_ROW] = recorded
        for name, audio in rows.items():
            distance = loss(audio, recorded).mean(dim=(-2, -1)).numpy()
            self.spectral.setdefault(name, []).extend(float(d) for d in distance)
        for row, record in enumerate(records):
            slot = slot_of_program.get(record.instrument_number)
            if slot is None:
                self.unknown.add(record.instrument_str)
                continue
            for name, audio in rows.items():
                probabilities = judge_chunks(audio[row].numpy(), self.sample_rate, self.judge)
                self.probabilities.setdefault(name, []).append(probabilities)
            truth = np.zeros((len(probabilities), len(self.judge.config.slots)), np.float32)
            truth[:, slot] = 1.0
            self.labels.append(truth)

    def judge_figures(self, name: str) -> JudgeScores | None:
        """The judge's figures for one row (None when no note's instrument is among its slots)."""
        if not self.labels:
            return None
        config = self.judge.config
        return judge_scores(np.concatenate(self.probabilities[name]), np.concatenate(self.labels),
                            config.slots, config.threshold)

    def to_dict(self) -> dict[str, dict[str, float | None]]:
        """Per row: mean spectral distance and judge macro accuracy (None where n/a)."""
        rows = {}
        for name, values in self.spectral.items():
            figures = self.judge_figures(name)
            rows[name] = {"spectral": float(np.mean(values)),
                          "judge_macro_accuracy": None if figures is None else figures.macro_accuracy,
                          "judge_recall": None if figures is None else figures.pooled_recall}
        return rows

    def format(self) -> str:
        n_notes = len(next(iter(self.spectral.values()), []))
        n_known = len(self.labels)
        width = max(len(name) for name in self.spectral)
        lines = [
            f"model and baselines on the same {n_notes} notes: spectral distance (lower is better) "
            f"and the judge's macro accuracy on the {n_known} notes of instruments it knows "
            f"(2 chunks of {self.judge.config.chunk_s:g} s per note, threshold {self.judge.config.threshold})",
            f"{'row'.ljust(width)}  {'spectral':>9}  {'judge macroACC':>14}  {'recall':>6}",
        ]
        for name, values in self.spectral.items():
            figures = self.judge_figures(name)
            accuracy = "n/a" if figures is None else f"{figures.macro_accuracy:.3f}"
            recall = "n/a" if figures is None else f"{figures.pooled_recall:.3f}"
            lines.append(f"{name.ljust(width)}  {float(np.mean(values)):9.4f}  {accuracy:>14}  {recall:>6}")
        lines.append("(macroACC: chunks in which the judge names the note's instrument and nothing else; "
                     "recall: chunks in which it names the instrument)")
        if self.unknown:
            lines.append("judge: n/a for " + ", ".join(sorted(self.unknown)) + " (not among its slots)")
        if self.by_construction:
            lines.append(BY_CONSTRUCTION)
        return "\n".join(lines)


def new_note_baselines(sample_rate: int, judge=None, by_construction: bool = False) -> NoteBaselines:
    """Empty baselines scored by `judge` (default the shipped one), FluidR3 at the note builds' gain."""
    from orchestrion.data.build_nsynth import DEFAULT_NOTE_GAIN  # noqa: PLC0415
    from orchestrion.data.render import FluidSynthRenderer  # noqa: PLC0415

    if not isinstance(judge, InstrumentJudge):
        judge = load_judge() if judge is None else load_judge(judge)
    renderer = FluidSynthRenderer(sample_rate=sample_rate, gain=DEFAULT_NOTE_GAIN)
    return NoteBaselines(judge, renderer, sample_rate, by_construction=by_construction)


__all__ = ["NoteBaselines", "neighbour_key_note", "new_note_baselines", "sawtooth_note"]
