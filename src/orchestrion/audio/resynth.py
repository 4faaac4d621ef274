"""Whole-signal conveniences on top of the transforms: dB pictures and magnitude-only resynthesis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from orchestrion.audio.phase import griffin_lim, spectral_convergence
from orchestrion.audio.spectral import Stft


@dataclass(frozen=True)
class Resynthesis:
    """Audio rebuilt from an STFT magnitude, and how close its magnitude came to the target."""

    wave: np.ndarray
    spectral_convergence: float


def power_db(wave: np.ndarray, n_fft: int = 1024, hop_length: int = 256) -> np.ndarray:
    """Power spectrogram (freq, frames) in dB relative to its own peak."""
    spec = Stft(n_fft, hop_length)(torch.from_numpy(np.asarray(wave, dtype=np.float32)))
    power = spec.abs().square().numpy()
    return 10.0 * np.log10(np.maximum(power, 1e-12) / max(float(power.max()), 1e-12))


@torch.no_grad()
def resynthesize(
    wave: np.ndarray, n_fft: int = 1024, hop_length: int = 256, n_iter: int = 32, seed: int = 0
) -> Resynthesis:
    """Drop the phase of `wave` (samples,) and rebuild it with Fast Griffin-Lim."""
    stft = Stft(n_fft, hop_length)
    magnitude = stft(torch.from_numpy(np.asarray(wave, dtype=np.float32))).abs()
    generator = torch.Generator().manual_seed(seed)
    rebuilt = griffin_lim(magnitude, n_fft, hop_length, n_iter=n_iter, length=len(wave), generator=generator)
    convergence = spectral_convergence(magnitude, stft(rebuilt).abs())
    return Resynthesis(rebuilt.numpy(), float(convergence))
