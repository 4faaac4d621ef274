"""Audio-domain quality of a render against a reference render of the same score.

The render system's quality protocol (the render issue; reference script
``shared/tools/compare_audio.py``, which this module re-implements on the project's own
STFT and MS-SSIM and is cross-checked against in the tests):

1. Both signals are mixed down to mono and resampled to 16 kHz (soxr, high quality).
2. Both are trimmed to the shorter one's length.
3. The candidate is scaled to the reference's RMS (loudness matching), so a render that
   is right but quieter or louder is not penalised. A silent candidate stays silent.
4. **MS-SSIM** on "dB images": power STFT (n_fft 1024, hop 256, Hann, centred) in dB
   relative to the *reference's* peak bin power, clipped at -80 dB and mapped linearly
   to [0, 1] (0 = -80 dB or below, 1 = the reference's peak). 5 scales, Gaussian window
   of 11 taps with sigma 1.5, K1 0.01, K2 0.03, weights (0.0448, 0.2856, 0.3001, 0.2363,
   0.1333) -- :class:`orchestrion.nn.msssim.MSSSIM`. 1 = identical, higher is better.
   Both images are first cropped to multiples of 16 bins and frames (the Nyquist bin
   and at most 15 trailing frames go), so no scale meets an odd size, where MS-SSIM
   implementations disagree; see
   :func:`orchestrion.metrics.spectrogram.crop_to_scale_grid`.
5. **MR-STFT distance**: the mean over n_fft 512, 1024, 2048 (hop n_fft / 4) of the
   spectral convergence ``||A - B||_F / ||A||_F`` plus the mean absolute log-magnitude
   difference ``mean |ln(|A| + 1e-5) - ln(|B| + 1e-5)|``; A = reference, B = candidate
   magnitudes. 0 = identical, lower is better.
6. **LSD** (log-spectral distance, dB), the project's addition; see
   :func:`log_spectral_distance`. 0 = identical, lower is better.

Calibration (render issue, FluidR3 reference, 16 kHz): another real SoundFont
(MuseScore General) scores MS-SSIM ~0.80 / MR-STFT ~1.08; Griffin-Lim (32 iterations)
from the true magnitude ~0.996 / 0.38; sine waves from the same MIDI ~0.19 / 5.9.

Spectra are computed in float64 torch on the CPU (MS-SSIM of the [0, 1] images in
float32); arrays at the edges are numpy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from orchestrion.audio.io import load_audio, resample, to_mono
from orchestrion.audio.phase import spectral_convergence
from orchestrion.audio.spectral import Stft
from orchestrion.errors import AudioTooShortError, ConfigError, NonFiniteAudioError
from orchestrion.metrics.spectrogram import spectrogram_ms_ssim

__all__ = [
    "PROTOCOL_SAMPLE_RATE",
    "DB_IMAGE_N_FFT",
    "DB_IMAGE_HOP_LENGTH",
    "DB_IMAGE_RANGE_DB",
    "MR_STFT_SIZES",
    "MR_STFT_LOG_EPS",
    "AudioComparison",
    "ProtocolPair",
    "power_db_image",
    "peak_db_image",
    "protocol_pair",
    "power_spectrogram",
    "db_image",
    "mr_stft_distance",
    "log_spectral_distance",
    "compare_audio",
    "compare_pair",
    "compare_files",
]

PROTOCOL_SAMPLE_RATE = 16000
"""Rate (Hz) both signals are resampled to before any comparison."""
DB_IMAGE_N_FFT = 1024
"""FFT size (samples) of the dB images and of the LSD."""
DB_IMAGE_HOP_LENGTH = 256
"""Hop (samples) of the dB images and of the LSD."""
DB_IMAGE_RANGE_DB = 80.0
"""Dynamic range (dB below the reference's peak) kept in the dB images and the LSD floor."""
MR_STFT_SIZES: tuple[int, ...] = (512, 1024, 2048)
"""FFT sizes (samples) of the multi-resolution STFT distance; hop is n_fft // 4."""
MR_STFT_LOG_EPS = 1e-5
"""Added to magnitudes before the log in the MR-STFT distance (absolute, linear units)."""

_DTYPE = torch.float64


@functools.lru_cache(maxsize=16)
def _stft(n_fft: int, hop_length: int) -> Stft:
    """One Hann, centred STFT module per (n_fft, hop); inputs are checked by `_as_wave`."""
    return Stft(n_fft=n_fft, hop_length=hop_length, check_finite=False)


def _as_wave(wave: Tensor | np.ndarray, what: str) -> Tensor:
    """`wave` as a float64 tensor (..., samples) with at least one sample, all finite."""
    tensor = torch.as_tensor(np.asarray(wave) if not isinstance(wave, Tensor) else wave)
    tensor = tensor.detach().to(device="cpu", dtype=_DTYPE)
    if tensor.ndim == 0 or tensor.shape[-1] == 0:
        raise ConfigError(f"the {what} audio is empty: expected shape (..., samples)")
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteAudioError(f"the {what} audio holds NaN or infinite samples")
    return tensor


def _check_same_shape(reference: Tensor, candidate: Tensor) -> None:
    if reference.shape != candidate.shape:
        raise ConfigError(
            "reference and candidate audio must have the same shape (..., samples) -- "
            f"trim them to one length first (compare_audio does); got "
            f"{tuple(reference.shape)} and {tuple(candidate.shape)}"
        )


def power_spectrogram(
    wave: Tensor | np.ndarray,
    n_fft: int = DB_IMAGE_N_FFT,
    hop_length: int = DB_IMAGE_HOP_LENGTH,
) -> Tensor:
    """Power STFT ``|X|^2`` (Hann, centred, librosa conventions via :class:`Stft`).

    Parameters
    ----------
    wave : array or tensor, shape (..., samples)
        Audio, at least `n_fft` samples long.
    n_fft, hop_length : int
        FFT size and hop, in samples.

    Returns
    -------
    Tensor, float64, shape (..., n_fft // 2 + 1, frames)
        Power in squared linear amplitude units (not normalised by the window).
    """
    spec = _stft(n_fft, hop_length)(_as_wave(wave, "input"))
    return spec.real.square() + spec.imag.square()


def _peak(power: Tensor) -> Tensor:
    """Largest bin of each item of a power spectrogram (..., freq, frames) -> (...)."""
    return power.flatten(-2).amax(dim=-1)


def db_image(
    wave: Tensor | np.ndarray,
    reference_peak: float | Tensor | None = None,
    range_db: float = DB_IMAGE_RANGE_DB,
) -> Tensor:
    """The protocol's dB image of a signal: power STFT in dB re a peak, clipped, in [0, 1].

    ``image = clip((10 log10(P / reference_peak) + range_db) / range_db, 0, 1)`` with ``P``
    the power STFT (n_fft 1024, hop 256, Hann, centred). 1 is the reference's peak power,
    0 is `range_db` dB below it or quieter (silent bins included).

    Parameters
    ----------
    wave : array or tensor, shape (..., samples)
        Audio at 16 kHz (the protocol's rate), at least 1024 samples.
    reference_peak : float or tensor broadcastable to (...), optional
        The reference signal's largest bin of ``|X|^2`` (same STFT), squared linear
        amplitude; compare two signals against the *same* peak. Default: `wave`'s own
        peak.
    range_db : float
        Dynamic range kept, dB (default 80).

    Returns
    -------
    Tensor, float64, shape (..., 513, frames), values in [0, 1].

    Raises
    ------
    ConfigError
        `reference_peak` is not positive (a silent reference has no level to refer to),
        or `range_db` is not positive.
    """
    if not range_db > 0:
        raise ConfigError(f"the dB image's range must be a positive number of dB, got {range_db!r}")
    power = power_spectrogram(wave)
    peak = _peak(power) if reference_peak is None else torch.as_tensor(reference_peak, dtype=_DTYPE)
    if not bool((peak > 0).all()):
        raise ConfigError(
            "the reference peak power must be positive; the reference audio is silent, so "
            "there is no level to measure the dB image against"
        )
    return power_db_image(power, peak[..., None, None] if peak.ndim else peak, range_db)


def power_db_image(power: Tensor, peak: float | Tensor, range_db: float = DB_IMAGE_RANGE_DB) -> Tensor:
    """The dB image of a power spectrogram: ``clip((10 log10(power / peak) + range_db) /
    range_db, 0, 1)`` (see :func:`db_image`, which makes `power` from a signal)."""
    # Relative floor well below the clip, so log10 never sees 0 (the result is unaffected).
    ratio = (power / peak).clamp(min=10.0 ** (-(range_db + 20.0) / 10.0))
    return ((10.0 * torch.log10(ratio) + range_db) / range_db).clamp(0.0, 1.0)


def peak_db_image(power: Tensor, range_db: float = DB_IMAGE_RANGE_DB) -> Tensor:
    """:func:`power_db_image` of a batch of power images (..., F, T), each item against its own
    loudest cell (so the same image at any level gives the same values)."""
    peak = power.amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(power.dtype).tiny)
    return power_db_image(power, peak, range_db)


