"""orGAN inference, evaluation and command line: lengths, windows and seams, the streamed roll,
instrument substitution, errors, and the real `render` / `evaluate render` / `train render`
commands on real files (tiny randomly initialised models, a tiny built dataset)."""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch
from cli_checks import assert_clean_failure
from typer.testing import CliRunner

from orchestrion.checkpoints import CheckpointError, load_checkpoint, read_training_checkpoint, save_checkpoint
from orchestrion.cli import app
from orchestrion.errors import ConfigError, EmptyScoreError, MidiReadError
from orchestrion.symbolic import DrumTrackWarning, InstrumentVocabulary, score_to_pianoroll
from orchestrion.systems.organ import get_preset
from orchestrion.systems.organ.infer import RenderModel, render_score
from orchestrion.systems.organ.discriminator import CLASSIFIER_WEIGHTS
from orchestrion.systems.organ.gan import OrganModel
from orchestrion.systems.organ.presets import OrganConfig
from orchestrion.systems.organ.tracks import (
    RenderWarning,
    StreamingRoll,
    substitute_slot,
    trained_slots_of,
)
from orchestrion.audio.blocks import griffin_lim_blocks
from orchestrion.systems.organ.windows import WindowPlan

SR, HOP = 16000, 256
FRAME_RATE = SR / HOP
VOCABULARY = InstrumentVocabulary.default()
runner = CliRunner()


def tiny_config(**overrides):
    return get_preset("cpu", base_width=4, discriminator_width=0.125, **overrides)


def make_score(
    parts: list[tuple[int, int]], seconds: float, held: bool = False, drums: bool = False
) -> pretty_midi.PrettyMIDI:
    """Parts of (GM program, base pitch): half-second notes stepping up, or one held note."""
    score = pretty_midi.PrettyMIDI()
    for program, base in parts:
        inst = pretty_midi.Instrument(
            program=program, name=pretty_midi.program_to_instrument_name(program)
        )
        if held:
            inst.notes.append(pretty_midi.Note(90, base, 0.0, seconds))
        else:
            for k in range(int(math.ceil(seconds / 0.5))):
                inst.notes.append(
                    pretty_midi.Note(80, base + k % 5, 0.5 * k, min(0.5 * k + 0.5, seconds))
                )
        score.instruments.append(inst)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True, name="Kit")
        kit.notes = [pretty_midi.Note(100, 36, 0.5 * k, 0.5 * k + 0.1) for k in range(4)]
        score.instruments.append(kit)
    return score


