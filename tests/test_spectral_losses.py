"""Spectral losses: zero on identical waves, positive otherwise, differentiable in torch
(gradients reach a decoder's first layer: the seed's CQT/MFC failure), reductions, and
the multi-resolution loss tracks how close an output is to its target."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from orchestrion.errors import AudioTooShortError, ConfigError
from orchestrion.nn.spectral_losses import (
    LEVEL_NEPER_DB,
    LOG_SPECTRAL_TRANSFORMS,
    FrameLevelLoss,
    LogSpectralLoss,
    MultiResolutionSTFTLoss,
)

SAMPLE_RATE = 16_000
N_SAMPLES = 8192


def harmonic_note(f0: float, n_samples: int = N_SAMPLES, decay: float = 3.0) -> torch.Tensor:
    """(n_samples,) decaying tone with 4 harmonics at `f0` Hz."""
    time = torch.arange(n_samples, dtype=torch.float32) / SAMPLE_RATE
    wave = sum(torch.sin(2 * math.pi * k * f0 * time) / k for k in range(1, 5))
    return 0.3 * wave * torch.exp(-decay * time)


@pytest.fixture(scope="module")
def notes() -> torch.Tensor:
    """(2, N_SAMPLES): A3 and E4."""
    return torch.stack([harmonic_note(220.0), harmonic_note(329.6)])


def decoder_first_layer_grad(loss: nn.Module, target: torch.Tensor,
                             activation: nn.Module | None = None) -> torch.Tensor | None:
    """Gradient of `loss(decoder output, target)` at a fresh `small_decoder`'s first layer."""
    torch.manual_seed(0)
    decoder = small_decoder(nn.ReLU() if activation is None else activation)
    output = decoder(torch.randn(2, 8, N_SAMPLES // 256 + 3)).squeeze(1)[..., :N_SAMPLES]
    loss(output, target).backward()
    return decoder[0].weight.grad


def small_decoder(activation: nn.Module) -> nn.Sequential:
    """A SING-like decoder: Conv1d(D, C, 9) first, activation, overlap-add ConvTranspose1d."""
    return nn.Sequential(
        nn.Conv1d(8, 16, kernel_size=9, padding=4),
        activation,
        nn.ConvTranspose1d(16, 1, kernel_size=1024, stride=256, padding=768),
    )


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.ELU(alpha=10.0)], ids=["relu", "elu10"])
@pytest.mark.parametrize("transform", LOG_SPECTRAL_TRANSFORMS)
def test_gradient_reaches_decoder_first_layer(transform, activation, notes):
    grad = decoder_first_layer_grad(LogSpectralLoss(transform), notes, activation)
    assert grad is not None
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def test_multi_resolution_gradient_reaches_decoder_first_layer(notes):
    grad = decoder_first_layer_grad(MultiResolutionSTFTLoss(), notes)
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("distance", ["l1", "mse"])
@pytest.mark.parametrize("transform", LOG_SPECTRAL_TRANSFORMS)
def test_zero_for_identical_and_positive_for_different(transform, distance, notes):
    loss = LogSpectralLoss(transform, distance=distance)
    assert loss(notes, notes.clone()).item() == 0.0
    assert loss(notes, notes.flip(0)).item() > 0.0
    assert loss(notes, torch.zeros_like(notes)).item() > 0.0


def test_multi_resolution_zero_for_identical_and_positive_otherwise(notes):
    loss = MultiResolutionSTFTLoss()
    assert loss(notes, notes.clone()).item() == 0.0
    assert loss(notes, notes.flip(0)).item() > 0.0
    silence = torch.zeros_like(notes)
    assert loss(silence, silence).item() == 0.0  # no 0/0


def test_silence_gives_finite_gradients():
    """Exactly-zero bins: every log has its epsilon, every magnitude a finite slope."""
    for loss in [LogSpectralLoss(t) for t in LOG_SPECTRAL_TRANSFORMS] + [MultiResolutionSTFTLoss()]:
        output = torch.zeros(1, N_SAMPLES, requires_grad=True)
        loss(output, harmonic_note(440.0)[None]).backward()
        assert torch.isfinite(output.grad).all(), loss


