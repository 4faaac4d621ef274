"""Differentiable spectral transforms as torch modules: STFT, compressions, mel, CQT, MFCC.

Every transform takes waveforms or spectrograms batched over any leading dimensions:
a wave is ``(..., samples)``, a spectrogram ``(..., freq, frames)``. Fixed tensors
(windows, filterbanks, DCT matrices) are registered buffers, so ``module.to(device)``
moves them and ``state_dict`` records them. All operations are torch operations, so
gradients reach the input wave.

Conventions follow librosa 0.11: Hann windows are periodic ("fftbins"), a window shorter
than ``n_fft`` is zero-padded at both sides, ``center=True`` pads ``n_fft // 2`` zeros at
both ends (librosa's default ``pad_mode="constant"``), and the inverse STFT divides by
the overlap-added squared window wherever that is non-zero.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import librosa
import numpy as np
import torch
from torch import Tensor, nn

from orchestrion.errors import AudioTooShortError, ConfigError, NonFiniteAudioError

__all__ = [
    "Stft",
    "SpectralCompression",
    "LogPower",
    "LogMagnitude",
    "LogEpsPower",
    "Decibel",
    "MelScale",
    "MelSpectrogram",
    "Mfcc",
    "Cqt",
    "SpectrogramConfig",
    "COMPRESSIONS",
    "make_compression",
    "analysis_window",
    "overlap_add",
    "window_sumsquare",
    "dct_ortho_matrix",
]


# --------------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=64)
def _window_numpy(window: str | tuple | float, win_length: int, n_fft: int) -> np.ndarray:
    """A periodic analysis window of `win_length` samples, zero-padded (centred) to `n_fft`."""
    try:
        samples = librosa.filters.get_window(window, win_length, fftbins=True)
    except Exception as exc:  # librosa/scipy raise ValueError, ParameterError, TypeError
        raise ConfigError(f"unknown analysis window {window!r} ({exc})") from exc
    padded = librosa.util.pad_center(np.asarray(samples, dtype=np.float64), size=n_fft)
    return padded.astype(np.float32)


def analysis_window(
    window: str | tuple | float, win_length: int, n_fft: int
) -> Tensor:
    """The STFT window as a float32 tensor of shape (n_fft,), librosa conventions."""
    return torch.from_numpy(_window_numpy(window, win_length, n_fft).copy())


def _check_stft_sizes(n_fft: int, hop_length: int, win_length: int) -> None:
    if not isinstance(n_fft, (int, np.integer)) or n_fft < 2:
        raise ConfigError(f"n_fft must be an integer of at least 2 samples, got {n_fft!r}")
    if not isinstance(hop_length, (int, np.integer)) or hop_length < 1:
        raise ConfigError(f"hop_length must be a positive number of samples, got {hop_length!r}")
    if not isinstance(win_length, (int, np.integer)) or not 1 <= win_length <= n_fft:
        raise ConfigError(
            f"win_length must be between 1 and n_fft ({n_fft}) samples, got {win_length!r}"
        )


def _check_wave(
    wave: Tensor, min_samples: int, transform: str, check_finite: bool = True
) -> Tensor:
    """Return `wave` as a floating tensor after checking its length and values.

    Parameters
    ----------
    wave : audio, shape (..., samples).
    min_samples : fewest samples `transform` can analyse.
    transform : name used in error messages, e.g. "this STFT (n_fft 1024)".
    check_finite : raise NonFiniteAudioError on NaN/inf samples.

    Raises
    ------
    AudioTooShortError, NonFiniteAudioError, ConfigError (wave is a scalar)
    """
    wave = torch.as_tensor(wave)
    if not wave.is_floating_point():
        wave = wave.to(torch.float32)
    if wave.ndim == 0:
        raise ConfigError("audio must have a time axis: expected shape (..., samples)")
    n_samples = wave.shape[-1]
    if n_samples < min_samples:
        raise AudioTooShortError(
            f"audio is {n_samples} samples long but {transform} needs at least "
            f"{min_samples} samples"
        )
    if check_finite:
        bad = ~torch.isfinite(wave)
        if bool(bad.any()):
            raise NonFiniteAudioError(f"audio holds {int(bad.sum())} NaN or infinite samples")
    return wave


def overlap_add(frames: Tensor, hop_length: int) -> Tensor:
    """Overlap-add frames into a signal.

    Parameters
    ----------
    frames : (..., frames, frame_length) time-domain frames.
    hop_length : distance between frame starts, in samples.

    Returns
    -------
    (..., (frames - 1) * hop_length + frame_length) summed signal.
    """
    n_frames, frame_length = frames.shape[-2], frames.shape[-1]
    blocks_per_frame = math.ceil(frame_length / hop_length)
    padded_length = blocks_per_frame * hop_length
    if padded_length != frame_length:
        frames = nn.functional.pad(frames, (0, padded_length - frame_length))
    blocks = frames.reshape(*frames.shape[:-1], blocks_per_frame, hop_length)
    out = frames.new_zeros(*frames.shape[:-2], n_frames + blocks_per_frame - 1, hop_length)
    for j in range(blocks_per_frame):
        out[..., j:j + n_frames, :] += blocks[..., j, :]
    out = out.reshape(*out.shape[:-2], -1)
    return out[..., : (n_frames - 1) * hop_length + frame_length]


def window_sumsquare(window: Tensor, n_frames: int, hop_length: int) -> Tensor:
    """Overlap-added squared window, shape ((n_frames - 1) * hop_length + len(window),)."""
    squared = window.square().expand(n_frames, -1)
    return overlap_add(squared, hop_length)


def _as_magnitude(spec: Tensor) -> Tensor:
    spec = torch.as_tensor(spec)
    return spec.abs() if spec.is_complex() else spec


def _check_frequency_bins(spec: Tensor, expected: int, what: str) -> None:
    if spec.ndim < 2 or spec.shape[-2] != expected:
        raise ConfigError(
            f"{what} expects spectrograms shaped (..., {expected} frequency bins, frames), "
            f"got shape {tuple(spec.shape)}"
        )


# --------------------------------------------------------------------------- STFT
class Stft(nn.Module):
    """Short-time Fourier transform and its inverse, with librosa 0.11's conventions.

    Parameters
    ----------
    n_fft : FFT size in samples; the spectrogram has ``n_fft // 2 + 1`` frequency bins.
    hop_length : samples between frames (default ``win_length // 4``, as librosa).
    win_length : window length in samples, at most ``n_fft`` (default ``n_fft``).
    window : window name or spec understood by ``librosa.filters.get_window``.
    center : pad ``n_fft // 2`` zeros at both ends so frame ``t`` is centred on sample
        ``t * hop_length`` (librosa's default constant padding).
    check_finite : raise NonFiniteAudioError when the input holds NaN/inf (one extra pass
        over the input; switch off inside hot training loops if you prefer NaN losses).

    Notes
    -----
    The input must hold at least ``n_fft`` samples (one full analysis window), with or
    without centring; librosa only warns below that, we refuse.
    """

    window: Tensor

    def __init__(
        self,
        n_fft: int = 2048,
        hop_length: int | None = None,
        win_length: int | None = None,
        window: str | tuple | float = "hann",
        center: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        hop_length = win_length // 4 if hop_length is None else hop_length
        _check_stft_sizes(n_fft, hop_length, win_length)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.win_length = int(win_length)
        self.window_spec = window
        self.center = bool(center)
        self.check_finite = bool(check_finite)
        self.register_buffer("window", analysis_window(window, self.win_length, self.n_fft))

    @property
    def n_freq(self) -> int:
        """Number of frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Number of frames the forward transform makes from `n_samples` samples."""
        padded = n_samples + 2 * (self.n_fft // 2) if self.center else n_samples
        return 1 + (padded - self.n_fft) // self.hop_length

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, "
            f"window={self.window_spec!r}, center={self.center}"
        )

    def forward(self, wave: Tensor) -> Tensor:
        """Wave (..., samples) -> complex spectrogram (..., n_fft // 2 + 1, frames)."""
        wave = _check_wave(wave, self.n_fft, f"this STFT (n_fft {self.n_fft})", self.check_finite)
        lead, n_samples = wave.shape[:-1], wave.shape[-1]
        spec = torch.stft(
            wave.reshape(-1, n_samples),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window.to(wave.dtype),
            center=self.center,
            pad_mode="constant",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        return spec.reshape(*lead, *spec.shape[-2:])

    def inverse(self, spec: Tensor, length: int | None = None) -> Tensor:
        """Complex spectrogram (..., n_fft // 2 + 1, frames) -> wave (..., samples).

        Weighted overlap-add divided by the overlap-added squared window (where it is
        non-zero), as ``librosa.istft``. With ``length=None`` the output has
        ``hop_length * (frames - 1)`` samples when centred, else the full overlap-add
        length; otherwise it is cut or zero-padded to `length` samples.
        """
        spec = torch.as_tensor(spec)
        _check_frequency_bins(spec, self.n_freq, "the inverse STFT")
        if not spec.is_complex():
            raise ConfigError(
                "the inverse STFT needs a complex spectrogram; for magnitudes use "
                "orchestrion.audio.phase.griffin_lim or istft_with_phase"
            )
        if length is not None and length < 0:
            raise ConfigError(f"length must be a non-negative number of samples, got {length}")
        n_frames = spec.shape[-1]
        real_dtype = spec.real.dtype
        window = self.window.to(real_dtype)
        frames = torch.fft.irfft(spec.transpose(-1, -2), n=self.n_fft) * window
        signal = overlap_add(frames, self.hop_length)
        envelope = window_sumsquare(window, n_frames, self.hop_length)
        tiny = torch.finfo(real_dtype).tiny
        nonzero = envelope > tiny
        signal = signal * torch.where(nonzero, 1.0 / torch.where(nonzero, envelope, 1.0), 0.0)
        start = self.n_fft // 2 if self.center else 0
        if length is None:
            stop = signal.shape[-1] - start
        else:
            stop = start + length
        if stop > signal.shape[-1]:
            signal = nn.functional.pad(signal, (0, stop - signal.shape[-1]))
        return signal[..., start:stop]


# --------------------------------------------------------------------------- compressions
class SpectralCompression(nn.Module):
    """Base of the invertible magnitude compressions, and itself the identity ("none").

    ``forward`` takes a magnitude or a complex spectrogram (reduced to |X|), shape
    (..., freq, frames), and returns the compressed tensor of the same shape;
    ``inverse`` maps it back to a non-negative magnitude.
    """

    name = "none"

    def forward(self, spec: Tensor) -> Tensor:
        """|X| (..., freq, frames) -> compressed (..., freq, frames)."""
        return _as_magnitude(spec)

    def inverse(self, compressed: Tensor) -> Tensor:
        """Compressed (..., freq, frames) -> magnitude |X| (..., freq, frames)."""
        return compressed.clamp(min=0.0)


class LogPower(SpectralCompression):
    """S = ln(1 + |X|^2), the orGAN target; inverse |X| = sqrt(expm1(S)) (negatives -> 0)."""

    name = "log_power"

    def forward(self, spec: Tensor) -> Tensor:
        return torch.log1p(_as_magnitude(spec).square())

    def inverse(self, compressed: Tensor) -> Tensor:
        return torch.sqrt(torch.expm1(compressed).clamp(min=0.0))


class LogMagnitude(SpectralCompression):
    """S = ln(1 + |X|), the timbre-transfer feature; inverse |X| = expm1(S) (negatives -> 0)."""

    name = "log_magnitude"

    def forward(self, spec: Tensor) -> Tensor:
        return torch.log1p(_as_magnitude(spec))

    def inverse(self, compressed: Tensor) -> Tensor:
        return torch.expm1(compressed).clamp(min=0.0)


class LogEpsPower(SpectralCompression):
    """S = ln(eps + |X|^2), SING's loss feature; inverse |X| = sqrt(max(exp(S) - eps, 0)).

    Computed as ``ln(eps) + log1p(|X|^2 / eps)`` and ``eps * expm1(S - ln(eps))``, which are
    the same functions without the cancellation that ``exp(S) - eps`` suffers when
    ``|X|^2 << eps``.

    Parameters
    ----------
    eps : positive floor added to the power (SING uses 1).
    """

    name = "log_eps_power"

    def __init__(self, eps: float = 1.0) -> None:
        super().__init__()
        if not eps > 0:
            raise ConfigError(f"LogEpsPower eps must be positive, got {eps}")
        self.eps = float(eps)
        self.log_eps = math.log(self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"

    def forward(self, spec: Tensor) -> Tensor:
        return self.log_eps + torch.log1p(_as_magnitude(spec).square() / self.eps)

    def inverse(self, compressed: Tensor) -> Tensor:
        return torch.sqrt((self.eps * torch.expm1(compressed - self.log_eps)).clamp(min=0.0))


class Decibel(nn.Module):
    """Magnitude -> decibels relative to a reference: 20 log10(max(|X|, amin) / reference).

    Parameters
    ----------
    reference : fixed reference magnitude; None (default) uses each item's maximum over
        its last two dims (freq, frames), so every spectrogram peaks at 0 dB.
    top_db : if given, floor the output at (its per-item maximum - top_db) dB.
    amin : smallest magnitude considered (librosa's ``amplitude_to_db`` default 1e-5).

    ``forward`` returns ``(db, reference)``; keep the reference to undo the
    normalisation with ``inverse(db, reference)``. The inverse is exact for every value
    above the ``amin`` and ``top_db`` floors.
    """

    name = "decibel"

    def __init__(
        self, reference: float | None = None, top_db: float | None = None, amin: float = 1e-5
    ) -> None:
        super().__init__()
        if reference is not None and not reference > 0:
            raise ConfigError(f"the dB reference magnitude must be positive, got {reference}")
        if top_db is not None and not top_db > 0:
            raise ConfigError(f"top_db must be a positive number of decibels, got {top_db}")
        if not amin > 0:
            raise ConfigError(f"amin must be positive, got {amin}")
        self.reference = reference
        self.top_db = top_db
        self.amin = float(amin)

    def extra_repr(self) -> str:
        ref = "per-item max" if self.reference is None else self.reference
        return f"reference={ref}, top_db={self.top_db}, amin={self.amin}"

    def forward(
        self, spec: Tensor, reference: Tensor | float | None = None
    ) -> tuple[Tensor, Tensor]:
        """Magnitude (..., freq, frames) -> (dB (..., freq, frames), reference (..., 1, 1)).

        A `reference` passed here overrides the module's.
        """
        magnitude = _as_magnitude(spec)
        if magnitude.ndim < 2:
            raise ConfigError(f"Decibel expects (..., freq, frames), got {tuple(magnitude.shape)}")
        if reference is None:
            reference = self.reference
        if reference is None:
            reference = magnitude.amax(dim=(-2, -1), keepdim=True)
        reference = torch.as_tensor(reference, dtype=magnitude.dtype, device=magnitude.device)
        reference = reference.clamp(min=self.amin)
        if reference.ndim < 2:
            reference = reference.reshape(*reference.shape, *([1] * (2 - reference.ndim)))
        db = 20.0 * torch.log10(magnitude.clamp(min=self.amin) / reference)
        if self.top_db is not None:
            floor = db.amax(dim=(-2, -1), keepdim=True) - self.top_db
            db = torch.maximum(db, floor)
        return db, reference.expand(*db.shape[:-2], 1, 1)

    def inverse(self, db: Tensor, reference: Tensor | float | None = None) -> Tensor:
        """(dB (..., freq, frames), reference) -> magnitude (..., freq, frames)."""
        if reference is None:
            reference = self.reference
        if reference is None:
            raise ConfigError(
                "Decibel.inverse needs the reference that forward returned "
                "(the spectrogram's own maximum)"
            )
        reference = torch.as_tensor(reference, dtype=db.dtype, device=db.device)
        return reference * torch.pow(10.0, db / 20.0)


#: compression name -> class; names are what SpectrogramConfig.compression holds.
COMPRESSIONS: dict[str, type[nn.Module]] = {
    "none": SpectralCompression,
    "log_power": LogPower,
    "log_magnitude": LogMagnitude,
    "log_eps_power": LogEpsPower,
    "decibel": Decibel,
}


def make_compression(name: str, **options: Any) -> nn.Module:
    """Build a compression module by name (see COMPRESSIONS); options go to its constructor."""
    try:
        cls = COMPRESSIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown spectrogram compression {name!r}; choose one of {sorted(COMPRESSIONS)}"
        ) from None
    return cls(**options)


# --------------------------------------------------------------------------- mel
class MelScale(nn.Module):
    """Linear-frequency magnitude/power spectrogram -> mel bands, with a pseudo-inverse.

    The filterbank is ``librosa.filters.mel`` (registered buffer ``filterbank``,
    (n_mels, n_fft // 2 + 1)); ``inverse`` applies its Moore-Penrose pseudo-inverse
    (buffer ``pseudo_inverse``) and clamps negatives to 0, a least-squares estimate, not
    an exact inverse (mel bands discard detail).

    Parameters
    ----------
    sample_rate : Hz.
    n_fft : FFT size the spectrogram was computed with.
    n_mels : number of mel bands.
    fmin, fmax : band edges in Hz (fmax default: sample_rate / 2).
    htk : HTK mel formula instead of Slaney's.
    norm : "slaney" (area normalisation), None, or a p-norm as in librosa.
    persistent : keep the two buffers in the state dict (False: rebuilt from the arguments,
        for a model that should not store them).
    """

    filterbank: Tensor
    pseudo_inverse: Tensor

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float | None = None,
        htk: bool = False,
        norm: str | float | None = "slaney",
        persistent: bool = True,
    ) -> None:
        super().__init__()
        if not sample_rate or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive (Hz), got {sample_rate}")
        nyquist = sample_rate / 2
        if not isinstance(n_fft, (int, np.integer)) or n_fft < 2:
            raise ConfigError(f"n_fft must be an integer of at least 2 samples, got {n_fft!r}")
        if not isinstance(n_mels, (int, np.integer)) or n_mels < 1:
            raise ConfigError(f"n_mels must be a positive integer, got {n_mels!r}")
        fmax_hz = nyquist if fmax is None else float(fmax)
        if not 0 <= fmin < fmax_hz <= nyquist:
            raise ConfigError(
                f"mel bands need 0 <= fmin < fmax <= sample_rate / 2 = {nyquist:g} Hz, "
                f"got fmin={fmin} Hz, fmax={fmax_hz} Hz"
            )
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.n_mels = int(n_mels)
        self.fmin, self.fmax, self.htk, self.norm = float(fmin), fmax_hz, bool(htk), norm
        bank = librosa.filters.mel(
            sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax_hz, htk=htk,
            norm=norm, dtype=np.float64,
        )
        bank64 = torch.from_numpy(bank)
        self.register_buffer("filterbank", bank64.to(torch.float32), persistent=persistent)
        self.register_buffer("pseudo_inverse", torch.linalg.pinv(bank64).to(torch.float32),
                             persistent=persistent)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, n_mels={self.n_mels}, "
            f"fmin={self.fmin}, fmax={self.fmax}, htk={self.htk}, norm={self.norm!r}"
        )

    def forward(self, spec: Tensor) -> Tensor:
        """Magnitude or power (..., n_fft // 2 + 1, frames) -> mel (..., n_mels, frames)."""
        spec = torch.as_tensor(spec)
        if spec.is_complex():
            raise ConfigError(
                "MelScale takes a magnitude or power spectrogram; pass spec.abs() or "
                "spec.abs() ** 2, not the complex STFT"
            )
        _check_frequency_bins(spec, self.n_freq, "MelScale")
        return torch.matmul(self.filterbank.to(spec.dtype), spec)

    def inverse(self, mel: Tensor) -> Tensor:
        """Mel (..., n_mels, frames) -> non-negative linear spectrogram (..., freq, frames)."""
        mel = torch.as_tensor(mel)
        _check_frequency_bins(mel, self.n_mels, "MelScale.inverse")
        return torch.matmul(self.pseudo_inverse.to(mel.dtype), mel).clamp(min=0.0)


class MelSpectrogram(nn.Module):
    """Wave -> mel spectrogram: Stft, then |X| ** power, then MelScale.

    Matches ``librosa.feature.melspectrogram`` with the same arguments.

    Parameters
    ----------
    sample_rate : Hz.
    n_fft, hop_length, win_length, window, center : as Stft (librosa's defaults).
    n_mels, fmin, fmax, htk, norm : as MelScale.
    power : exponent of the magnitude (2 = power, 1 = magnitude).
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 128,
        win_length: int | None = None,
        window: str | tuple | float = "hann",
        center: bool = True,
        power: float = 2.0,
        fmin: float = 0.0,
        fmax: float | None = None,
        htk: bool = False,
        norm: str | float | None = "slaney",
    ) -> None:
        super().__init__()
        if not power > 0:
            raise ConfigError(f"power must be positive (1 = magnitude, 2 = power), got {power}")
        self.power = float(power)
        self.stft = Stft(n_fft, hop_length, win_length, window, center)
        self.mel_scale = MelScale(sample_rate, n_fft, n_mels, fmin, fmax, htk, norm)

    def forward(self, wave: Tensor) -> Tensor:
        """Wave (..., samples) -> mel spectrogram (..., n_mels, frames)."""
        magnitude = self.stft(wave).abs()
        spec = magnitude.square() if self.power == 2.0 else magnitude.pow(self.power)
        return self.mel_scale(spec)

    def inverse(self, mel: Tensor) -> Tensor:
        """Mel (..., n_mels, frames) -> estimated linear magnitude (..., freq, frames)."""
        return self.mel_scale.inverse(mel).pow(1.0 / self.power)


def dct_ortho_matrix(n_out: int, n_in: int) -> Tensor:
    """Orthonormal DCT-II matrix (n_out, n_in).

    ``D @ x`` equals ``scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:n_out]``.
    """
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis.to(torch.float32)


class Mfcc(nn.Module):
    """Wave -> mel-frequency cepstral coefficients, as ``librosa.feature.mfcc``.

    Power mel spectrogram -> dB (reference 1, floor ``amin``, per-item ``top_db``) ->
    orthonormal DCT-II over the mel axis (buffer ``dct``) -> first ``n_mfcc`` rows ->
    optional liftering. Differentiable throughout.

    Parameters
    ----------
    sample_rate : Hz.
    n_mfcc : number of coefficients kept.
    n_mels, n_fft, hop_length, win_length, window, center, fmin, fmax, htk, norm :
        as MelSpectrogram (librosa's defaults).
    top_db : floor of the log-mel at (per-item maximum - top_db) dB; None disables it.
        librosa applies this floor over its whole input array; we apply it per item
        (max over the last two dims), which is the same for a single clip.
    amin : smallest power before the logarithm.
    lifter : cepstral liftering coefficient (0 = none), as librosa.
    """

    dct: Tensor

    def __init__(
        self,
        sample_rate: int,
        n_mfcc: int = 20,
        n_mels: int = 128,
        n_fft: int = 2048,
        hop_length: int = 512,
        win_length: int | None = None,
        window: str | tuple | float = "hann",
        center: bool = True,
        fmin: float = 0.0,
        fmax: float | None = None,
        htk: bool = False,
        norm: str | float | None = "slaney",
        top_db: float | None = 80.0,
        amin: float = 1e-10,
        lifter: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(n_mfcc, (int, np.integer)) or not 1 <= n_mfcc <= n_mels:
            raise ConfigError(f"n_mfcc must be between 1 and n_mels ({n_mels}), got {n_mfcc!r}")
        if top_db is not None and not top_db > 0:
            raise ConfigError(f"top_db must be a positive number of decibels, got {top_db}")
        if lifter < 0:
            raise ConfigError(f"lifter must be >= 0, got {lifter}")
        self.n_mfcc = int(n_mfcc)
        self.top_db = top_db
        self.amin = float(amin)
        self.lifter = float(lifter)
        self.mel_spectrogram = MelSpectrogram(
            sample_rate, n_fft, hop_length, n_mels, win_length, window, center, 2.0,
            fmin, fmax, htk, norm,
        )
        self.register_buffer("dct", dct_ortho_matrix(self.n_mfcc, n_mels))
        if self.lifter > 0:
            n = torch.arange(1, self.n_mfcc + 1, dtype=torch.float64)
            lift = 1.0 + (self.lifter / 2.0) * torch.sin(math.pi * n / self.lifter)
            self.register_buffer("lifter_weights", lift.to(torch.float32)[:, None])
        else:
            self.lifter_weights = None

    def log_mel(self, wave: Tensor) -> Tensor:
        """Wave (..., samples) -> log-power mel in dB (..., n_mels, frames)."""
        mel = self.mel_spectrogram(wave)
        db = 10.0 * torch.log10(mel.clamp(min=self.amin))
        if self.top_db is not None:
            floor = db.amax(dim=(-2, -1), keepdim=True) - self.top_db
            db = torch.maximum(db, floor)
        return db

    def forward(self, wave: Tensor) -> Tensor:
        """Wave (..., samples) -> MFCC (..., n_mfcc, frames)."""
        db = self.log_mel(wave)
        coefficients = torch.matmul(self.dct.to(db.dtype), db)
        if self.lifter_weights is not None:
            coefficients = coefficients * self.lifter_weights.to(db.dtype)
        return coefficients


# --------------------------------------------------------------------------- CQT
class Cqt(nn.Module):
    """Differentiable constant-Q transform: wave (..., samples) -> complex (..., n_bins, frames).

    Parameters
    ----------
    sample_rate : Hz.
    hop_length : samples between frames.
    fmin : centre of the lowest bin in Hz (default 32.70 Hz, C1).
    n_bins : number of bins; the top bin must lie below sample_rate / 2.
    bins_per_octave : bins per octave (12 = semitones).
    filter_scale : Q multiplier (1 = librosa's default).
    window : window of each constant-Q filter.
    center : centre the filters on ``t * hop_length`` (zero padding, as librosa).

    Notes
    -----
    Built on nnAudio's ``CQT1992v2`` (a fixed bank of time-domain complex filters applied
    by strided conv1d, librosa's scaling). Why nnAudio rather than our own kernels: it is a
    declared dependency, its filters are registered buffers, every step is a torch op (so
    gradients reach the wave: SING's CQT loss needs that), it runs at full rate with no
    resampling approximation, and on 2 CPU cores it is fast enough for a training loss
    (batch 16 x 4 s at 16 kHz, 84 bins: ~0.12 s forward, ~0.2 s backward). Its magnitudes
    agree with ``librosa.cqt`` to ~3% (relative Frobenius error) away from the edges;
    librosa's multi-rate algorithm differs slightly. The complex output is returned (not
    nnAudio's magnitude, whose sqrt has a NaN gradient at exact silence); take ``.abs()``.
    The input must hold at least ``hop_length`` samples.
    """

    def __init__(
        self,
        sample_rate: int,
        hop_length: int = 512,
        fmin: float = 32.70,
        n_bins: int = 84,
        bins_per_octave: int = 12,
        filter_scale: float = 1.0,
        window: str = "hann",
        center: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        from nnAudio.features.cqt import CQT1992v2

        if not sample_rate or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive (Hz), got {sample_rate}")
        if not isinstance(hop_length, (int, np.integer)) or hop_length < 1:
            raise ConfigError(
                f"hop_length must be a positive number of samples, got {hop_length!r}"
            )
        if not fmin > 0:
            raise ConfigError(f"fmin must be a positive frequency in Hz, got {fmin}")
        if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
            raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")
        if not isinstance(bins_per_octave, (int, np.integer)) or bins_per_octave < 1:
            raise ConfigError(
                f"bins_per_octave must be a positive integer, got {bins_per_octave!r}"
            )
        top_hz = fmin * 2.0 ** ((n_bins - 1) / bins_per_octave)
        if top_hz >= sample_rate / 2:
            raise ConfigError(
                f"the top CQT bin ({top_hz:.1f} Hz) must lie below half the sample rate "
                f"({sample_rate / 2:g} Hz): use fewer bins or a lower fmin"
            )
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.fmin = float(fmin)
        self.n_bins = int(n_bins)
        self.bins_per_octave = int(bins_per_octave)
        self.check_finite = bool(check_finite)
        self.frequencies_hz = fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)
        self.filters = CQT1992v2(
            sr=sample_rate, hop_length=hop_length, fmin=fmin, n_bins=n_bins,
            bins_per_octave=bins_per_octave, filter_scale=filter_scale, norm=1,
            window=window, center=center, pad_mode="constant", trainable=False,
            output_format="Complex", verbose=False,
        )

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, hop_length={self.hop_length}, fmin={self.fmin}, "
            f"n_bins={self.n_bins}, bins_per_octave={self.bins_per_octave}"
        )

    def forward(self, wave: Tensor) -> Tensor:
        """Wave (..., samples) -> complex CQT (..., n_bins, frames)."""
        wave = _check_wave(
            wave, self.hop_length, f"this CQT (hop {self.hop_length})", self.check_finite
        )
        lead, n_samples = wave.shape[:-1], wave.shape[-1]
        kernel_dtype = self.filters.cqt_kernels_real.dtype
        out = self.filters(wave.reshape(-1, n_samples).to(kernel_dtype))  # (B, bins, frames, 2)
        spec = torch.view_as_complex(out.contiguous())
        return spec.reshape(*lead, *spec.shape[-2:])


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SpectrogramConfig:
    """The numbers that define a system's spectrogram (plain data, stored in presets).

    Attributes
    ----------
    sample_rate : Hz.
    n_fft : FFT size in samples.
    hop_length : samples between frames.
    win_length : window length in samples (None = n_fft).
    compression : a key of COMPRESSIONS ("log_power", "log_magnitude", "decibel",
        "log_eps_power", "none").
    window : window name (librosa.filters.get_window).
    center : centre frames on ``t * hop_length``.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int | None = None
    compression: str = "log_power"
    window: str = "hann"
    center: bool = True

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive (Hz), got {self.sample_rate}")
        win_length = self.n_fft if self.win_length is None else self.win_length
        _check_stft_sizes(self.n_fft, self.hop_length, win_length)
        if self.compression not in COMPRESSIONS:
            raise ConfigError(
                f"unknown spectrogram compression {self.compression!r}; "
                f"choose one of {sorted(COMPRESSIONS)}"
            )

    @property
    def n_freq(self) -> int:
        """Frequency bins, n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    @property
    def frame_rate_hz(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def stft(self) -> Stft:
        """The Stft this config describes."""
        return Stft(self.n_fft, self.hop_length, self.win_length, self.window, self.center)

    def compressor(self, **options: Any) -> nn.Module:
        """The compression module this config names (options go to its constructor)."""
        return make_compression(self.compression, **options)
