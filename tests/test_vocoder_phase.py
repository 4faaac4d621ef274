"""The phase-vocoder start of Griffin-Lim: a steady partial's phase track, faster
convergence on a FluidSynth chorale, shapes and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from orchestrion.audio import Stft, griffin_lim, spectral_convergence
from orchestrion.audio.vocoder_phase import vocoder_phase
from orchestrion.errors import ConfigError

N_FFT, HOP, SR = 1024, 256, 16000


def wrapped(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


@pytest.mark.parametrize("frequency", [440.3, 1234.5, 3000.0])
def test_a_steady_partial_gets_its_true_phase_up_to_one_offset(frequency):
    t = np.arange(2 * SR) / SR
    spectrum = Stft(N_FFT, HOP)(torch.from_numpy(np.cos(2 * np.pi * frequency * t + 0.7).astype(np.float32)))
    magnitude = spectrum.abs()
    error = wrapped(spectrum.angle() - vocoder_phase(magnitude, N_FFT, HOP))
    frames = range(4, magnitude.shape[1] - 4)  # away from the signal's ends
    lobe = magnitude > 0.3 * magnitude.max(0, keepdim=True).values
    for n in frames:  # locked: every bin of the main lobe is off by the same angle
        in_lobe = error[lobe[:, n], n]
        assert len(in_lobe) >= 3
        assert float(wrapped(in_lobe - in_lobe[0]).abs().max()) < 0.01, n
    peak = magnitude.argmax(0)
    track = error[peak, torch.arange(magnitude.shape[1])]
    drift = wrapped(track[5:-4] - track[4:-5]).abs()
    # the peak's frequency is refined between bins: the centre bin's frequency (0.18 bin
    # off at 440.3 Hz) would drift 0.28 rad per hop
    assert float(drift.max()) < 0.05


def test_griffin_lim_from_the_vocoder_phase_converges_in_fewer_iterations(chorale_16k):
    wave, _ = chorale_16k
    stft = Stft(N_FFT, HOP)
    target = stft(torch.from_numpy(wave)).abs()

    def convergence(init: str, n_iter: int) -> float:
        rebuilt = griffin_lim(
            target, N_FFT, HOP, n_iter=n_iter, init=init, generator=torch.Generator().manual_seed(0)
        )
        return float(spectral_convergence(target, stft(rebuilt).abs()))

    assert convergence("vocoder", 0) < convergence("random", 8)
    assert convergence("vocoder", 8) < 0.5 * convergence("random", 8)
    assert convergence("vocoder", 32) < 0.75 * convergence("random", 32)


def test_vocoder_phase_keeps_the_shape_and_treats_items_alone(chorale_16k):
    wave, _ = chorale_16k
    magnitude = Stft(N_FFT, HOP)(torch.from_numpy(wave[: 3 * SR])).abs()
    stacked = torch.stack([magnitude, 0.5 * magnitude.flip(-1)]).reshape(2, 1, *magnitude.shape)
    phases = vocoder_phase(stacked, N_FFT, HOP)
    assert phases.shape == stacked.shape
    for i in range(2):
        alone = vocoder_phase(stacked[i, 0], N_FFT, HOP)
        assert float((phases[i, 0] - alone).abs().max()) < 1e-4
    assert torch.isfinite(phases).all()


def test_silence_gets_a_finite_phase():
    assert torch.isfinite(vocoder_phase(torch.zeros(N_FFT // 2 + 1, 300), N_FFT, HOP)).all()


def test_vocoder_phase_refuses_a_magnitude_of_another_fft_size():
    with pytest.raises(ConfigError, match="513 frequency bins"):
        vocoder_phase(torch.ones(257, 10), N_FFT, HOP)
