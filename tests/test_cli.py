"""The command line: real commands on real files, and one clear line for every bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from cli_checks import assert_clean_failure
from typer.testing import CliRunner

from orchestrion import __version__
from orchestrion.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def write_tone(path: Path, seconds: float = 1.0, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    sf.write(path, wave.astype(np.float32), sr, subtype=subtype)
    return path


def test_version_prints_package_version():
    result = run("version")
    assert result.exit_code == 0
    assert result.output.strip() == __version__


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("spec", "resynth", "demo", "render", "note", "data", "train", "evaluate"):
        assert name in result.output


def test_spec_writes_a_png(tmp_path):
    wav = write_tone(tmp_path / "tone.wav")
    out = tmp_path / "out" / "tone.png"
    result = run("spec", wav, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "513 bins" in result.output


def test_resynth_writes_audio_of_the_same_length_and_reports_convergence(tmp_path):
    wav = write_tone(tmp_path / "tone.wav", seconds=1.5)
    out = tmp_path / "out" / "rebuilt.wav"
    result = run("resynth", wav, "-o", out, "--iters", "16", "--n-fft", "512", "--hop", "128")
    assert result.exit_code == 0, result.output
    rebuilt, sr = sf.read(out)
    assert sr == 16000 and len(rebuilt) == int(1.5 * 16000)
    convergence = float(result.output.split("spectral convergence ")[1].split()[0])
    assert 0.0 <= convergence < 0.3  # a two-partial tone is easy for Griffin-Lim


def test_resynth_resamples_on_request(tmp_path):
    wav = write_tone(tmp_path / "tone.wav", seconds=1.0, sr=22050)
    out = tmp_path / "rebuilt.wav"
    assert run("resynth", wav, "-o", out, "--iters", "4", "--sr", "16000").exit_code == 0
    info = sf.info(out)
    assert info.samplerate == 16000 and info.frames == 16000


@pytest.mark.parametrize("command", ["spec", "resynth"])
def test_missing_file(tmp_path, command):
    out_dir = tmp_path / "out"
    result = run(command, tmp_path / "nope.wav", "-o", out_dir / ("x.png" if command == "spec" else "x.wav"))
    assert_clean_failure(result, out_dir, "nope.wav", "not found")


@pytest.mark.parametrize("command", ["spec", "resynth"])
def test_corrupt_wav(tmp_path, command):
    bad = tmp_path / "corrupt.wav"
    good = write_tone(tmp_path / "good.wav").read_bytes()
    bad.write_bytes(good[:20] + b"\x00garbage" * 50)
    out_dir = tmp_path / "out"
    result = run(command, bad, "-o", out_dir / ("x.png" if command == "spec" else "x.wav"))
    assert_clean_failure(result, out_dir, "corrupt.wav", "cannot read audio")


@pytest.mark.parametrize("command", ["spec", "resynth"])
def test_nan_samples(tmp_path, command):
    wave = np.zeros(16000, dtype=np.float32)
    wave[100] = np.nan
    wave[200] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    out_dir = tmp_path / "out"
    result = run(command, path, "-o", out_dir / ("x.png" if command == "spec" else "x.wav"))
    assert_clean_failure(result, out_dir, "nan.wav", "2 NaN or infinite samples")


@pytest.mark.parametrize("command", ["spec", "resynth"])
def test_too_short_for_the_stft(tmp_path, command):
    path = write_tone(tmp_path / "blip.wav", seconds=0.01)  # 160 samples < n_fft 1024
    out_dir = tmp_path / "out"
    result = run(command, path, "-o", out_dir / ("x.png" if command == "spec" else "x.wav"))
    assert_clean_failure(result, out_dir, "blip.wav", "160 samples", "1024")


def test_bad_arguments_are_one_line(tmp_path):
    wav = write_tone(tmp_path / "tone.wav")
    out_dir = tmp_path / "out"
    assert_clean_failure(run("resynth", wav, "-o", out_dir / "x.wav", "--hop", "0"), out_dir, "--hop")
    assert_clean_failure(run("resynth", wav, "-o", out_dir / "x.wav", "--iters", "-1"), out_dir, "--iters")


def test_demo_renders_draws_and_resynthesises(tmp_path, example_midi):
    out_dir = tmp_path / "demo"
    result = run("demo", example_midi, "-o", out_dir, "--iters", "8")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["bach_chorale.fluidsynth.wav", "bach_chorale.resynth.wav", "bach_chorale.spectrogram.png"]
    reference, sr = sf.read(out_dir / "bach_chorale.fluidsynth.wav")
    rebuilt, _ = sf.read(out_dir / "bach_chorale.resynth.wav")
    assert sr == 16000 and len(reference) == len(rebuilt)
    assert 22.5 <= len(reference) / sr <= 24.0  # the score's 22.5 s plus at most 1 s of release
    assert np.sqrt(np.mean(reference**2)) > 0.05


def test_demo_corrupt_midi(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\xff\xff" + b"\x90" * 7)
    out_dir = tmp_path / "demo"
    assert_clean_failure(run("demo", bad, "-o", out_dir), out_dir, "broken.mid")


def test_demo_empty_score(tmp_path):
    empty = tmp_path / "empty.mid"
    score = pretty_midi.PrettyMIDI()
    score.instruments.append(pretty_midi.Instrument(program=0))
    score.write(str(empty))
    out_dir = tmp_path / "demo"
    assert_clean_failure(run("demo", empty, "-o", out_dir), out_dir, "empty.mid")


def test_reserved_command_fails_clearly():
    result = run("serve")
    assert result.exit_code == 2
    assert "not in orchestrion" in result.output


def test_console_script_exit_code_and_stderr(tmp_path):
    """The installed entry point itself: error on stderr, nothing on stdout, exit 1."""
    exe = shutil.which("orchestrion", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("orchestrion console script not installed in this environment")
    proc = subprocess.run([exe, "spec", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "missing.wav" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
