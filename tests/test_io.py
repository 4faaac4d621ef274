"""Audio file I/O, resampling, mono mix-down and atomic output."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from orchestrion.audio.io import (
    as_saved_wav,
    detune,
    load_audio,
    resample,
    save_audio,
    to_mono,
)
from orchestrion.errors import (
    ConfigError,
    AudioReadError,
    InputFileNotFoundError,
    NonFiniteAudioError,
    SampleRateError,
)
from orchestrion.files import atomic_output


def tone(sr: int, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix,tolerance", [(".wav", 1e-4), (".flac", 1e-4), (".aiff", 1e-4), (".ogg", 0.05)])
def test_formats_round_trip(tmp_path, suffix, tolerance):
    wave = tone(16000)
    path = save_audio(tmp_path / f"x{suffix}", wave, 16000)
    back, sr = load_audio(path)
    assert sr == 16000
    assert back.shape == wave.shape
    assert np.max(np.abs(back - wave)) < tolerance


def test_stereo_kept_or_mixed(tmp_path):
    left, right = tone(16000, freq=440), tone(16000, freq=660)
    save_audio(tmp_path / "s.wav", np.stack([left, right]), 16000, subtype="FLOAT")
    both, _ = load_audio(tmp_path / "s.wav", mono=False)
    mono, _ = load_audio(tmp_path / "s.wav")
    assert both.shape == (2, len(left))
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-6)
    np.testing.assert_allclose(to_mono(both), mono, atol=1e-7)


def test_resample_keeps_pitch_and_length():
    wave = tone(48000, seconds=1.0, freq=1000.0)
    out = resample(wave, 48000, 16000)
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - 1000.0) <= 1.0
    stereo = resample(np.stack([wave, wave]), 48000, 16000)
    assert stereo.shape == (2, 16000)
    np.testing.assert_allclose(stereo[0], out, atol=1e-6)


def test_load_resamples_or_refuses(tmp_path):
    sf.write(tmp_path / "a.wav", tone(22050), 22050)
    wave, sr = load_audio(tmp_path / "a.wav", sample_rate=16000)
    assert sr == 16000 and len(wave) == 8000
    with pytest.raises(SampleRateError, match="22050 Hz, expected 16000 Hz"):
        load_audio(tmp_path / "a.wav", sample_rate=16000, require_sample_rate=True)


def test_bad_inputs_raise_their_error(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(AudioReadError, match="text.wav"):
        load_audio(tmp_path / "text.wav")
    bad = tone(16000)
    bad[3] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match="1 NaN"):
        load_audio(tmp_path / "nan.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioReadError, match="no samples"):
        load_audio(tmp_path / "empty.wav")


def test_save_refuses_nan_and_leaves_nothing(tmp_path):
    bad = tone(16000)
    bad[0] = np.inf
    with pytest.raises(NonFiniteAudioError):
        save_audio(tmp_path / "out.wav", bad, 16000)
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash midway")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".txt" and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_outputs_get_the_usual_file_mode(tmp_path):
    import os
    import stat

    path = save_audio(tmp_path / "x.wav", tone(16000), 16000)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("semitones", [-0.4, 0.25, 1.0])
def test_detune_moves_the_pitch_and_length_by_the_same_factor(semitones):
    sr = 16_000
    time = np.arange(2 * sr) / sr
    wave = np.sin(2 * np.pi * 440.0 * time).astype(np.float32)
    out = detune(wave, semitones)
    factor = 2.0 ** (semitones / 12)
    assert abs(len(out) - len(wave) / factor) <= 1
    segment = out[: sr] * np.hanning(sr)
    spectrum = np.abs(np.fft.rfft(segment, 8 * sr))  # 0.125 Hz bins
    peak = np.argmax(spectrum) / 8.0
    assert abs(1200 * np.log2(peak / (440.0 * factor))) < 2.0, peak
    assert np.sqrt(np.mean(out[: sr] ** 2)) == pytest.approx(np.sqrt(0.5), rel=0.01)
    assert np.array_equal(detune(wave, 0.0), wave)
    with pytest.raises(ConfigError, match="finite"):
        detune(wave, float("nan"))


@pytest.mark.parametrize("shape", [(4000,), (2, 4000)])
def test_as_saved_wav_is_what_the_saved_wav_reads_back(tmp_path, shape):
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(shape) * 0.5).astype(np.float32)  # some samples beyond +-1
    wave.flat[:3] = [1e-6, -3e-5, 2.0]
    path = save_audio(tmp_path / "x.wav", wave, 16000)
    read, _ = sf.read(path, dtype="float32")
    expected = read if read.ndim == 1 else read.T
    got = as_saved_wav(wave, 16000)
    assert got.shape == wave.shape
    np.testing.assert_array_equal(got, expected)
    assert got.flat[0] == 0.0 and got.flat[2] <= 1.0  # below the 16-bit step; clipped
    assert np.abs(got - np.clip(wave, -1, 1)).max() <= 1 / 32768 + 1e-7