def mr_stft_distance(
    reference: Tensor | np.ndarray,
    candidate: Tensor | np.ndarray,
    n_ffts: tuple[int, ...] = MR_STFT_SIZES,
    log_eps: float = MR_STFT_LOG_EPS,
) -> Tensor:
    """Multi-resolution STFT distance of the protocol (lower is better, 0 = identical).

    For each n_fft in `n_ffts` (hop n_fft // 4, Hann, centred), with magnitudes ``A`` of
    the reference and ``B`` of the candidate::

        SC  = ||A - B||_F / ||A||_F                       (spectral convergence)
        LOG = mean over bins and frames of |ln(A + eps) - ln(B + eps)|

    and the distance is the mean of ``SC + LOG`` over the resolutions. Not symmetric
    (SC is normalised by the reference). `eps` is absolute, so the value depends on the
    level: match loudness first (:func:`compare_audio` does).

    Parameters
    ----------
    reference, candidate : array or tensor, shape (..., samples), same shape
        Audio at 16 kHz, at least ``max(n_ffts)`` samples.
    n_ffts : tuple of int
        FFT sizes in samples (default 512, 1024, 2048).
    log_eps : float
        Magnitude floor inside the log, linear amplitude (default 1e-5).

    Returns
    -------
    Tensor, float64, shape (...)
    """
    if len(n_ffts) == 0:
        raise ConfigError("the MR-STFT distance needs at least one FFT size")
    if not log_eps > 0:
        raise ConfigError(f"the MR-STFT log floor must be positive, got {log_eps!r}")
    ref, cand = _as_wave(reference, "reference"), _as_wave(candidate, "candidate")
    _check_same_shape(ref, cand)
    total = torch.zeros(ref.shape[:-1], dtype=_DTYPE)
    for n_fft in n_ffts:
        stft = _stft(int(n_fft), int(n_fft) // 4)
        ref_mag, cand_mag = stft(ref).abs(), stft(cand).abs()
        log_difference = (torch.log(ref_mag + log_eps) - torch.log(cand_mag + log_eps)).abs()
        total = total + spectral_convergence(ref_mag, cand_mag) + log_difference.mean(dim=(-2, -1))
    return total / len(n_ffts)


def log_spectral_distance(
    reference: Tensor | np.ndarray,
    candidate: Tensor | np.ndarray,
    floor_db: float = -DB_IMAGE_RANGE_DB,
) -> Tensor:
    """Log-spectral distance (LSD) in dB (lower is better, 0 = identical).

    With ``P_r``, ``P_c`` the power STFTs (n_fft 1024, hop 256, Hann, centred) and a floor
    ``F = peak(P_r) * 10 ** (floor_db / 10)`` (default 80 dB below the reference's peak
    bin, the dB images' range)::

        D[f, t] = 10 log10(max(P_r[f, t], F)) - 10 log10(max(P_c[f, t], F))    (dB)
        LSD     = mean over frames t of sqrt(mean over bins f of D[f, t] ** 2)

    i.e. the mean over frames of the RMS over bins of the dB difference. The floor keeps
    inaudibly quiet bins (and digital silence) from dominating; a bin below it in both
    signals contributes 0.

    Parameters
    ----------
    reference, candidate : array or tensor, shape (..., samples), same shape
        Audio at 16 kHz, at least 1024 samples, loudness-matched if level should not count.
    floor_db : float
        Floor relative to the reference's peak power, dB, negative (default -80).

    Returns
    -------
    Tensor, float64, shape (...), in dB.

    Raises
    ------
    ConfigError
        Shapes differ, `floor_db` is not negative, or the reference is silent.
    """
    if not floor_db < 0:
        raise ConfigError(
            f"the LSD floor is dB below the reference's peak, so negative; got {floor_db!r}"
        )
    ref, cand = _as_wave(reference, "reference"), _as_wave(candidate, "candidate")
    _check_same_shape(ref, cand)
    ref_power, cand_power = power_spectrogram(ref), power_spectrogram(cand)
    peak = _peak(ref_power)
    if not bool((peak > 0).all()):
        raise ConfigError("the reference audio is silent; the LSD's floor is relative to its peak")
    floor = (peak * 10.0 ** (floor_db / 10.0))[..., None, None]
    difference_db = 10.0 * (
        torch.log10(torch.maximum(ref_power, floor)) - torch.log10(torch.maximum(cand_power, floor))
    )
    return difference_db.square().mean(dim=-2).sqrt().mean(dim=-1)


@dataclass(frozen=True)
class AudioComparison:
    """Figures of one candidate render against its reference (see the module docstring).

    Attributes
    ----------
    ms_ssim : float
        MS-SSIM of the dB images, in [0, 1]; higher is better.
    mr_stft : float
        Multi-resolution STFT distance; lower is better.
    lsd : float
        Log-spectral distance, dB; lower is better.
    len_reference, len_candidate : int
        Lengths in samples at 16 kHz after resampling, before trimming to the shorter.
    """

    ms_ssim: float
    mr_stft: float
    lsd: float
    len_reference: int
    len_candidate: int

    def format(self) -> str:
        """One line, e.g. ``ms_ssim=0.9961 mr_stft=0.3800 lsd=1.23dB len_ref=.. len_cand=..``."""
        return (
            f"ms_ssim={self.ms_ssim:.4f} mr_stft={self.mr_stft:.4f} lsd={self.lsd:.2f}dB "
            f"len_ref={self.len_reference} len_cand={self.len_candidate}"
        )


def _mono_at_protocol_rate(wave: Tensor | np.ndarray, sample_rate: int, what: str) -> np.ndarray:
    if isinstance(wave, Tensor):
        wave = wave.detach().cpu().numpy()
    wave = np.asarray(wave)
    if wave.ndim not in (1, 2) or wave.shape[-1] == 0:
        raise ConfigError(
            f"the {what} audio must be shaped (samples,) or (channels, samples) and non-empty, "
            f"got shape {wave.shape}"
        )
    if not np.isfinite(wave).all():
        raise NonFiniteAudioError(f"the {what} audio holds NaN or infinite samples")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(
            f"the {what} sample rate must be a positive number of Hz, got {sample_rate!r}"
        )
    return resample(to_mono(wave), int(sample_rate), PROTOCOL_SAMPLE_RATE)


@dataclass(frozen=True)
class ProtocolPair:
    """Reference and candidate as the protocol compares them: mono, 16 kHz, one length,
    the candidate at the reference's RMS (float64 tensors (samples,)), with their lengths
    in samples at 16 kHz before the trim."""

    reference: Tensor
    candidate: Tensor
    len_reference: int
    len_candidate: int

    @functools.cached_property
    def images(self) -> tuple[Tensor, Tensor]:
        """Both dB images re the reference's peak: float64 (513, frames) each, in [0, 1]
        (computed once per pair)."""
        reference_peak = _peak(power_spectrogram(self.reference))
        return db_image(self.reference, reference_peak), db_image(self.candidate, reference_peak)


def protocol_pair(
    reference: Tensor | np.ndarray,
    candidate: Tensor | np.ndarray,
    sample_rate: int,
    candidate_sample_rate: int | None = None,
) -> ProtocolPair:
    """Steps 1-3 of the protocol (mono, 16 kHz, trim, RMS match); see :func:`compare_audio`."""
    candidate_sample_rate = sample_rate if candidate_sample_rate is None else candidate_sample_rate
    ref = _mono_at_protocol_rate(reference, sample_rate, "reference")
    cand = _mono_at_protocol_rate(candidate, candidate_sample_rate, "candidate")
    len_reference, len_candidate = int(ref.shape[-1]), int(cand.shape[-1])
    n_samples = min(len_reference, len_candidate)
    shortest = max(MR_STFT_SIZES)
    if n_samples < shortest:
        raise AudioTooShortError(
            f"the shorter signal is {n_samples} samples at {PROTOCOL_SAMPLE_RATE} Hz; the "
            f"comparison needs at least {shortest} ({shortest / PROTOCOL_SAMPLE_RATE:.3f} s)"
        )
    ref_wave = torch.from_numpy(ref[:n_samples]).to(_DTYPE)
    cand_wave = torch.from_numpy(cand[:n_samples]).to(_DTYPE)
    ref_rms = float(ref_wave.square().mean().sqrt())
    if ref_rms == 0.0:
        raise ConfigError("the reference audio is silent; there is nothing to compare against")
    cand_rms = float(cand_wave.square().mean().sqrt())
    cand_wave = cand_wave * (ref_rms / max(cand_rms, 1e-9))
    return ProtocolPair(ref_wave, cand_wave, len_reference, len_candidate)


@torch.inference_mode()
def compare_audio(
    reference: Tensor | np.ndarray,
    candidate: Tensor | np.ndarray,
    sample_rate: int,
    candidate_sample_rate: int | None = None,
) -> AudioComparison:
    """Score a candidate render against a reference render of the same score.

    Runs the whole protocol of the module docstring: mono, 16 kHz, trim to the shorter,
    match the candidate's RMS to the reference's, then MS-SSIM of the dB images,
    MR-STFT distance and LSD.

    Parameters
    ----------
    reference : array or tensor, shape (samples,) or (channels, samples)
        The reference render (e.g. FluidSynth with the model's SoundFont).
    candidate : array or tensor, shape (samples,) or (channels, samples)
        The render to score (e.g. the model's audio).
    sample_rate : int
        Rate of `reference` in Hz (and of `candidate` unless given separately).
    candidate_sample_rate : int, optional
        Rate of `candidate` in Hz when it differs from the reference's.

    Returns
    -------
    AudioComparison

    Raises
    ------
    ConfigError
        Empty or badly shaped audio, a bad sample rate, or a silent reference.
    AudioTooShortError
        The shorter signal is under 2048 samples at 16 kHz (the largest STFT's window).
    NonFiniteAudioError
        NaN or infinite samples.
    """
    return compare_pair(protocol_pair(reference, candidate, sample_rate, candidate_sample_rate))


@torch.inference_mode()
def compare_pair(pair: ProtocolPair) -> AudioComparison:
    """Steps 4-6 of the protocol (MS-SSIM, MR-STFT, LSD) on an already prepared pair."""
    ref_wave, cand_wave = pair.reference, pair.candidate
    ref_image, cand_image = pair.images
    ms_ssim = float(spectrogram_ms_ssim(ref_image[None, None], cand_image[None, None], data_range=1.0)[0])
    return AudioComparison(
        ms_ssim=ms_ssim,
        mr_stft=float(mr_stft_distance(ref_wave, cand_wave)),
        lsd=float(log_spectral_distance(ref_wave, cand_wave)),
        len_reference=pair.len_reference,
        len_candidate=pair.len_candidate,
    )


def compare_files(reference_path: str | Path, candidate_path: str | Path) -> AudioComparison:
    """:func:`compare_audio` on two audio files (any format and rate soundfile reads).

    Each file is mixed down to mono and resampled to 16 kHz on loading
    (:func:`orchestrion.audio.io.load_audio`).

    Parameters
    ----------
    reference_path, candidate_path : str or Path
        The reference render and the render to score.

    Returns
    -------
    AudioComparison
    """
    reference, _ = load_audio(reference_path, sample_rate=PROTOCOL_SAMPLE_RATE, mono=True)
    candidate, _ = load_audio(candidate_path, sample_rate=PROTOCOL_SAMPLE_RATE, mono=True)
    return compare_audio(reference, candidate, PROTOCOL_SAMPLE_RATE)