def test_multi_resolution_decreases_as_output_approaches_target(notes):
    torch.manual_seed(0)
    noise = 0.3 * torch.randn_like(notes)
    loss = MultiResolutionSTFTLoss()
    values = [loss(notes + scale * noise, notes).item() for scale in (1.0, 0.5, 0.2, 0.05, 0.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("transform", LOG_SPECTRAL_TRANSFORMS)
def test_log_spectral_loss_decreases_as_output_approaches_target(transform, notes):
    torch.manual_seed(0)
    noise = 0.3 * torch.randn_like(notes)
    loss = LogSpectralLoss(transform)
    values = [loss(notes + scale * noise, notes).item() for scale in (1.0, 0.3, 0.1, 0.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_stft_loss_matches_sing_formula(notes):
    """L1 between log(1 + |STFT|^2), n_fft 1024, hop 256, Hann, no centring."""
    other = notes.flip(0)
    window = torch.hann_window(1024)

    def log_power(wave):
        spec = torch.stft(wave, 1024, 256, window=window, center=False, return_complex=True)
        return torch.log(1.0 + spec.abs() ** 2)

    expected = (log_power(notes) - log_power(other)).abs().mean()
    actual = LogSpectralLoss("stft", eps=1.0)(notes, other)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_mfcc_and_mel_features_are_what_the_docstring_says(notes):
    mfcc_loss = LogSpectralLoss("mfcc", eps=1.0)
    coefficients = mfcc_loss.transform(notes)
    torch.testing.assert_close(mfcc_loss.features(notes), torch.log(1.0 + coefficients**2))
    mel_loss = LogSpectralLoss("mel", eps=0.5)
    mel_power = mel_loss.transform(notes)
    expected = torch.log(0.5 + mel_power)
    torch.testing.assert_close(mel_loss.features(notes), expected, rtol=1e-5, atol=1e-5)


def test_reductions(notes):
    other = notes.flip(0)
    per_bin = LogSpectralLoss("stft", reduction="none")(notes, other)
    assert per_bin.shape == (2, 513, (N_SAMPLES - 1024) // 256 + 1)
    summed = LogSpectralLoss("stft", reduction="sum")(notes, other)
    torch.testing.assert_close(summed, per_bin.sum())
    torch.testing.assert_close(LogSpectralLoss("stft")(notes, other), per_bin.mean())
    per_item = MultiResolutionSTFTLoss(reduction="none")(notes, other)
    assert per_item.shape == (2,)
    torch.testing.assert_close(MultiResolutionSTFTLoss()(notes, other), per_item.mean())
    summed = MultiResolutionSTFTLoss(reduction="sum")(notes, other)
    torch.testing.assert_close(summed, per_item.sum())


def test_transforms_are_buffers_that_follow_the_module():
    loss = MultiResolutionSTFTLoss()
    assert any(name.endswith("window") for name, _ in loss.named_buffers())
    loss = LogSpectralLoss("mel").double()
    wave = harmonic_note(220.0).double()[None]
    assert loss(wave, 0.5 * wave).dtype == torch.float64
    assert any("filterbank" in name for name, _ in loss.named_buffers())


def test_bad_arguments_raise_config_errors(notes):
    with pytest.raises(ConfigError, match="transform must be one of"):
        LogSpectralLoss("wavelet")
    with pytest.raises(ConfigError, match="distance"):
        LogSpectralLoss("stft", distance="l3")
    with pytest.raises(ConfigError, match="eps"):
        LogSpectralLoss("stft", eps=0.0)
    with pytest.raises(ConfigError, match="reduction"):
        LogSpectralLoss("stft", reduction="max")
    with pytest.raises(ConfigError, match="one shape"):
        LogSpectralLoss("stft")(notes, notes[:, :-1])
    with pytest.raises(ConfigError, match="resolutions"):
        MultiResolutionSTFTLoss(resolutions=[])
    with pytest.raises(ConfigError, match="not both 0"):
        MultiResolutionSTFTLoss(sc_weight=0.0, log_weight=0.0)
    with pytest.raises(AudioTooShortError):
        MultiResolutionSTFTLoss()(notes[:, :1000], notes[:, :1000])


@pytest.mark.parametrize("gain_db", [-12.0, -3.0, 6.0])
def test_frame_level_loss_reads_a_gain_in_db_whatever_the_note(gain_db, notes):
    loss = FrameLevelLoss(1024, 256, eps=1e-9)
    scaled = notes * 10 ** (gain_db / 20)
    assert float(loss(scaled, notes)) * LEVEL_NEPER_DB == pytest.approx(abs(gain_db), rel=1e-3)
    assert float(loss(notes, notes)) == 0.0


def test_frame_level_loss_is_blind_to_phase_but_not_to_level(notes):
    time = torch.arange(N_SAMPLES, dtype=torch.float32) / SAMPLE_RATE
    sine, shifted = (torch.sin(2 * math.pi * 440.0 * time + phase) for phase in (0.0, 1.3))
    loss = FrameLevelLoss(1024, 256)
    assert float(loss(shifted, sine)) < 0.01 * float(loss(0.5 * sine, sine))
    assert float(LogSpectralLoss("stft", eps=1e-6)(0.5 * sine, sine)) > 0  # and so does the spectral loss


def test_frame_level_gradient_reaches_decoder_first_layer_and_quiet_output_is_pushed_up(notes):
    grad = decoder_first_layer_grad(FrameLevelLoss(), notes)
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    quiet = (0.1 * notes).requires_grad_()
    FrameLevelLoss()(quiet, notes).backward()
    assert float((quiet.grad * quiet.detach()).sum()) < 0  # a step down the gradient: louder


def test_frame_level_loss_bad_arguments(notes):
    with pytest.raises(ConfigError, match="frame_length"):
        FrameLevelLoss(0, 256)
    with pytest.raises(ConfigError, match="eps"):
        FrameLevelLoss(eps=0.0)
    with pytest.raises(ConfigError, match="at least 1024 samples"):
        FrameLevelLoss()(notes[..., :500], notes[..., :500])
    with pytest.raises(ConfigError, match="one shape"):
        FrameLevelLoss()(notes, notes[0])
