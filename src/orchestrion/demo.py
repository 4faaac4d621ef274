"""The main job until a trained render model ships: FluidSynth render -> spectrogram -> Griffin-Lim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from orchestrion.audio.io import save_audio
from orchestrion.audio.resynth import power_db, resynthesize
from orchestrion.data.render import FluidSynthRenderer
from orchestrion.examples import example_midi_path
from orchestrion.plots import save_spectrogram_png
from orchestrion.symbolic.midi import read_midi

N_FFT = 1024
HOP_LENGTH = 256


def run_demo(
    midi_path: Path | None,
    output_dir: Path,
    sample_rate: int = 16000,
    n_iter: int = 32,
    soundfont: Path | None = None,
) -> Iterator[str]:
    """Render `midi_path` (default: the bundled chorale); yield one line per file written."""
    midi_path = Path(midi_path) if midi_path is not None else example_midi_path()
    score = read_midi(midi_path)
    with FluidSynthRenderer(soundfont, sample_rate=sample_rate) as renderer:
        wave = renderer.render_score(score)
    peak = float(abs(wave).max())
    if peak > 0:
        wave = wave * (0.9 / peak)
    stem = midi_path.stem
    reference = save_audio(output_dir / f"{stem}.fluidsynth.wav", wave, sample_rate)
    yield f"FluidSynth render ({renderer.soundfont.name}): {reference} ({len(wave) / sample_rate:.1f} s)"
    picture = save_spectrogram_png(output_dir / f"{stem}.spectrogram.png", power_db(wave, N_FFT, HOP_LENGTH),
                                   sample_rate, HOP_LENGTH, title=f"{stem} (FluidSynth, {sample_rate} Hz)")
    yield f"spectrogram: {picture}"
    result = resynthesize(wave, N_FFT, HOP_LENGTH, n_iter)
    rebuilt = save_audio(output_dir / f"{stem}.resynth.wav", result.wave, sample_rate)
    yield (f"Griffin-Lim resynthesis from the magnitude alone: {rebuilt} "
           f"(spectral convergence {result.spectral_convergence:.4f} after {n_iter} iterations)")
