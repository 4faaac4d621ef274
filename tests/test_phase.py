"""Phase reconstruction: Griffin-Lim against librosa on a FluidSynth chorale, exactness
with the true phase, batching, determinism, spectral convergence, bad input."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from orchestrion.audio import Stft, griffin_lim, istft_with_phase, spectral_convergence
from orchestrion.errors import ConfigError, NonFiniteAudioError

N_FFT, HOP = 1024, 256


@pytest.fixture(scope="module")
def chorale(chorale_16k) -> torch.Tensor:
    wave, _ = chorale_16k
    return torch.from_numpy(wave)


@pytest.fixture(scope="module")
def stft() -> Stft:
    return Stft(N_FFT, HOP)


def convergence_of(wave: torch.Tensor | np.ndarray, target: torch.Tensor, stft: Stft) -> float:
    """Spectral convergence of a waveform, measured by re-analysing it (same for everyone)."""
    estimate = stft(torch.as_tensor(wave)).abs()
    return float(spectral_convergence(target, estimate))


@pytest.mark.parametrize("n_iter", [8, 32])
def test_griffin_lim_converges_as_well_as_librosa(chorale, stft, n_iter):
    target = stft(chorale).abs()
    generator = torch.Generator().manual_seed(0)
    ours = griffin_lim(target, N_FFT, HOP, n_iter=n_iter, generator=generator)
    theirs = librosa.griffinlim(
        target.numpy(), n_iter=n_iter, n_fft=N_FFT, hop_length=HOP, random_state=0
    )
    assert ours.shape == theirs.shape == (HOP * (target.shape[-1] - 1),)
    ours_sc, theirs_sc = convergence_of(ours, target, stft), convergence_of(theirs, target, stft)
    assert ours_sc <= theirs_sc + 0.01
    assert ours_sc < 0.3  # and it did converge (random phase starts near 0.65)


def test_griffin_lim_iteration_matches_librosa_from_zero_phase(chorale, stft):
    """Same start (zero phase) and same number of steps: the same waveform up to float32
    rounding, which the magnitude projection amplifies slowly."""
    target = stft(chorale[: 2 * 16000]).abs()
    for center in (True, False):
        spec = target if center else Stft(N_FFT, HOP, center=False)(chorale[: 2 * 16000]).abs()
        ours = griffin_lim(spec, N_FFT, HOP, n_iter=4, init="zeros", center=center).numpy()
        theirs = librosa.griffinlim(
            spec.numpy(), n_iter=4, n_fft=N_FFT, hop_length=HOP, init=None, center=center
        )
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() / np.abs(theirs).max() < 1e-3


@pytest.mark.parametrize("n_fft, hop_length", [(256, 64), (128, 100)])
def test_long_signals_split_among_workers_match_librosa(chorale, n_fft, hop_length):
    """Many frames: the signal is cut into segments streamed by several threads; the seams
    must not show, whatever the worker count."""
    spec = Stft(n_fft, hop_length)(chorale).abs()
    assert spec.shape[-1] > 900  # at least two segments
    theirs = librosa.griffinlim(
        spec.numpy(), n_iter=4, n_fft=n_fft, hop_length=hop_length, init=None
    )
    threads = torch.get_num_threads()
    results = [
        griffin_lim(spec, n_fft, hop_length, n_iter=4, init="zeros", workers=w).numpy()
        for w in (1, 2, 3)
    ]
    assert torch.get_num_threads() == threads  # the temporary single-thread setting is undone
    for ours in results:
        assert np.abs(ours - theirs).max() / np.abs(theirs).max() < 1e-3
        assert np.abs(ours - results[0]).max() < 1e-6


def test_zero_iterations_with_the_true_phase_give_back_the_wave(chorale, stft):
    spec = stft(chorale)
    wave = griffin_lim(spec.abs(), N_FFT, HOP, n_iter=0, init=spec.angle(), length=len(chorale))
    assert float((wave - chorale).abs().max()) < 1e-5


def test_true_phase_is_a_fixed_point(chorale, stft):
    spec = stft(chorale[: 16000])
    wave = griffin_lim(spec.abs(), N_FFT, HOP, n_iter=10, init=spec.angle(), length=16000)
    assert convergence_of(wave, spec.abs(), stft) < 1e-4


def test_more_iterations_converge_further(chorale, stft):
    target = stft(chorale[: 2 * 16000]).abs()
    scores = [
        convergence_of(
            griffin_lim(target, N_FFT, HOP, n_iter=n, generator=torch.Generator().manual_seed(1)),
            target,
            stft,
        )
        for n in (0, 5, 40)
    ]
    assert scores[0] > scores[1] > scores[2]


def test_griffin_lim_batched_equals_per_item(chorale, stft):
    waves = torch.stack([chorale[:8000], 0.5 * chorale[8000:16000], chorale[16000:24000].flip(0)])
    target = stft(waves.reshape(3, 1, -1)).abs()  # (3, 1, freq, frames)
    for workers in (1, 2):
        batched = griffin_lim(target, N_FFT, HOP, n_iter=6, init="zeros", workers=workers)
        assert batched.shape == (3, 1, HOP * (target.shape[-1] - 1))
        for i in range(3):
            single = griffin_lim(target[i, 0], N_FFT, HOP, n_iter=6, init="zeros")
            assert float((batched[i, 0] - single).abs().max()) < 1e-5


def test_random_init_is_reproducible_with_a_generator(chorale, stft):
    target = stft(chorale[:8000]).abs()
    runs = [
        griffin_lim(target, N_FFT, HOP, n_iter=3, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    other = griffin_lim(target, N_FFT, HOP, n_iter=3, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(runs[0], other)


def test_length_window_and_dtype_options(chorale):
    stft = Stft(1000, 300, win_length=800)  # hop does not divide n_fft
    spec = stft(chorale[:9000])
    wave = griffin_lim(
        spec.abs(), 1000, 300, n_iter=0, init=spec.angle(), win_length=800, length=9000
    )
    assert wave.shape == (9000,)
    assert float((wave - chorale[:9000]).abs().max()) < 1e-5
    wave64 = griffin_lim(spec.abs().double(), 1000, 300, n_iter=2, win_length=800, length=9000)
    assert wave64.dtype == torch.float64


def test_istft_with_phase_matches_librosa(chorale, stft):
    spec = stft(chorale)
    wave = istft_with_phase(spec.abs(), spec.angle(), N_FFT, HOP, length=len(chorale))
    assert float((wave - chorale).abs().max()) < 1e-5
    reference = librosa.istft(spec.numpy(), n_fft=N_FFT, hop_length=HOP, length=len(chorale))
    assert np.abs(wave.numpy() - reference).max() / np.abs(reference).max() < 1e-4
    with pytest.raises(ConfigError):
        istft_with_phase(spec.abs(), spec.angle()[..., :-1], N_FFT, HOP)


def test_spectral_convergence_values():
    target = torch.rand(2, 3, 5, 7) + 0.1
    assert torch.allclose(spectral_convergence(target, target), torch.zeros(2, 3))
    assert torch.allclose(spectral_convergence(target, torch.zeros_like(target)), torch.ones(2, 3))
    assert torch.allclose(spectral_convergence(target, 3 * target), torch.full((2, 3), 2.0))
    silent = torch.zeros(4, 4)
    assert float(spectral_convergence(silent, silent)) == 0.0
    with pytest.raises(ConfigError):
        spectral_convergence(target, target[..., :-1])


def test_griffin_lim_rejects_bad_input(chorale, stft):
    target = stft(chorale[:8000]).abs()
    bad = target.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(NonFiniteAudioError):
        griffin_lim(bad, N_FFT, HOP)
    with pytest.raises(ConfigError, match="negative"):
        griffin_lim(target - 1.0, N_FFT, HOP)
    with pytest.raises(ConfigError, match="513 frequency bins"):
        griffin_lim(target[:-1], N_FFT, HOP)
    with pytest.raises(ConfigError):
        griffin_lim(target, N_FFT, HOP, n_iter=-1)
    with pytest.raises(ConfigError, match="frames"):
        griffin_lim(target, N_FFT, HOP, length=100)
    with pytest.raises(ConfigError):
        griffin_lim(target, N_FFT, HOP, init="pink")
    with pytest.raises(ConfigError):
        griffin_lim(target, N_FFT, HOP, init=torch.zeros(3))
    with pytest.raises(ConfigError):
        griffin_lim(target, N_FFT, HOP, workers=0)
