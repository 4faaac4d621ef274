"""Spectral transforms: librosa parity, exact inverses, batching, gradients, bad input."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrion.audio import (
    COMPRESSIONS,
    Cqt,
    Decibel,
    LogEpsPower,
    LogMagnitude,
    LogPower,
    MelScale,
    MelSpectrogram,
    Mfcc,
    SpectrogramConfig,
    Stft,
    make_compression,
)
from orchestrion.errors import AudioTooShortError, ConfigError, NonFiniteAudioError


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """max |ours - reference| / max |reference| (element-wise relative error is meaningless
    for near-zero bins)."""
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="module")
def chorale(chorale_16k) -> np.ndarray:
    wave, sample_rate = chorale_16k
    assert sample_rate == 16000
    return wave[: 3 * sample_rate]


def harmonic_tone(f0: float, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.3 * tone).astype(np.float32)


# --------------------------------------------------------------------------- STFT
@pytest.mark.parametrize(
    "n_fft, hop_length, win_length, center",
    [
        (1024, 256, None, True),
        (512, 128, 400, True),
        (1024, 512, None, False),
        (2048, 256, 1536, False),
    ],
)
def test_stft_matches_librosa(chorale, n_fft, hop_length, win_length, center):
    stft = Stft(n_fft, hop_length, win_length, center=center)
    ours = stft(torch.from_numpy(chorale)).numpy()
    reference = librosa.stft(
        chorale, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=center
    )
    assert ours.shape == reference.shape
    assert stft.n_frames(len(chorale)) == reference.shape[-1]
    assert relative_error(ours, reference) < 1e-4


@pytest.mark.parametrize("center", [True, False])
def test_inverse_stft_matches_librosa(chorale, center):
    spec = librosa.stft(chorale, n_fft=1024, hop_length=256, center=center)
    stft = Stft(1024, 256, center=center)
    ours = stft.inverse(torch.from_numpy(spec)).numpy()
    reference = librosa.istft(spec, n_fft=1024, hop_length=256, center=center)
    assert ours.shape == reference.shape
    # without centring, the outermost samples are divided by a window sum near 1e-10 and
    # both results there are float32 noise; compare where the windows overlap
    inner = slice(0, None) if center else slice(1024, -1024)
    assert relative_error(ours[inner], reference[inner]) < 1e-4


@pytest.mark.parametrize(
    "n_fft, hop_length, win_length", [(1024, 256, None), (512, 128, 300), (1000, 300, None)]
)
def test_stft_round_trip(chorale, n_fft, hop_length, win_length):
    stft = Stft(n_fft, hop_length, win_length)
    wave = torch.from_numpy(chorale)
    rebuilt = stft.inverse(stft(wave), length=len(chorale))
    assert rebuilt.shape == wave.shape
    assert float((rebuilt - wave).abs().max()) < 1e-5


def test_round_trip_without_centering_is_exact_where_windows_overlap(chorale):
    stft = Stft(1024, 256, center=False)
    wave = torch.from_numpy(chorale)
    rebuilt = stft.inverse(stft(wave))
    # the first/last samples are only covered by the Hann window's zero
    inner = slice(1024, rebuilt.shape[-1] - 1024)
    assert float((rebuilt[inner] - wave[: rebuilt.shape[-1]][inner]).abs().max()) < 1e-5


def test_stft_batched_equals_per_item():
    torch.manual_seed(0)
    waves = torch.randn(2, 3, 4000)
    stft = Stft(512, 128)
    batched = stft(waves)
    assert batched.shape == (2, 3, 257, stft.n_frames(4000))
    for i in range(2):
        for j in range(3):
            assert torch.allclose(batched[i, j], stft(waves[i, j]), atol=1e-5)
    back = stft.inverse(batched, length=4000)
    assert float((back - waves).abs().max()) < 1e-5


def test_stft_window_is_a_buffer_and_follows_dtype():
    stft = Stft(256, 64)
    assert "window" in dict(stft.named_buffers())
    assert "window" in stft.state_dict()
    stft64 = stft.to(torch.float64)
    wave = torch.randn(1000, dtype=torch.float64)
    spec = stft64(wave)
    assert spec.dtype == torch.complex128
    assert float((stft64.inverse(spec, length=1000) - wave).abs().max()) < 1e-12


def test_stft_rejects_bad_input():
    stft = Stft(1024, 256)
    with pytest.raises(AudioTooShortError, match=r"500 samples.*1024 samples"):
        stft(torch.zeros(500))
    with pytest.raises(AudioTooShortError):
        Stft(1024, 256, center=False)(torch.zeros(1023))
    wave = torch.zeros(4000)
    wave[100] = float("nan")
    with pytest.raises(NonFiniteAudioError, match="1 NaN"):
        stft(wave)
    with pytest.raises(ConfigError):
        Stft(1024, 0)
    with pytest.raises(ConfigError):
        Stft(1024, 256, win_length=2048)
    with pytest.raises(ConfigError):
        Stft(1024, 256, window="no-such-window")
    with pytest.raises(ConfigError):
        stft.inverse(torch.zeros(100, 10, dtype=torch.complex64))
    with pytest.raises(ConfigError):
        stft.inverse(torch.zeros(513, 10))  # magnitudes, not complex


# --------------------------------------------------------------------------- compressions
magnitudes = st.lists(
    st.floats(float(np.float32(1e-4)), 1e3, allow_nan=False, width=32), min_size=1, max_size=64
)


@settings(max_examples=60, deadline=None)
@given(values=magnitudes)
@pytest.mark.parametrize(
    "compression", [LogPower(), LogMagnitude(), LogEpsPower(1.0), LogEpsPower(1e-3)]
)
def test_compression_inverse_is_exact(compression, values):
    magnitude = torch.tensor(values, dtype=torch.float32).reshape(1, -1, 1)
    rebuilt = compression.inverse(compression(magnitude))
    tolerance = 1e-5 * torch.clamp(magnitude, min=1.0)  # absolute for small, relative for large
    assert torch.all((rebuilt - magnitude).abs() <= tolerance)


def test_compressions_match_their_formulas_and_take_complex_input():
    spec = torch.polar(torch.tensor([[0.0, 0.5, 3.0]]), torch.tensor([[0.3, -1.0, 2.0]]))
    magnitude = spec.abs()
    assert torch.allclose(LogPower()(spec), torch.log(1 + magnitude**2))
    assert torch.allclose(LogMagnitude()(spec), torch.log(1 + magnitude))
    assert torch.allclose(LogEpsPower(0.1)(spec), torch.log(0.1 + magnitude**2))
    # inverses clamp impossible (negative) compressed values to silence, never NaN
    assert torch.equal(LogPower().inverse(torch.tensor([-0.5])), torch.tensor([0.0]))
    assert torch.equal(LogEpsPower(1.0).inverse(torch.tensor([-0.5])), torch.tensor([0.0]))
    assert torch.equal(LogMagnitude().inverse(torch.tensor([-0.5])), torch.tensor([0.0]))


@settings(max_examples=40, deadline=None)
@given(values=magnitudes)
def test_decibel_inverse_is_exact_with_per_item_reference(values):
    magnitude = torch.tensor(values, dtype=torch.float32).reshape(1, -1, 1).expand(2, -1, 3).clone()
    magnitude[1] *= 10.0
    decibel = Decibel()
    db, reference = decibel(magnitude)
    assert reference.shape == (2, 1, 1)
    assert torch.allclose(reference.flatten(), magnitude.amax(dim=(-2, -1)))
    assert float(db.max()) == pytest.approx(0.0, abs=1e-5)  # each item peaks at 0 dB
    rebuilt = decibel.inverse(db, reference)
    assert torch.all((rebuilt - magnitude).abs() <= 1e-5 * torch.clamp(magnitude, min=1.0))


def test_decibel_top_db_floor_and_fixed_reference():
    magnitude = torch.tensor([[[1.0, 1e-1, 1e-3, 1e-6]]])
    db, reference = Decibel(top_db=40.0)(magnitude)
    assert torch.allclose(db, torch.tensor([[[0.0, -20.0, -40.0, -40.0]]]), atol=1e-4)
    assert torch.allclose(reference, torch.tensor([[[1.0]]]))
    db, reference = Decibel(reference=0.1)(magnitude)
    assert float(db[0, 0, 0]) == pytest.approx(20.0, abs=1e-4)
    rebuilt = Decibel(reference=0.1).inverse(db)
    assert torch.allclose(rebuilt[0, 0, :3], magnitude[0, 0, :3], rtol=1e-5)
    np_db = librosa.amplitude_to_db(magnitude.numpy(), ref=np.max, top_db=40.0)
    assert np.allclose(Decibel(top_db=40.0)(magnitude)[0].numpy(), np_db, atol=1e-4)
    with pytest.raises(ConfigError):
        Decibel().inverse(db)  # no reference to undo


def test_compression_registry_and_config():
    assert set(COMPRESSIONS) == {"none", "log_power", "log_magnitude", "log_eps_power", "decibel"}
    assert isinstance(make_compression("log_eps_power", eps=0.5), LogEpsPower)
    with pytest.raises(ConfigError, match="unknown spectrogram compression"):
        make_compression("cube_root")
    config = SpectrogramConfig(
        sample_rate=16000, n_fft=1024, hop_length=256, compression="log_magnitude"
    )
    assert config.n_freq == 513 and config.frame_rate_hz == 62.5
    assert isinstance(config.compressor(), LogMagnitude)
    assert config.stft().n_fft == 1024
    with pytest.raises(ConfigError):
        SpectrogramConfig(sample_rate=16000, n_fft=1024, hop_length=256, compression="cube_root")
    with pytest.raises(ConfigError):
        SpectrogramConfig(sample_rate=16000, n_fft=1024, hop_length=0)


# --------------------------------------------------------------------------- mel
@pytest.mark.parametrize(
    "sample_rate, n_fft, n_mels, fmin, fmax, htk, norm",
    [(16000, 1024, 128, 0.0, None, False, "slaney"), (22050, 2048, 80, 50.0, 8000.0, True, None),
     (16000, 512, 40, 20.0, 7600.0, False, 2.0)],
)
def test_mel_filterbank_matches_librosa(sample_rate, n_fft, n_mels, fmin, fmax, htk, norm):
    mel = MelScale(sample_rate, n_fft, n_mels, fmin, fmax, htk, norm)
    reference = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm
    )
    assert {"filterbank", "pseudo_inverse"} <= set(dict(mel.named_buffers()))
    assert mel.filterbank.shape == reference.shape
    assert relative_error(mel.filterbank.numpy(), reference) < 1e-4


def test_mel_spectrogram_matches_librosa(chorale):
    mel = MelSpectrogram(16000, n_fft=1024, hop_length=256, n_mels=80)
    ours = mel(torch.from_numpy(chorale)).numpy()
    reference = librosa.feature.melspectrogram(
        y=chorale, sr=16000, n_fft=1024, hop_length=256, n_mels=80
    )
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) < 1e-4


def test_mel_pseudo_inverse_is_a_least_squares_inverse(chorale):
    mel = MelScale(16000, 1024, 128)
    power = Stft(1024, 256)(torch.from_numpy(chorale)).abs().square()
    bands = mel(power)
    # the pseudo-inverse is a right inverse of the (full row rank) filterbank ...
    identity = mel.filterbank.double() @ mel.pseudo_inverse.double()
    assert float((identity - torch.eye(128, dtype=torch.float64)).abs().max()) < 1e-5
    # ... and inverse() is that least-squares estimate with negative power clamped to 0
    linear = mel.inverse(bands)
    assert linear.shape == power.shape and float(linear.min()) >= 0.0
    assert torch.allclose(linear, (mel.pseudo_inverse @ bands).clamp(min=0.0))
    assert float((mel(linear) - bands).norm() / bands.norm()) < 0.2
    with pytest.raises(ConfigError, match="magnitude or power"):
        mel(torch.zeros(513, 4, dtype=torch.complex64))
    with pytest.raises(ConfigError):
        mel(torch.zeros(257, 4))
    with pytest.raises(ConfigError):
        MelScale(16000, 1024, 80, fmax=9000.0)


# --------------------------------------------------------------------------- MFCC
def test_mfcc_matches_librosa(chorale):
    kwargs = dict(n_mfcc=20, n_mels=64, n_fft=1024, hop_length=256)
    ours = Mfcc(16000, **kwargs)(torch.from_numpy(chorale)).numpy()
    reference = librosa.feature.mfcc(y=chorale, sr=16000, **kwargs)
    assert ours.shape == reference.shape
    # Stated tolerance: 0.01 (MFCCs of this clip span about +-400): only float32 rounding
    # of the log-mel differs; the DCT is the same orthonormal DCT-II.
    assert float(np.abs(ours - reference).max()) < 1e-2
    liftered = Mfcc(16000, lifter=22.0, **kwargs)(torch.from_numpy(chorale)).numpy()
    reference_liftered = librosa.feature.mfcc(y=chorale, sr=16000, lifter=22.0, **kwargs)
    assert float(np.abs(liftered - reference_liftered).max()) < 5e-2


def test_mfcc_batched_equals_per_item(chorale):
    mfcc = Mfcc(16000, n_mfcc=13, n_mels=40, n_fft=512, hop_length=256)
    waves = torch.from_numpy(np.stack([chorale[:16000], 0.5 * chorale[16000:32000]]))
    batched = mfcc(waves)
    for i in range(2):
        assert torch.allclose(batched[i], mfcc(waves[i]), atol=1e-3)


# --------------------------------------------------------------------------- gradients
def _descent_lowers_loss(loss_fn, wave: torch.Tensor) -> None:
    """Gradients reach the wave, are finite and non-zero, and point downhill."""
    wave = wave.clone().requires_grad_(True)
    loss = loss_fn(wave)
    loss.backward()
    grad = wave.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert float(grad.abs().max()) > 0
    with torch.no_grad():
        step = 1e-3 * float(wave.abs().max()) / float(grad.abs().max())
        assert float(loss_fn(wave - step * grad)) < float(loss)


def test_cqt_loss_gradient_reaches_the_wave():
    cqt = Cqt(16000, hop_length=256, fmin=65.4, n_bins=60)
    target = LogEpsPower(1.0)(cqt(torch.from_numpy(harmonic_tone(220.0, 1.0))))
    wave = torch.from_numpy(harmonic_tone(233.1, 1.0))
    wave[:2000] = 0.0  # exact silence must not produce NaN gradients
    _descent_lowers_loss(lambda x: (LogEpsPower(1.0)(cqt(x)) - target).abs().mean(), wave)


def test_mfcc_loss_gradient_reaches_the_wave():
    mfcc = Mfcc(16000, n_mfcc=20, n_mels=64, n_fft=1024, hop_length=256)
    target = mfcc(torch.from_numpy(harmonic_tone(220.0, 1.0)))
    wave = torch.from_numpy(harmonic_tone(233.1, 1.0))
    _descent_lowers_loss(lambda x: (mfcc(x) - target).abs().mean(), wave)


# --------------------------------------------------------------------------- CQT
def test_cqt_peaks_at_the_note_and_tracks_librosa(chorale):
    cqt = Cqt(16000, hop_length=256, fmin=32.70, n_bins=84)
    buffers = set(dict(cqt.named_buffers()))
    assert {"filters.cqt_kernels_real", "filters.cqt_kernels_imag"} <= buffers
    tone = torch.from_numpy(np.sin(2 * np.pi * 440.0 * np.arange(16000) / 16000).astype(np.float32))
    spectrum = cqt(tone).abs().mean(dim=-1)
    assert int(spectrum.argmax()) == 45  # A4 is 45 semitones above C1
    ours = cqt(torch.from_numpy(chorale)).abs().numpy()
    reference = np.abs(librosa.cqt(chorale, sr=16000, hop_length=256, fmin=32.70, n_bins=84))
    assert ours.shape == reference.shape
    inner = slice(32, -32)  # librosa's multi-rate edges differ
    ours, reference = ours[:, inner], reference[:, inner]
    error = np.linalg.norm(ours - reference) / np.linalg.norm(reference)
    assert error < 0.05


def test_cqt_batched_and_bad_input():
    cqt = Cqt(16000, hop_length=256, fmin=65.4, n_bins=48)
    waves = torch.randn(2, 2, 8000)
    batched = cqt(waves)
    assert batched.is_complex() and batched.shape[:-1] == (2, 2, 48)
    assert torch.allclose(batched[1, 0], cqt(waves[1, 0]), atol=1e-4)
    with pytest.raises(AudioTooShortError):
        cqt(torch.zeros(100))
    with pytest.raises(NonFiniteAudioError):
        cqt(torch.full((8000,), float("inf")))
    with pytest.raises(ConfigError, match="half the sample rate"):
        Cqt(16000, fmin=32.7, n_bins=120)
