"""Audio file I/O (soundfile: WAV/FLAC/AIFF/OGG), resampling (soxr) and mono mix-down.

Arrays at this edge are numpy float32, shaped (samples,) for mono or (channels, samples).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from orchestrion.errors import AudioReadError, ConfigError, NonFiniteAudioError, SampleRateError
from orchestrion.files import atomic_output, require_file

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")
OUTPUT_RATES_HZ = range(4000, 192_001)
"""Sample rates a generated sound may be written at."""


def check_output_rate(sample_rate: int | None) -> None:
    """ConfigError unless `sample_rate` is None or a whole number in 4000-192000 Hz."""
    if sample_rate is not None and (isinstance(sample_rate, bool) or int(sample_rate) != sample_rate
                                    or int(sample_rate) not in OUTPUT_RATES_HZ):
        raise ConfigError(f"sample rate must be 4000-192000 Hz, got {sample_rate!r}")


def to_mono(wave: np.ndarray) -> np.ndarray:
    """Average the channels of a (channels, samples) array; a 1-D array is returned as is."""
    wave = np.asarray(wave, dtype=np.float32)
    return wave if wave.ndim == 1 else wave.mean(axis=0)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int, quality: str = "HQ") -> np.ndarray:
    """Resample (samples,) or (channels, samples) audio from `orig_sr` to `target_sr` Hz with soxr."""
    if orig_sr <= 0 or target_sr <= 0:
        raise SampleRateError(f"sample rates must be positive, got {orig_sr} -> {target_sr} Hz")
    wave = np.asarray(wave, dtype=np.float32)
    if orig_sr == target_sr:
        return wave
    if wave.ndim == 1:
        return soxr.resample(wave, orig_sr, target_sr, quality=quality).astype(np.float32)
    out = soxr.resample(np.ascontiguousarray(wave.T), orig_sr, target_sr, quality=quality)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def detune(wave: np.ndarray, semitones: float) -> np.ndarray:
    """(samples,) audio played `semitones` higher (negative: lower) by resampling with soxr.

    Like a tape played faster or slower, the note also gets shorter or longer by the same
    factor ``2 ** (semitones / 12)``; the result has ``round(len(wave) / factor)`` samples.
    """
    if not math.isfinite(semitones):
        raise ConfigError(f"a detune must be a finite number of semitones, got {semitones}")
    wave = np.asarray(wave, dtype=np.float32)
    if semitones == 0:
        return wave
    factor = 2.0 ** (semitones / 12.0)
    return soxr.resample(wave, factor, 1.0, quality="HQ").astype(np.float32)


def check_finite(wave: np.ndarray, path: str | Path | None = None) -> None:
    """Raise NonFiniteAudioError if `wave` holds NaN or infinite samples."""
    bad = ~np.isfinite(wave)
    if bad.any():
        raise NonFiniteAudioError(
            f"audio holds {int(bad.sum())} NaN or infinite samples", path
        )


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    mono: bool = True,
    require_sample_rate: bool = False,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32.

    Parameters
    ----------
    path : audio file (any format libsndfile reads: WAV, FLAC, AIFF, OGG, ...).
    sample_rate : target rate in Hz; the file is resampled to it (None keeps the file's).
    mono : mix down to (samples,) if True, else return (channels, samples).
    require_sample_rate : raise SampleRateError instead of resampling when the file's
        rate differs from `sample_rate` (for readers of fixed-rate datasets).

    Returns
    -------
    (wave, sample_rate) with the rate of the returned wave in Hz.
    """
    path = require_file(path)
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioReadError(f"cannot read audio ({_short(exc)})", path) from exc
    if data.shape[0] == 0:
        raise AudioReadError("audio file holds no samples", path)
    check_finite(data, path)
    wave = np.ascontiguousarray(data.T)
    if mono:
        wave = to_mono(wave)
    if sample_rate is not None and sample_rate != file_sr:
        if require_sample_rate:
            raise SampleRateError(f"sample rate is {file_sr} Hz, expected {sample_rate} Hz", path)
        wave = resample(wave, file_sr, sample_rate)
        file_sr = sample_rate
    return wave, int(file_sr)


def _frames_to_write(
    wave: np.ndarray, path: str | Path | None = None, peak_normalize: bool = False
) -> np.ndarray:
    """(samples,) or (samples, channels) float32 as written: finite, clipped to [-1, 1]."""
    wave = np.asarray(getattr(wave, "detach", lambda: wave)(), dtype=np.float32)
    check_finite(wave, path)
    if peak_normalize:
        peak = float(np.abs(wave).max(initial=0.0))
        if peak > 0:
            wave = wave * (0.99 / peak)
    wave = np.clip(wave, -1.0, 1.0)
    return wave if wave.ndim == 1 else wave.T


def save_audio(
    path: str | Path,
    wave: np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    peak_normalize: bool = False,
) -> Path:
    """Write (samples,) or (channels, samples) audio atomically; the format follows the suffix.

    Samples are clipped to [-1, 1] (or peak-normalised to 0.99 if `peak_normalize`).
    Raises NonFiniteAudioError rather than writing NaN/inf.
    """
    frames = _frames_to_write(wave, path, peak_normalize)
    path = Path(path)
    fmt = {".aif": "AIFF", ".aiff": "AIFF"}.get(path.suffix.lower())
    with atomic_output(path) as tmp:
        sf.write(str(tmp), frames, int(sample_rate), subtype=subtype, format=fmt)
    return path


def as_saved_wav(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """`wave` as a WAV written by :func:`save_audio` (clipped, 16-bit) reads back, float32.

    Scores of what ``orchestrion render`` writes are taken on this, not on the float audio:
    the 16-bit floor decides the log term of the MR-STFT distance in near-silent bins.
    """
    buffer = io.BytesIO()
    sf.write(buffer, _frames_to_write(wave), int(sample_rate), format="WAV")
    buffer.seek(0)
    frames, _ = sf.read(buffer, dtype="float32")
    return frames if frames.ndim == 1 else np.ascontiguousarray(frames.T)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