def write_score(path: Path, score: pretty_midi.PrettyMIDI) -> Path:
    score.write(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_model() -> RenderModel:
    torch.manual_seed(0)
    return RenderModel.from_config(tiny_config())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random render model saved as a real checkpoint folder."""
    from orchestrion.systems.organ import OrganModel

    torch.manual_seed(0)
    config = tiny_config()
    network = OrganModel.from_config(config)
    folder = tmp_path_factory.mktemp("models") / "tiny-render"
    return save_checkpoint(
        folder, "render", config.to_dict(), network.state_dict(), "# tiny render model\n"
    )


# -- rendering -------------------------------------------------------------------------


def test_render_has_the_score_length_plus_tail_and_is_finite_and_audible(tiny_model):
    score = make_score([(40, 67), (42, 48)], 3.0)
    result = render_score(score, tiny_model, n_iter=8)
    assert result.sample_rate == SR
    assert len(result.audio) == round((3.0 + 0.5) * SR)  # score end + default 0.5 s tail
    assert result.audio.dtype == np.float32 and np.isfinite(result.audio).all()
    assert np.sqrt(np.mean(result.audio**2)) > 0
    assert result.spectrogram.shape == (513, 1 + len(result.audio) // HOP)
    quieter = render_score(score, tiny_model, n_iter=8, noise_subtraction=True)
    assert np.sqrt(np.mean(quieter.audio**2)) < np.sqrt(np.mean(result.audio**2))
    resampled = render_score(score, tiny_model, n_iter=0, sample_rate=22050, tail_s=0.25)
    assert resampled.sample_rate == 22050
    assert abs(len(resampled.audio) - 3.25 * 22050) <= 22050 / FRAME_RATE  # within a frame


def test_render_is_reproducible_and_independent_of_worker_threads():
    noisy = RenderModel.from_config(tiny_config(), deterministic=False)  # seeded dropout draws
    score = make_score([(40, 67), (73, 72)], 5.0)
    one = render_score(score, noisy, n_iter=4, seed=3, workers=1)
    two = render_score(score, noisy, n_iter=4, seed=3, workers=2)
    np.testing.assert_array_equal(one.audio, two.audio)
    assert torch.get_num_threads() >= 1  # restored after the threaded section


def test_dropout_is_off_by_default_and_its_noise_follows_the_seed(tiny_model):
    score = make_score([(40, 67)], 2.0)
    assert tiny_model.deterministic
    spectrograms = [render_score(score, tiny_model, n_iter=0, seed=s).spectrogram for s in (1, 2)]
    np.testing.assert_array_equal(*spectrograms)
    noisy = RenderModel.from_config(tiny_config(), deterministic=False)
    noisy.load_state_dict(tiny_model.state_dict())
    drawn = [render_score(score, noisy, n_iter=0, seed=s).spectrogram for s in (1, 2)]
    assert np.abs(drawn[0] - drawn[1]).max() > 0  # the dropout draws follow the seed


def test_windowed_render_equals_whole_render_where_windows_overlap_enough():
    """Dropout off, a U-Net of depth 3 (receptive field well inside the dropped margins),
    window hop a multiple of 2**depth: the windows reproduce the one-pass render."""
    torch.manual_seed(0)
    model = RenderModel.from_config(tiny_config(depth=3), deterministic=True)
    score = make_score([(40, 67), (42, 48), (73, 72)], 12.0)
    whole = render_score(score, model, window_s=20.0, n_iter=0, noise_subtraction=False)
    windowed = render_score(
        score,
        model,
        window_s=255 * HOP / SR,
        overlap_s=128 / FRAME_RATE,
        n_iter=0,
        noise_subtraction=False,
    )
    assert WindowPlan.build(whole.spectrogram.shape[1], 256, 128).count > 3
    np.testing.assert_allclose(windowed.spectrogram, whole.spectrogram, atol=1e-5)


@pytest.mark.parametrize("chunk_s", [2.0, 10.0])
def test_default_window_is_eight_seconds_or_the_training_chunk_if_longer(monkeypatch, chunk_s):
    from orchestrion.systems.organ import infer

    torch.manual_seed(0)
    model = RenderModel.from_config(tiny_config(chunk_s=chunk_s, chunk_stride_s=1.0))
    planned = []
    real_build = infer.WindowPlan.build
    monkeypatch.setattr(infer.WindowPlan, "build",
                        lambda *args: planned.append(args[1]) or real_build(*args))
    render_score(make_score([(40, 67)], 1.0), model, n_iter=0)
    seconds = max(chunk_s, infer.DEFAULT_WINDOW_S)
    assert planned == [1 + round(seconds * SR) // HOP]


def _fade_vs_interior_db(model: RenderModel, crossfade: str) -> float:
    score = make_score([(40, 67), (42, 48)], 12.0, held=True)
    # with the random model's background subtracted, what is left differs most between windows
    config = model.config  # windows of the training chunk: several fades in 12 s
    result = render_score(score, model, n_iter=0, crossfade=crossfade, noise_subtraction=True,
                          window_s=config.chunk_s)
    energy_db = 10 * np.log10(np.expm1(result.spectrogram).sum(axis=0) + 1e-20)
    plan = WindowPlan.build(
        result.spectrogram.shape[1], config.chunk_frames, round(0.5 * FRAME_RATE)
    )
    centres, interiors = [], []
    for k in range(1, plan.count - 1):
        centre = plan.start(k) + plan.overlap // 2
        centres.append(energy_db[centre - 2 : centre + 2].mean())
        interiors.append(
            energy_db[plan.start(k) + plan.overlap + 8 : plan.start(k) + plan.hop - 8].mean()
        )
    return float(np.mean(centres) - np.mean(interiors))


def test_no_seam_at_window_boundaries_with_the_power_crossfade(tiny_model):
    """A held chord: the level mid-fade equals the level inside the windows (power fade);
    a magnitude-domain fade of the same windows dips (why power is the default)."""
    power = _fade_vs_interior_db(tiny_model, "power")
    magnitude = _fade_vs_interior_db(tiny_model, "magnitude")
    assert abs(power) < 0.3, power
    assert magnitude < power - 0.5, (magnitude, power)


def test_window_weights_are_a_partition_of_unity():
    plan = WindowPlan.build(1000, 126, 31)
    total = np.zeros(plan.padded_frames)
    for k in range(plan.count):
        total[plan.start(k) : plan.start(k) + plan.window] += plan.weights(k)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert plan.padded_frames >= 1000 and plan.count == 1 + math.ceil((1000 - 126) / 95)
    assert WindowPlan.build(50, 126, 31).count == 1


def test_per_track_mode_runs_and_differs_from_the_mix(tiny_model):
    score = make_score([(40, 67), (42, 48)], 3.0)
    mixed = render_score(score, tiny_model, n_iter=0, noise_subtraction=False, per_track=False)
    tracks = render_score(score, tiny_model, n_iter=0, noise_subtraction=False)
    assert tracks.audio.shape == mixed.audio.shape and np.isfinite(tracks.audio).all()
    assert not np.allclose(tracks.spectrogram, mixed.spectrogram)
    solo = make_score([(40, 67)], 3.0)  # one slot: per-track is the same render
    np.testing.assert_array_equal(
        render_score(solo, tiny_model, n_iter=0).spectrogram,
        render_score(solo, tiny_model, n_iter=0, per_track=False).spectrogram,
    )


def test_streamed_roll_equals_the_whole_roll():
    """Random notes with re-strikes, overlaps and sub-frame notes, cut anywhere."""
    rng = np.random.default_rng(0)
    score = pretty_midi.PrettyMIDI()
    tracks = []
    for program in (40, 71, 60):
        inst = pretty_midi.Instrument(program=program)
        t = 0.0
        for _ in range(80):
            duration = float(rng.choice([0.004, 0.012, 0.03, 0.1, 0.4]))
            inst.notes.append(
                pretty_midi.Note(
                    int(rng.integers(1, 128)), int(rng.integers(60, 64)), t, t + duration
                )
            )
            t += float(rng.choice([0.0, 0.006, 0.016, duration, 0.1]))
        score.instruments.append(inst)
        tracks.append((VOCABULARY.slot_for_program(program).index, inst))
    total = int(score.get_end_time() * FRAME_RATE) + 5
    roll, onsets = score_to_pianoroll(
        score, FRAME_RATE, mode="velocity", onsets=True, n_frames=total + 10
    )
    stream = StreamingRoll(tracks, FRAME_RATE, VOCABULARY)
    cuts = [(0, total), (17, 230), (100, 101)] + [
        tuple(sorted(rng.choice(total, 2, replace=False))) for _ in range(20)
    ]
    for first, stop in cuts:
        part_roll, part_onsets = stream.frames(int(first), int(stop))
        np.testing.assert_array_equal(part_roll, roll[..., first:stop])
        np.testing.assert_array_equal(part_onsets, onsets[..., first:stop])


@pytest.mark.parametrize("init", ["random", "vocoder"])
def test_griffin_lim_blocks_match_one_call_without_a_seam(init):
    from orchestrion.audio.phase import griffin_lim, spectral_convergence
    from orchestrion.audio.spectral import Stft

    t = np.arange(SR * 12) / SR
    pitch = 220 * 2 ** (np.floor(t * 2) % 7 / 12)  # a note every half second
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / SR) / k for k in range(1, 6)).astype(
        np.float32
    )
    stft = Stft(1024, HOP)
    target = stft(torch.from_numpy(wave)).abs()
    length = len(wave)
    one = griffin_lim(
        target, 1024, HOP, 16, init=init, length=length, generator=torch.Generator().manual_seed(0)
    )
    blocks = griffin_lim_blocks(
        target,
        1024,
        HOP,
        length,
        16,
        torch.Generator().manual_seed(0),
        block_frames=250,
        overlap_frames=63,
        init=init,
    )
    assert blocks.shape == (length,)
    estimates = {"one": stft(one).abs(), "blocks": stft(torch.from_numpy(blocks)).abs()}
    sc = {name: float(spectral_convergence(target, e)) for name, e in estimates.items()}
    assert sc["blocks"] < sc["one"] + 0.05, sc
    level_db = {
        name: (10 * torch.log10(e.square().sum(0) / target.square().sum(0))).numpy()
        for name, e in estimates.items()
    }
    assert np.abs(level_db["blocks"]).mean() < np.abs(level_db["one"]).mean() + 0.1
    n_frames = target.shape[1]  # seams where the blocks (250 frames, overlap 63) meet
    count = math.ceil((n_frames - 63) / (250 - 63))
    core = math.ceil((n_frames - 63) / count)
    for seam in [j * core + 31 for j in range(1, count)]:  # a single call errs as much here
        near = np.abs(level_db["blocks"][seam - 16 : seam + 16])
        assert near.mean() < 0.5 and near.max() < 2.0, (seam, near.mean(), near.max())


# -- instruments -----------------------------------------------------------------------


def test_drums_are_skipped_with_a_warning(tiny_model):
    score = make_score([(40, 67)], 2.0, drums=True)
    with pytest.warns(DrumTrackWarning):
        result = render_score(score, tiny_model, n_iter=0)
    assert any("drum" in message for message in result.warnings)
    assert len(result.audio) == round(2.5 * SR)


def test_an_unlearned_slot_is_played_by_a_named_substitute(tiny_model):
    score = make_score([(0, 55)], 2.0)  # piano: not a URMP slot, never learned by default
    with pytest.warns(RenderWarning, match="piano.*cello"):
        result = render_score(score, tiny_model, n_iter=0)
    assert any("never learned" in m and "cello" in m for m in result.warnings)


def test_substitutes_follow_register_then_family():
    slot = VOCABULARY.by_name
    urmp = [s.index for s in VOCABULARY if s.is_urmp]
    assert substitute_slot(slot("voice"), [67, 72, 76], urmp, VOCABULARY).name == "clarinet"
    assert substitute_slot(slot("plucked strings"), [40, 45, 52], urmp, VOCABULARY).name == "cello"
    assert substitute_slot(slot("piano"), [84, 88, 96], urmp, VOCABULARY).name == "violin"
    only = [slot("violin").index, slot("flute").index]
    assert substitute_slot(slot("cello"), [45, 52, 57, 60], only, VOCABULARY).name == "violin"


def test_trained_slots_come_from_config_then_card_then_urmp():
    urmp = tuple(s.index for s in VOCABULARY if s.is_urmp)
    assert trained_slots_of({}, "", VOCABULARY) == urmp
    assert trained_slots_of({}, "- trained slots: violin, `flute`\n", VOCABULARY) == (0, 4)
    assert trained_slots_of(
        {"trained_slots": ["piano", 2]}, "trained slots: violin", VOCABULARY
    ) == (2, 13)


def test_a_checkpoint_listing_trained_slots_substitutes_the_others(checkpoint, tmp_path):
    loaded = load_checkpoint(checkpoint, "render")
    folder = tmp_path / "two-slots"
    save_checkpoint(folder, "render", {**loaded.config, "trained_slots": ["violin", "flute"]}, loaded.state_dict,
                    loaded.card)
    model = RenderModel.from_pretrained(folder)
    assert model.trained_slots == (0, 4)
    with pytest.warns(RenderWarning, match="cello.*violin"):
        render_score(make_score([(42, 57)], 1.0), model, n_iter=0)


# -- errors ----------------------------------------------------------------------------


def test_empty_and_corrupt_scores_raise_our_errors(tiny_model, tmp_path):
    with pytest.raises(EmptyScoreError):
        render_score(pretty_midi.PrettyMIDI(), tiny_model)
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(EmptyScoreError):
        render_score(empty, tiny_model)
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x00\x90")
    with pytest.raises(MidiReadError):
        render_score(corrupt, tiny_model)


def test_a_checkpoint_of_another_system_is_refused(checkpoint, tmp_path):
    from orchestrion.checkpoints import load_checkpoint

    loaded = load_checkpoint(checkpoint, "render")
    other = save_checkpoint(tmp_path / "note-model", "note", loaded.config, loaded.state_dict, "")
    with pytest.raises(CheckpointError, match="`note` model"):
        RenderModel.from_pretrained(other)
    with pytest.raises(CheckpointError):
        RenderModel.from_pretrained(tmp_path / "no-such-model")


# -- command line ----------------------------------------------------------------------


def test_cli_render_writes_a_wav(checkpoint, tmp_path):
    midi = write_score(tmp_path / "duet.mid", make_score([(40, 67), (0, 48)], 2.0))
    out = tmp_path / "out" / "duet.wav"
    result = runner.invoke(
        app,
        [
            "render",
            str(midi),
            "-o",
            str(out),
            "--model",
            str(checkpoint),
            "--iters",
            "4",
            "--sr",
            "22050",
            "--seed",
            "1",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    wave, rate = sf.read(out)
    assert rate == 22050 and abs(len(wave) - 2.5 * 22050) <= 22050 / FRAME_RATE
    assert "wrote" in result.output and "warning:" in result.output and "piano" in result.output


def test_cli_render_renders_each_part_alone_unless_told_mix(checkpoint, tmp_path):
    score = make_score([(40, 67), (42, 48)], 2.0)
    midi = write_score(tmp_path / "duet.mid", score)
    waves = {}
    for flag in ("--per-track", "--mix", None):  # None: the default
        out = tmp_path / f"{flag or 'default'}.wav"
        args = ["render", str(midi), "-o", str(out), "--model", str(checkpoint), "--iters", "2",
                "--no-noise-subtraction", "-q"]
        result = runner.invoke(app, args + ([flag] if flag else []))
        assert result.exit_code == 0, result.output
        waves[flag] = sf.read(out, dtype="float32")[0]
    np.testing.assert_array_equal(waves[None], waves["--per-track"])
    lsb = 2.0**-15  # 16-bit WAV
    assert np.abs(waves["--per-track"] - waves["--mix"]).max() > 20 * lsb
    direct = render_score(score, RenderModel.from_pretrained(checkpoint), n_iter=2, noise_subtraction=False)
    np.testing.assert_allclose(direct.audio, waves["--per-track"], atol=2 * lsb)  # the API's default too


def test_cli_render_defaults_are_the_render_functions():
    from orchestrion.audio import blocks
    from orchestrion.systems.organ import commands, infer

    assert commands.DEFAULT_MODEL == infer.DEFAULT_MODEL
    assert commands.DEFAULT_ITERS == infer.DEFAULT_N_ITER
    assert commands.DEFAULT_PHASE_INIT == infer.DEFAULT_PHASE_INIT
    assert commands.PHASE_INITS == blocks.PHASE_INITS


def test_phase_init_is_checked_and_vocoder_by_default(tiny_model, checkpoint, tmp_path):
    score = make_score([(40, 67)], 1.5)
    with pytest.raises(ConfigError, match="phase_init must be one of vocoder, random"):
        render_score(score, tiny_model, phase_init="zeros")
    default = render_score(score, tiny_model, n_iter=2, seed=1)
    vocoder = render_score(score, tiny_model, n_iter=2, seed=1, phase_init="vocoder")
    random = render_score(score, tiny_model, n_iter=2, seed=1, phase_init="random")
    np.testing.assert_array_equal(default.audio, vocoder.audio)
    assert np.abs(default.audio - random.audio).max() > 1e-3 * np.abs(default.audio).max()
    midi = write_score(tmp_path / "solo.mid", score)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["render", str(midi), "-o", str(out_dir / "x.wav"), "--model", str(checkpoint)]
    result = runner.invoke(app, [*args, "--phase-init", "zeros", "-q"])
    assert_clean_failure(result, out_dir, "--phase-init must be one of vocoder, random")


def test_cli_render_normalize_scales_the_model_level_to_full_scale(checkpoint, tmp_path):
    midi = write_score(tmp_path / "solo.mid", make_score([(40, 67)], 1.5))
    waves = {}
    for flag in ("--model-level", "--normalize"):
        out = tmp_path / f"{flag.strip('-')}.wav"
        args = ["render", str(midi), "-o", str(out), "--model", str(checkpoint), "--iters", "2"]
        result = runner.invoke(app, [*args, "-q", flag])
        assert result.exit_code == 0, result.output
        waves[flag] = sf.read(out, dtype="float32")[0]
    level, loud = waves["--model-level"], waves["--normalize"]
    assert np.abs(loud).max() == pytest.approx(0.99, abs=2.0**-15)
    scale = 0.99 / np.abs(level).max()
    np.testing.assert_allclose(loud, level * scale, atol=2 * (scale + 1) * 2.0**-15)  # 16-bit steps


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "corrupt",
        "empty",
        "drums-only",
        "other-system",
        "no-model",
        "bad-suffix",
        "bad-rate",
        "not-a-snapshot",
    ],
)
def test_cli_render_fails_cleanly(case, checkpoint, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    midi, model = inputs / "score.mid", str(checkpoint)
    if case == "corrupt":
        midi.write_bytes(b"not a midi file at all")
    elif case == "empty":
        pretty_midi.PrettyMIDI().write(str(midi))
    elif case == "drums-only":
        score = make_score([], 1.0, drums=True)
        score.write(str(midi))
    else:
        write_score(midi, make_score([(40, 67)], 1.0))
    if case == "missing":
        midi = inputs / "missing.mid"
    if case == "other-system":
        from orchestrion.checkpoints import load_checkpoint

        loaded = load_checkpoint(checkpoint, "render")
        model = str(
            save_checkpoint(inputs / "note-model", "note", loaded.config, loaded.state_dict, "")
        )
    if case == "no-model":
        model = str(tmp_path / "nowhere")
    if case == "not-a-snapshot":
        model = str(inputs / "run.ckpt")
        (inputs / "run.ckpt").write_bytes(b"not a lightning checkpoint")
    out_dir = tmp_path / "out"
    output = out_dir / ("x.mp4" if case == "bad-suffix" else "x.wav")
    extra = ["--sr", "100"] if case == "bad-rate" else []
    result = runner.invoke(
        app, ["render", str(midi), "-o", str(output), "--model", model, "-q", *extra]
    )
    needle = {
        "missing": "missing.mid",
        "corrupt": "score.mid",
        "empty": "score.mid",
        "drums-only": "drum",
        "other-system": "note",
        "no-model": "nowhere",
        "bad-suffix": ".mp4",
        "bad-rate": "sample rate",
        "not-a-snapshot": "not a training checkpoint",
    }[case]
    assert_clean_failure(result, out_dir, needle)


# -- evaluation and training on a tiny built dataset -------------------------------------


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two chorales rendered in URMP format at 16 kHz; the second moved to the test split."""
    from orchestrion.data.build_urmp import build_urmp

    out = tmp_path_factory.mktemp("urmp")
    build_urmp(out, scores="music21:bach", limit=2, sample_rate=16000, progress=False)
    splits_path = out / "splits.json"
    splits = json.loads(splits_path.read_text())
    pieces = sorted(p for ids in splits.values() for p in ids)
    splits_path.write_text(json.dumps({"train": pieces[:1], "valid": [], "test": pieces[1:]}))
    return out


def test_evaluate_render_on_a_tiny_dataset(checkpoint, tiny_dataset, tmp_path):
    from orchestrion.systems.organ.evaluate import evaluate_render

    png = tmp_path / "compare.png"
    model = RenderModel.from_pretrained(checkpoint)  # its classifier is read from the folder alone
    assert not hasattr(model.network, "discriminator")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_render(
            model, tiny_dataset, split="test", max_chunks=6, n_iter=4, out_png=png
        )
    row = report.table63
    for value in (
        row.ms_ssim,
        row.swd,
        row.l1,
        report.audio_mean()["ms_ssim"],
        report.audio_mean()["mr_stft"],
        report.audio_mean()["lsd"],
    ):
        assert math.isfinite(value)
    assert 0 < report.n_chunks <= 6 and len(report.pieces) == 1 and report.split == "test"
    assert png.stat().st_size > 0 and png.read_bytes()[:4] == b"\x89PNG"
    text = report.format()
    assert "MS-SSIM" in text and "MR-STFT" in text and report.pieces[0].piece_id in text
    assert report.lobes_png is None and "lobes" not in text  # the tiny model has no learned lobes
    # the generated chunks' classifier figures in full: the row's macro accuracy, split by the
    # number of instruments in a chunk, every chunk counted once
    generated = report.generated_classifier
    assert generated is not None and generated.macro_accuracy == pytest.approx(row.macro_acc)
    assert sum(n for _, n in generated.macro_by_count.values()) == report.n_chunks
    assert f"generated  {generated.format_macro_by_count()}" in text


def test_evaluate_render_draws_the_learned_lobes_of_a_model_that_has_them(tiny_model, tiny_dataset, tmp_path):
    from orchestrion.systems.organ.evaluate import evaluate_render, save_lobes_png

    torch.manual_seed(0)
    learned = RenderModel.from_config(tiny_config(output_prior="harmonic", learned_partials=True))
    with torch.no_grad():
        head = learned.network.harmonic_output
        louder = torch.zeros(16, *head.lobes.shape)
        louder[0, 60:72] = 1.0  # violin, one octave louder
        head.lobe_corrections.copy_(louder.flatten(1)[:, head.reach])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_render(learned, tiny_dataset, split="test", max_chunks=2, n_iter=2,
                                 out_png=tmp_path / "compare.png")
    assert report.lobes_png == tmp_path / "compare-lobes.png"
    assert report.lobes_png.read_bytes()[:4] == b"\x89PNG" and str(report.lobes_png) in report.format()
    with pytest.raises(ConfigError, match="no learned partial lobes"):
        save_lobes_png(tmp_path / "none.png", tiny_model)
    assert not (tmp_path / "none.png").exists()


def test_evaluate_render_error_budget_scores_each_piece_and_draws_the_mean(tiny_model, tiny_dataset, tmp_path):
    from orchestrion.systems.organ.evaluate import evaluate_render

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_render(tiny_model, tiny_dataset, split="test", max_chunks=2, n_iter=2,
                                 out_png=tmp_path / "compare.png", budget=True)
    piece = report.pieces[0]
    assert piece.budget is not None
    assert piece.budget.ms_ssim == pytest.approx(piece.comparison.ms_ssim, abs=1e-6)
    assert {region.group for region in piece.budget.regions} == {"level", "band", "partials", "time"}
    onsets = next(r for r in piece.budget.regions if r.group == "time" and r.name != "rest")
    assert 0 < onsets.share < 1  # the score's notes were found
    assert report.budget_png == tmp_path / "compare-budget.png"
    assert report.budget_png.read_bytes()[:4] == b"\x89PNG"
    assert "error budget" in report.format() and "between partials" in report.format()


def test_evaluate_render_scores_the_wav_that_render_writes(
    tiny_model, tiny_dataset, tmp_path, monkeypatch
):
    """The audio figures equal the protocol's on the files: AuMix vs the WAV `render` saves.

    The render is made quiet (peaks of a few 16-bit steps), where the float audio and the
    written file score far apart.
    """
    from dataclasses import replace

    from orchestrion.audio.io import save_audio
    from orchestrion.metrics import compare_files
    from orchestrion.systems.organ import evaluate

    renders = []

    def quiet_render(*args, **kwargs):
        result = render_score(*args, **kwargs)
        quiet = result.audio * np.float32(4 / 32768 / max(np.abs(result.audio).max(), 1e-9))
        renders.append(replace(result, audio=quiet))
        return renders[-1]

    monkeypatch.setattr(evaluate, "render_score", quiet_render)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate.evaluate_render(
            tiny_model, tiny_dataset, split="test", max_chunks=2, n_iter=4
        )
    piece = report.pieces[0]
    written = save_audio(tmp_path / "ours.wav", renders[0].audio, renders[0].sample_rate)
    on_files = compare_files(next((tiny_dataset / piece.piece_id).glob("AuMix_*.wav")), written)
    assert piece.comparison.mr_stft == pytest.approx(on_files.mr_stft, rel=1e-4)
    assert piece.comparison.ms_ssim == pytest.approx(on_files.ms_ssim, abs=1e-4)
    assert piece.comparison.lsd == pytest.approx(on_files.lsd, rel=1e-4)


def test_evaluate_falls_back_to_valid_and_says_so(tiny_model, tiny_dataset, tmp_path):
    from orchestrion.systems.organ.evaluate import evaluate_render

    data = tmp_path / "data"
    data.symlink_to(tiny_dataset, target_is_directory=True)
    splits = json.loads((tiny_dataset / "splits.json").read_text())
    local = tmp_path / "copy"
    local.mkdir()
    for piece in splits["train"] + splits["test"]:
        (local / piece).symlink_to(tiny_dataset / piece, target_is_directory=True)
    (local / "splits.json").write_text(
        json.dumps({"train": splits["train"], "valid": splits["test"], "test": []})
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_render(tiny_model, local, split="test", max_chunks=2, n_iter=0)
    assert report.split == "valid" and "empty" in report.note and "valid" in report.format()


def _steps_in_card(model_dir: Path) -> int:
    match = re.search(r"trained: ([\d,]+) steps", (model_dir / "MODEL_CARD.md").read_text())
    assert match, (model_dir / "MODEL_CARD.md").read_text()
    return int(match.group(1).replace(",", ""))


@pytest.mark.slow
def test_cli_train_render_runs_and_resumes(tiny_dataset, checkpoint, tmp_path):
    run = tmp_path / "run"
    common = [
        "train",
        "render",
        "--data",
        str(tiny_dataset),
        "--out",
        str(run),
        "-q",
        "--seed",
        "1",
        "--set",
        "base_width=4",
        "--set",
        "discriminator_width=0.125",
        "--set",
        "batch_size=2",
    ]
    first = runner.invoke(app, [*common, "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    assert (run / "model" / "model.safetensors").is_file() and (
        run / "checkpoints" / "last.ckpt"
    ).is_file()
    assert str(run / "model") in first.output
    before = _steps_in_card(run / "model")
    for other in (["--set", "ema_decay=0.9"], ["--set", "base_width=8"]):  # another state layout, another model
        refused = runner.invoke(app, [*common, "--max-steps", "3", "--resume", *other])
        assert refused.exit_code == 1 and other[1].split("=")[0] in refused.output, refused.output
        assert len(refused.output.strip().splitlines()) == 1
    resumed = runner.invoke(app, [*common, "--max-steps", "3", "--resume", "--set", "learning_rate=1e-4"])
    assert resumed.exit_code == 0, resumed.output
    assert _steps_in_card(run / "model") > before == 2
    card = (run / "model" / "MODEL_CARD.md").read_text()
    assert f"resumed from `{run / 'checkpoints' / 'last.ckpt'}` at step 2 " in card, card
    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "render",
            "--model",
            str(run / "model"),
            "--data",
            str(tiny_dataset),
            "--max-chunks",
            "2",
            "--iters",
            "2",
            "--phase-init",
            "random",
            "-q",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "Table 6.3" in evaluated.output and "mean" in evaluated.output
    assert "each part rendered alone" in evaluated.output
    wrong = runner.invoke(app, ["evaluate", "render", "--model", str(run / "model"), "--data",
                                str(tiny_dataset), "--phase-init", "zeros", "-q"])
    assert wrong.exit_code == 1 and len(wrong.output.strip().splitlines()) == 1
    assert "--phase-init must be one of vocoder, random" in wrong.output
    # a new run that starts from the exported weights says so in its card
    common[common.index("--out") + 1] = str(tmp_path / "continued")
    continued = runner.invoke(app, [*common, "--max-steps", "1", "--init-from", str(run / "model")])
    assert continued.exit_code == 0, continued.output
    card = (tmp_path / "continued" / "model" / "MODEL_CARD.md").read_text()
    assert f"started from: `{run / 'model'}` (trained: {_steps_in_card(run / 'model')} steps" in card


def test_cli_train_render_rejects_bad_settings(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "render",
            "--data",
            str(tiny_dataset),
            "--out",
            str(run),
            "--max-steps",
            "1",
            "-q",
            "--set",
            "no_such_field=3",
        ],
    )
    assert_clean_failure(result, run, "no_such_field")
    result = runner.invoke(
        app, ["train", "render", "--data", str(tmp_path / "nowhere"), "--out", str(run)]
    )
    assert_clean_failure(result, run, "nowhere")
    result = runner.invoke(
        app,
        ["train", "render", "--data", str(tiny_dataset), "--out", str(run), "--max-steps", "1",
         "-q", "--set", "base_width=4", "--init-from", str(tmp_path / "no-model")],
    )
    assert_clean_failure(result, run, "no-model")


def test_cli_train_render_refuses_weights_of_another_config(tiny_dataset, checkpoint, tmp_path):
    run = tmp_path / "run"
    result = _continue_for_one_step(tiny_dataset, checkpoint, run, "harmonics=6", "l1_weight=3", "dropout=0")
    assert_clean_failure(result, run, "--init-from", "differs", "harmonics")
    assert "l1_weight" not in result.output and "dropout" not in result.output  # these may change


def _train_tiny(tiny_dataset, run, *arguments: str):
    """`train render` quietly into `run` with the tiny model's sizes and more `arguments`."""
    return runner.invoke(
        app,
        ["train", "render", "--data", str(tiny_dataset), "--out", str(run), "-q",
         "--set", "base_width=4", "--set", "discriminator_width=0.125", *arguments],
    )


def _saved_untrained(folder: Path, config: OrganConfig) -> Path:
    """A model folder holding `config`'s model as built (untrained)."""
    return save_checkpoint(folder, "render", config.to_dict(), OrganModel.from_config(config).state_dict(), "# tiny\n")


def _continue_for_one_step(tiny_dataset, checkpoint, run, *settings: str):
    """`train render --init-from checkpoint` for one step with the tiny model's sizes and `settings`."""
    sets = [arg for setting in settings for arg in ("--set", setting)]
    return _train_tiny(tiny_dataset, run, "--max-steps", "1", *sets, "--init-from", str(checkpoint))


def test_cli_train_render_continues_under_new_loss_weights_with_every_weight(tiny_dataset, checkpoint, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    result = _continue_for_one_step(tiny_dataset, checkpoint, run, "l1_weight=3",
                                    "spectral_convergence_weight=2", "regime=single",
                                    "log_magnitude_weight=2", "dropout=0")
    assert result.exit_code == 0, result.output
    config = load_checkpoint(run / "model", "render").config
    assert (config["dropout"], config["log_magnitude_weight"]) == (0, 2)
    before = load_file(checkpoint / "model.safetensors")
    after = load_file(run / "model" / "model.safetensors")
    assert set(before) == set(after)
    assert all(torch.allclose(before[k].float(), after[k].float(), atol=1e-3) for k in before
               if k.endswith("weight") and "norm" not in k)


def test_cli_train_render_continues_under_a_new_classifier_shape(tiny_dataset, checkpoint, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    result = _continue_for_one_step(tiny_dataset, checkpoint, run, "classifier_pooling=global")
    assert result.exit_code == 0, result.output
    before = load_file(checkpoint / "model.safetensors")
    after = load_file(run / "model" / "model.safetensors")
    # one Adam step moves a weight by about the learning rate (2e-4); a fresh init by far more
    generator = [k for k in before if k.startswith("generator.") and k.endswith("conv.weight")]
    assert generator and all(torch.allclose(before[k], after[k], atol=1e-3) for k in generator)
    # the time-pooled classifier reads every frequency row; the global one only channels
    assert before["discriminator.classifier.weight"].shape != after["discriminator.classifier.weight"].shape



def test_cli_train_render_continues_a_model_with_learned_lobes_added(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    from orchestrion.systems.organ.harmonic_output import partial_lobe_templates

    torch.manual_seed(0)
    config = tiny_config(output_prior="harmonic")
    start = _saved_untrained(tmp_path / "harmonic", config)
    run = tmp_path / "run"
    result = _continue_for_one_step(tiny_dataset, start, run, "learned_partials=true", "learning_rate=1e-3",
                                    "partials_lr_factor=10")
    assert result.exit_code == 0, result.output
    before = load_file(start / "model.safetensors")
    after = load_file(run / "model" / "model.safetensors")
    assert set(after) - set(before) == {"harmonic_output.lobe_corrections"}
    corrections = after["harmonic_output.lobe_corrections"].float()
    within_reach = int((partial_lobe_templates(config.sample_rate, config.n_fft) > 0).sum())
    assert corrections.shape == (16, within_reach) and corrections.abs().max() > 0
    optimiser = read_training_checkpoint(run / "checkpoints" / "last.ckpt")
    groups = optimiser["optimizer_states"][0]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2])  # the lobes at 10x
    rendered = runner.invoke(app, ["render", str(write_score(tmp_path / "solo.mid", make_score([(40, 67)], 1.0))),
                                   "-o", str(tmp_path / "solo.wav"), "--model", str(run / "model"), "-q"])
    assert rendered.exit_code == 0, rendered.output
    # the way back would drop learned weights: refused
    back = _continue_for_one_step(tiny_dataset, run / "model", tmp_path / "back", "learned_partials=false")
    assert_clean_failure(back, tmp_path / "back", "differs", "learned_partials")


def test_cli_train_render_continues_a_harmonic_model_with_a_note_bank(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    config = tiny_config(output_prior="harmonic", learned_partials=True, note_age_s=[0.1])
    start = _saved_untrained(tmp_path / "harmonic", config)
    run = tmp_path / "run"
    result = _continue_for_one_step(tiny_dataset, start, run, "output_prior=bank", "learned_partials=false",
                                    "bank_age_s=0.5")
    assert result.exit_code == 0, result.output
    saved = load_checkpoint(run / "model", "render").config
    before, after = load_file(start / "model.safetensors"), load_file(run / "model" / "model.safetensors")
    assert saved["output_prior"] == "bank" and saved["bank_keys"] > 0
    assert not any(name.startswith("harmonic_output.") for name in after)
    assert after["note_bank.mean"].shape == (saved["bank_keys"], config.n_bins)
    # the generator carried over: its first layer as it was (one small step away at most)
    first = "generator.encoder.0.conv.weight"
    assert torch.allclose(after[first].float(), before[first].float(), atol=1e-2)
    assert "note bank of" in (run / "model" / "MODEL_CARD.md").read_text()
    score = write_score(tmp_path / "duo.mid", make_score([(40, 67), (42, 48)], 3.0))
    rendered = runner.invoke(app, ["render", str(score), "-o", str(tmp_path / "duo.wav"), "--model",
                                   str(run / "model"), "-q"])
    assert rendered.exit_code == 0, rendered.output
    audio, rate = sf.read(tmp_path / "duo.wav")
    assert rate == config.sample_rate and np.isfinite(audio).all() and np.abs(audio).max() > 1e-4
    from orchestrion.systems.organ.evaluate import evaluate_render

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_render(run / "model", tiny_dataset, split="test", max_chunks=2, n_iter=2,
                                 out_png=tmp_path / "bank.png")
    assert math.isfinite(report.audio_mean()["ms_ssim"]) and report.lobes_png is None
    # the way back would drop the bank: refused
    back = _continue_for_one_step(tiny_dataset, run / "model", tmp_path / "back", "output_prior=harmonic")
    assert_clean_failure(back, tmp_path / "back", "differs", "output_prior")
    # another estimate floor: the bank is re-floored, the cells the old floor held go down
    lower = _continue_for_one_step(tiny_dataset, run / "model", tmp_path / "lower", "bank_floor_db=-80")
    assert lower.exit_code == 0, lower.output
    floored = load_file(tmp_path / "lower" / "model" / "model.safetensors")["note_bank.mean"].float()
    bank_mean = after["note_bank.mean"].float()
    assert float(bank_mean.min()) > math.log(1e-4) - 1.0  # held by the -40 dB floor
    assert float(floored.min()) < float(bank_mean.min()) - 2.0
    assert float(floored.max()) == pytest.approx(float(bank_mean.max()), abs=0.5)
    assert "re-floored from -40 to -80 dB" in (tmp_path / "lower" / "model" / "MODEL_CARD.md").read_text()
    classifier_only = _train_tiny(tiny_dataset, tmp_path / "cls", "--max-steps", "1", "--classifier-only",
                                  "--set", "bank_floor_db=-80", "--init-from", str(run / "model"))
    assert_clean_failure(classifier_only, tmp_path / "cls", "leaves the note bank")


def test_cli_train_render_classifier_only_changes_the_classifier_alone(tiny_dataset, checkpoint, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    result = _train_tiny(tiny_dataset, run, "--max-steps", "3", "--set", "learning_rate=1e-2",
                         "--init-from", str(checkpoint), "--classifier-only",
                         "--set", "classifier_part_sampling=balanced", "--set", "classifier_remix=0.5",
                         "--set", "classifier_part_gain_db=3")
    assert result.exit_code == 0, result.output
    # its settings line names what it trains and how it draws chunks, not the GAN's loss weights
    assert ("; the instrument classifier alone, on real chunks (balanced part counts, 50% of multi-part "
            "chunks remixed across pieces, each part at +-3 dB)") in " ".join(result.output.split())
    assert "loss weights" not in result.output
    before = load_file(checkpoint / "model.safetensors")
    after = load_file(run / "model" / "model.safetensors")
    mine = [k for k in before if k.startswith(CLASSIFIER_WEIGHTS)]
    others = [k for k in before if not k.startswith(CLASSIFIER_WEIGHTS)]
    assert mine and others
    assert all(torch.equal(before[k], after[k]) for k in others)  # generator, patch trunk, BN stats
    assert not torch.allclose(before["discriminator.classifier.weight"], after["discriminator.classifier.weight"])
    card = (run / "model" / "MODEL_CARD.md").read_text()
    assert "3 steps" in card and "the instrument classifier alone" in card
    # resuming it as a full GAN run is refused in one line, the checkpoint kept
    resumed = _train_tiny(tiny_dataset, run, "--max-steps", "4", "--resume")
    assert resumed.exit_code == 1 and "resume it with the flag" in resumed.output, resumed.output
    assert len(resumed.output.strip().splitlines()) == 1
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_cli_train_render_trains_a_classifier_of_voices_in_a_gan_and_alone(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    voices = ("--set", "classifier_network=mel_cnn", "--set", "classifier_pitch_hint=true",
              "--set", "classifier_voices=true", "--set", "classifier_width=0.25")
    gan = _train_tiny(tiny_dataset, tmp_path / "gan", "--max-steps", "2", *voices)
    assert gan.exit_code == 0, gan.output
    alone = _train_tiny(tiny_dataset, tmp_path / "alone", "--max-steps", "2", "--set", "learning_rate=1e-2",
                        "--init-from", str(tmp_path / "gan" / "model"), "--classifier-only", *voices,
                        "--set", "classifier_part_sampling=dense", "--set", "classifier_mute_part=0.5")
    assert alone.exit_code == 0, alone.output
    assert "dense part counts, one part muted in 50% of multi-part chunks" in " ".join(alone.output.split())
    before = load_file(tmp_path / "gan" / "model" / "model.safetensors")
    after = load_file(tmp_path / "alone" / "model" / "model.safetensors")
    voice_block = "discriminator.mel_classifier.blocks.0.0.weight"
    assert not torch.allclose(before[voice_block], after[voice_block])
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith(CLASSIFIER_WEIGHTS))


def test_cli_train_render_follows_the_cosine_schedule_in_both_optimisers(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    result = _train_tiny(tiny_dataset, run, "--max-steps", "4", "--set", "learning_rate=1e-2",
                         "--set", "lr_schedule=cosine", "--set", "lr_final_fraction=0.1")
    assert result.exit_code == 0, result.output
    state = read_training_checkpoint(run / "checkpoints" / "last.ckpt")
    config = OrganConfig.from_dict(load_checkpoint(run / "model", "render").config)
    last_batch = config.learning_rate_at(3 / 4)  # the fourth batch starts three quarters in
    assert last_batch < 0.5 * config.learning_rate
    rates = [group["lr"] for optimizer in state["optimizer_states"] for group in optimizer["param_groups"]]
    assert len(state["optimizer_states"]) == 2 and rates == pytest.approx([last_batch] * len(rates))


def test_cli_train_render_exports_the_generators_moving_average(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    result = _train_tiny(tiny_dataset, run, "--max-steps", "3", "--set", "learning_rate=1e-2",
                         "--set", "ema_decay=0.9")
    assert result.exit_code == 0, result.output
    trained = read_training_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    exported = load_file(run / "model" / "model.safetensors")
    assert int(trained["generator_average.updates"]) == 3
    name = next(k for k in exported if k.startswith("generator.") and k.endswith(".weight"))
    averaged = trained["generator_average." + name.replace(".", "__")]
    assert torch.equal(exported[name], averaged.to(exported[name].dtype))
    assert not torch.allclose(averaged, trained["model." + name])  # the average, not the last weights
    patch = next(k for k in exported if k.startswith("discriminator.") and k.endswith(".weight"))
    assert torch.equal(exported[patch], trained["model." + patch].to(exported[patch].dtype))
    assert "moving average" in (run / "model" / "MODEL_CARD.md").read_text()


def test_cli_train_render_starts_the_moving_average_from_the_init_from_weights(tiny_dataset, checkpoint, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    result = _continue_for_one_step(tiny_dataset, checkpoint, run, "ema_decay=0.99", "learning_rate=1e-2")
    assert result.exit_code == 0, result.output
    start = load_file(checkpoint / "model.safetensors")
    trained = read_training_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    exported = load_file(run / "model" / "model.safetensors")
    name = next(k for k in exported if k.startswith("generator.") and k.endswith(".weight"))
    # the first update keeps a tenth of the start (warm-up decay 1/10), whatever ema_decay is
    expected = 0.1 * start[name].float() + 0.9 * trained["model." + name].float()
    assert torch.allclose(exported[name].float(), expected, atol=1e-3)
    assert not torch.allclose(start[name].float(), trained["model." + name].float(), atol=1e-3)


def test_cli_train_render_init_from_takes_the_models_own_config_under_the_overrides(tiny_dataset, checkpoint, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "render", "--data", str(tiny_dataset), "--out", str(run), "-q",
                                 "--max-steps", "1", "--init-from", str(checkpoint), "--set", "ema_decay=0.5"])
    assert result.exit_code == 0, result.output
    before = load_checkpoint(checkpoint, "render").config
    after = load_checkpoint(run / "model", "render").config
    assert before["base_width"] != get_preset("cpu").base_width  # not the cpu preset's sizes
    assert {k for k in after if after[k] != before.get(k)} == {"ema_decay"}
    # the run says what it trains with: the model's own batch and rate, not the preset's
    assert f"settings: batch {before['batch_size']}, learning rate {before['learning_rate']:g}" in result.output
    # naming a preset compares it with the model, as before
    other = runner.invoke(app, ["train", "render", "--data", str(tiny_dataset), "--out", str(tmp_path / "other"),
                                "-q", "--max-steps", "1", "--preset", "cpu", "--init-from", str(checkpoint)])
    assert_clean_failure(other, tmp_path / "other", "differs", "base_width")


def test_cli_train_render_keeps_snapshots_that_render_like_the_exported_model(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    result = _train_tiny(tiny_dataset, run, "--max-steps", "3", "--set", "learning_rate=1e-2",
                         "--set", "ema_decay=0.9", "--keep-checkpoints", "--checkpoint-minutes", "1e-6")
    assert result.exit_code == 0, result.output
    kept = sorted((run / "checkpoints").glob("step-*.ckpt"))
    assert [p.name for p in kept] == ["step-0000001.ckpt", "step-0000002.ckpt", "step-0000003.ckpt"]  # batches
    midi = write_score(tmp_path / "duet.mid", make_score([(40, 67), (0, 48)], 1.0))
    waves = []
    for model in (run / "model", kept[-1], kept[0]):
        out = tmp_path / f"{len(waves)}.wav"
        rendered = runner.invoke(app, ["render", str(midi), "-o", str(out), "--model", str(model), "--iters", "2", "-q"])
        assert rendered.exit_code == 0, rendered.output
        waves.append(sf.read(out, dtype="float32")[0])
    np.testing.assert_array_equal(waves[0], waves[1])  # the last snapshot is the exported model
    assert np.abs(waves[0] - waves[2]).max() > 1e-3  # an earlier one is another model


def test_cli_train_render_classifier_only_needs_a_model(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    result = _train_tiny(tiny_dataset, run, "--max-steps", "1", "--classifier-only")
    assert_clean_failure(result, run, "--classifier-only", "--init-from")


def test_load_state_into_skips_only_the_named_weights(checkpoint):
    from orchestrion.checkpoints import load_checkpoint, load_state_into
    from orchestrion.systems.organ import OrganModel

    start = load_checkpoint(checkpoint, "render")
    torch.manual_seed(1)
    other_classifier = OrganModel.from_config(tiny_config(classifier_pooling="global"))
    skip = CLASSIFIER_WEIGHTS
    with pytest.raises(CheckpointError, match="do not fit"):
        load_state_into(other_classifier, start)
    fresh = other_classifier.discriminator.classifier.weight.clone()
    load_state_into(other_classifier, start, skip=skip)
    assert torch.equal(other_classifier.discriminator.classifier.weight, fresh)
    state = other_classifier.state_dict()
    assert all(torch.equal(state[k], v.to(state[k].dtype)) for k, v in start.state_dict.items()
               if not k.startswith(skip))
    wider = OrganModel.from_config(get_preset("cpu", base_width=8, discriminator_width=0.125))  # the generator differs: still an error
    with pytest.raises(CheckpointError, match="do not fit"):
        load_state_into(wider, start, skip=skip)


def test_inference_model_renders_what_the_trained_network_renders() -> None:
    """RenderModel folds the BatchNorms and lays the weights out channels-last: same output."""
    torch.manual_seed(3)
    network = OrganModel.from_config(tiny_config(output_prior="harmonic"))
    for norm in (m for m in network.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    trained = copy.deepcopy(network).eval()
    trained.set_inference_dropout(False)
    model = RenderModel(network)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.network.generator.modules())
    roll = torch.zeros(2, 16, 128, 40)
    roll[0, 2, 60, 3:30] = 0.8
    roll[1, 9, 48, 10:] = 0.5
    with torch.no_grad():
        torch.testing.assert_close(model(roll), trained(roll), atol=1e-4, rtol=1e-4)
    # render_score given a network to keep training renders with a folded copy of it
    render_score(make_score([(41, 60)], 1.0), trained, n_iter=0)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trained.generator.modules())
    trained.train()


# -- rendering builds only what renders ----------------------------------------------


def test_importing_inference_loads_no_training_code():
    """`render` builds the generator alone: no Lightning, discriminator, GAN, losses or trainer."""
    import subprocess
    import sys

    training = ["lightning", "orchestrion.systems.organ.discriminator", "orchestrion.systems.organ.gan",
                "orchestrion.systems.organ.losses", "orchestrion.systems.organ.module",
                "orchestrion.systems.organ.train", "orchestrion.systems.organ.mel_classifier"]
    probe = ("import sys, orchestrion.systems.organ.infer, orchestrion.systems.organ.commands; "
             f"print('loaded:', [m for m in {training!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # the last line is the probe's (a library may print a line of its own on import)
    assert loaded.stdout.strip().splitlines()[-1] == "loaded: []", loaded.stdout + loaded.stderr


def test_a_model_without_its_discriminator_renders_alike_and_continues_with_a_fresh_one(
        tiny_dataset, checkpoint, tmp_path):
    from orchestrion.checkpoints import load_checkpoint

    start = load_checkpoint(checkpoint, "render")
    bare = save_checkpoint(tmp_path / "bare", "render", start.config,
                           {k: v for k, v in start.state_dict.items() if not k.startswith("discriminator.")},
                           start.card)
    roll = torch.zeros(1, 16, 128, 24)
    roll[0, 2, 60, 3:20] = 0.8
    with torch.no_grad():
        torch.testing.assert_close(RenderModel.from_pretrained(bare)(roll), RenderModel.from_pretrained(checkpoint)(roll))
    run = tmp_path / "run"
    continued = _train_tiny(tiny_dataset, run, "--max-steps", "1", "--init-from", str(bare))
    assert continued.exit_code == 0, continued.output
    assert "carries no discriminator" in continued.output and "starts fresh" in continued.output
    exported = load_checkpoint(run / "model", "render").state_dict
    assert any(k.startswith("discriminator.") for k in exported)  # trained alongside, exported with the run
    refused = _train_tiny(tiny_dataset, tmp_path / "cls", "--max-steps", "1", "--init-from", str(bare),
                          "--classifier-only")
    assert_clean_failure(refused, tmp_path / "cls", "--classifier-only", "no instrument classifier")
