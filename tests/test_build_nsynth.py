"""NSynth-format builds: real layout, readable by our reader, right pitches, resumable."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from orchestrion.data.build import Shard
from orchestrion.data.build_nsynth import NSynthBuildConfig, build_nsynth, plan_items
from orchestrion.data.gm_nsynth import nsynth_family, nsynth_instrument_str, nsynth_source
from orchestrion.data.nsynth import NSynthDataset
from orchestrion.errors import ConfigError

EXAMPLE_KEYS = {"note", "note_str", "instrument", "instrument_str", "pitch", "velocity", "sample_rate",
                "qualities", "qualities_str", "instrument_family", "instrument_family_str",
                "instrument_source", "instrument_source_str"}


def tiny_config(**overrides) -> NSynthBuildConfig:
    base = dict(instruments=("flute", "violin"), pitches=(60, 65), velocities=(50, 100))
    return NSynthBuildConfig(**{**base, **overrides})


def test_gm_naming_follows_nsynth():
    assert nsynth_instrument_str(40) == "string_acoustic_040"
    assert nsynth_instrument_str(71) == "reed_acoustic_071"
    assert nsynth_instrument_str(81) == "synth_lead_synthetic_081"
    assert nsynth_family(73) == "flute" and nsynth_family(56) == "brass" and nsynth_family(0) == "keyboard"
    assert nsynth_source(4) == "electronic"
    with pytest.raises(ConfigError):
        nsynth_family(128)


def test_tiny_build_has_the_real_layout_and_reads_back(tmp_path):
    build_nsynth(tmp_path, tiny_config(), progress=False)
    splits = sorted(p.name for p in tmp_path.glob("nsynth-*"))
    assert set(splits) <= {"nsynth-train", "nsynth-valid", "nsynth-test"} and "nsynth-train" in splits
    total = 0
    for folder in tmp_path.glob("nsynth-*"):
        examples = json.loads((folder / "examples.json").read_text())
        total += len(examples)
        for key, entry in examples.items():
            assert set(entry) == EXAMPLE_KEYS
            assert key == entry["note_str"] == f"{entry['instrument_str']}-{entry['pitch']:03d}-{entry['velocity']:03d}"
            assert isinstance(entry["qualities"], list) and len(entry["qualities"]) == 10
            info = sf.info(folder / "audio" / f"{key}.wav")
            assert (info.samplerate, info.frames, info.channels, info.subtype) == (16000, 64000, 1, "PCM_16")
    assert total == 2 * 6 * 2
    dataset = NSynthDataset(tmp_path)
    assert len(dataset) == total
    violins = NSynthDataset(tmp_path, families=["string"])
    assert {r.instrument_str for r in violins.records} == {"string_acoustic_040"}
    item = dataset[0]
    assert item["audio"].shape == (64000,) and float(item["audio"].abs().max()) > 0.01


def test_split_holds_out_pitches_and_keeps_velocities_together(tmp_path):
    config = tiny_config(pitches=(48, 84), valid_instruments=())
    items = plan_items(config)
    by_pair: dict[tuple, set] = {}
    for item in items:
        entry = item.params["entry"]
        by_pair.setdefault((entry["instrument"], entry["pitch"]), set()).add(item.params["split"])
        if entry["pitch"] % 12 == 3:
            assert item.params["split"] in {"valid", "test"}
    assert all(len(splits) == 1 for splits in by_pair.values())
    train_share = sum(s == {"train"} for s in by_pair.values()) / len(by_pair)
    assert 0.55 < train_share < 0.9


def test_heldout_instrument_goes_wholly_to_its_split():
    items = plan_items(tiny_config(test_instruments=("violin",)))
    for item in items:
        if item.params["entry"]["instrument"] == 40:
            assert item.params["split"] == "test"
    with pytest.raises(ConfigError, match="not among"):
        plan_items(tiny_config(test_instruments=("oboe",)))


def test_pitch_range_outside_every_instrument_is_an_error():
    with pytest.raises(ConfigError, match="no notes"):
        plan_items(tiny_config(pitches=(0, 5)))


def test_rendered_notes_have_the_requested_pitch(renderer_16k):
    """f0 (pyin) within 30 cents on >= 95 % of a sample of pitched notes across families."""
    cases = [(program, pitch) for program, pitches in {
        73: (62, 72, 81, 90), 71: (52, 60, 70, 82), 40: (57, 67, 76, 88), 42: (38, 48, 57, 67),
        56: (58, 65, 72, 79), 68: (60, 67, 74, 84), 57: (43, 52, 60, 67), 0: (36, 48, 60, 72, 84),
    }.items() for pitch in pitches]
    good = 0
    for program, pitch in cases:
        wave = renderer_16k.render_note(program, pitch, 100, held_s=1.0, release_s=0.0)[2000:14000]
        target = librosa.midi_to_hz(pitch)
        f0, voiced, _ = librosa.pyin(wave, fmin=target / 1.5, fmax=target * 1.5, sr=16000, frame_length=2048)
        f0 = f0[voiced & np.isfinite(f0)]
        if len(f0) and abs(1200 * np.log2(np.median(f0) / target)) <= 30:
            good += 1
    assert good / len(cases) >= 0.95, f"{good}/{len(cases)} notes within 30 cents"


def test_shards_together_equal_one_build(tmp_path):
    config = tiny_config()
    whole = build_nsynth(tmp_path / "whole", config, progress=False)
    for k in range(2):
        build_nsynth(tmp_path / "sharded", config, shard=Shard(k, 2), progress=False)
    sharded = json.loads((tmp_path / "sharded" / "manifest.json").read_text())
    assert sharded["checksums"] == whole.manifest["checksums"]
    assert sharded["complete"] and whole.manifest["complete"]


def test_two_workers_give_identical_files(tmp_path):
    one = build_nsynth(tmp_path / "one", tiny_config(), workers=1, progress=False)
    two = build_nsynth(tmp_path / "two", tiny_config(), workers=2, progress=False)
    assert one.manifest["checksums"] == two.manifest["checksums"]
    assert one.manifest["items_finished"] == 24


def _cli(*args: str) -> list[str]:
    exe = shutil.which("orchestrion", path=str(Path(sys.executable).parent))
    return [exe, *args] if exe else [sys.executable, "-m", "orchestrion", *args]


def _finished(records: Path) -> int:
    """Finished item records (not a killed writer's hidden temporary file)."""
    return sum(1 for p in records.iterdir() if p.suffix == ".json" and not p.name.startswith("."))


def test_killed_build_resumes_to_the_same_manifest(tmp_path):
    """Kill a real build midway; resuming it ends with the manifest of an uninterrupted build."""
    args = ["data", "nsynth", "dataset", "--instruments", "flute,violin,clarinet,trumpet",
            "--pitches", "40-90", "--velocities", "25,50,75,100,127", "--quiet"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    interrupted, fresh = tmp_path / "a" / "dataset", tmp_path / "b" / "dataset"
    proc = subprocess.Popen(_cli(*args), cwd=tmp_path / "a", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = interrupted / ".build" / "items"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if records.is_dir() and _finished(records) >= 30:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be interrupted"
    assert not (interrupted / "manifest.json").exists()
    done_before = _finished(records)
    resumed = subprocess.run(_cli(*args), cwd=tmp_path / "a", capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_before} already there" in resumed.stdout
    uninterrupted = subprocess.run(_cli(*args), cwd=tmp_path / "b", capture_output=True, text=True, timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    a = json.loads((interrupted / "manifest.json").read_text())
    b = json.loads((fresh / "manifest.json").read_text())
    assert a == b and a["complete"] and a["items_finished"] > done_before
    for split in a["splits"]:
        assert (interrupted / f"nsynth-{split}" / "examples.json").read_bytes() == \
            (fresh / f"nsynth-{split}" / "examples.json").read_bytes()


def test_bad_options_fail_cleanly(tmp_path):
    proc = subprocess.run(_cli("data", "nsynth", str(tmp_path / "x"), "--instruments", "kazoo-of-doom"),
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 1
    assert "kazoo-of-doom" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_resuming_with_other_settings_is_refused(tmp_path):
    build_nsynth(tmp_path, tiny_config(), progress=False)
    build_nsynth(tmp_path, tiny_config(), progress=False)  # same settings: resumes
    with pytest.raises(ConfigError, match="other settings"):
        build_nsynth(tmp_path, tiny_config(velocities=(60,)), progress=False)


def test_gain_scales_every_note_and_silent_notes_are_skipped(tmp_path):
    # violin 100 has a FluidR3 sample, 104 has none (FluidSynth plays silence there)
    config = tiny_config(instruments=("violin",), pitches=(100, 104), velocities=(100,), heldout_pitches=())
    quiet, loud = tmp_path / "quiet", tmp_path / "loud"
    build_nsynth(quiet, NSynthBuildConfig(**{**config.__dict__, "gain": 0.2}), progress=False)
    build_nsynth(loud, NSynthBuildConfig(**{**config.__dict__, "gain": 1.0}), progress=False)
    quiet_notes = {r.note_str: r for r in NSynthDataset(quiet).records}
    loud_notes = NSynthDataset(loud)
    assert set(quiet_notes) == {r.note_str for r in loud_notes.records}
    assert "string_acoustic_040-104-100" not in quiet_notes and "string_acoustic_040-100-100" in quiet_notes
    for record in loud_notes.records:
        ratio = np.abs(sf.read(record.audio_path)[0]).max() / np.abs(sf.read(quiet_notes[record.note_str].audio_path)[0]).max()
        assert ratio == pytest.approx(5.0, rel=0.05)
    manifest = json.loads((loud / "manifest.json").read_text())
    assert "skipped" in json.dumps(manifest)
    with pytest.raises(ConfigError, match="gain"):
        plan_items(NSynthBuildConfig(**{**config.__dict__, "gain": 0.0}))
