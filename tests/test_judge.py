"""The instrument judge: inference, labels, figures, the shipped judge-cpu, and its training."""

from __future__ import annotations

import math

import numpy as np
import pretty_midi
import pytest
import torch

from orchestrion.audio.io import resample
from orchestrion.checkpoints import CheckpointError, load_checkpoint
from orchestrion.metrics.judge import (
    SHIPPED_JUDGE,
    InstrumentJudge,
    JudgeConfig,
    chunk_count,
    judge_chunks,
    judge_scores,
    load_judge,
    score_chunk_labels,
)
from orchestrion.symbolic.instruments import InstrumentVocabulary


@pytest.fixture(scope="module")
def untrained() -> InstrumentJudge:
    torch.manual_seed(0)
    return InstrumentJudge(JudgeConfig()).eval()


@pytest.fixture(scope="module")
def shipped() -> InstrumentJudge:
    return load_judge()


def test_probabilities_have_one_row_per_chunk_and_lie_in_0_1(untrained):
    rng = np.random.default_rng(0)
    wave = rng.normal(0, 0.1, 5 * 16000).astype(np.float32)  # 2 whole chunks + a half-full one
    probabilities = judge_chunks(wave, 16000, untrained)
    assert probabilities.shape == (3, 16)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert judge_chunks(wave, 16000, untrained, n_chunks=5).shape == (5, 16)  # padded with silence


def test_any_rate_and_stereo_are_resampled_and_mixed_to_the_judges(untrained):
    t = np.arange(4 * 44100) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    direct = judge_chunks(resample(tone, 44100, 16000), 16000, untrained)
    resampled = judge_chunks(tone, 44100, untrained)
    stereo = judge_chunks(np.stack([tone, tone]), 44100, untrained)
    assert resampled.shape == direct.shape == (2, 16)
    np.testing.assert_allclose(resampled, direct, atol=1e-5)
    np.testing.assert_allclose(stereo, resampled, atol=1e-5)


def test_a_judge_reading_db_re_the_chunk_peak_ignores_the_level():
    torch.manual_seed(0)
    judge = InstrumentJudge(JudgeConfig(peak_range_db=80.0)).eval()
    rng = np.random.default_rng(1)
    wave = rng.normal(0, 0.3, 2 * 16000).astype(np.float32)
    loud = judge_chunks(wave, 16000, judge)
    np.testing.assert_allclose(judge_chunks(0.01 * wave, 16000, judge), loud, atol=1e-4)
    image = judge.log_mel(torch.from_numpy(wave)[None])
    assert float(image.max()) == 0.0 and float(image.min()) >= -8.0


def test_chunk_count_keeps_a_tail_at_least_half_full():
    assert chunk_count(32000, 32000) == 1
    assert chunk_count(32000 + 15999, 32000) == 1
    assert chunk_count(32000 + 16000, 32000) == 2
    assert chunk_count(1000, 32000) == 0


def test_score_labels_name_the_slots_whose_notes_sound_in_each_chunk():
    vocabulary = InstrumentVocabulary.default()
    score = pretty_midi.PrettyMIDI()
    flute = pretty_midi.Instrument(program=73)
    flute.notes = [pretty_midi.Note(90, 72, 0.0, 1.0)]           # chunk 0 only
    cello = pretty_midi.Instrument(program=42)
    cello.notes = [pretty_midi.Note(90, 48, 1.95, 4.5)]          # 0.05 s of chunk 0: not present
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(90, 36, 0.0, 6.0)]
    score.instruments = [flute, cello, drums]
    labels = score_chunk_labels(score, 3)
    flute_slot, cello_slot = vocabulary.by_name("flute").index, vocabulary.by_name("cello").index
    assert labels[:, flute_slot].tolist() == [1, 0, 0]
    assert labels[:, cello_slot].tolist() == [0, 1, 1]
    assert labels.sum() == 3  # drums are no slot


def test_scores_count_chunks_named_in_full_and_per_slot_recall_precision():
    slots = ("a", "b", "c")
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]], np.float32)
    perfect = judge_scores(truth * 0.9 + 0.05, truth, slots, 0.5)
    assert perfect.macro_accuracy == 1.0 and perfect.recall["a"] == 1.0 and math.isnan(perfect.recall["c"])
    guess = np.array([[0.9, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.0, 0.7], [0.0, 0.8, 0.0]])
    scores = judge_scores(guess, truth, slots, 0.5)
    assert scores.macro_accuracy == pytest.approx(0.5)  # chunks 0 and 3
    assert scores.recall["b"] == pytest.approx(0.5) and scores.precision["c"] == 0.0


def test_the_shipped_judge_is_small_fixed_at_0_5_and_carries_its_ceiling(shipped):
    checkpoint = load_checkpoint(SHIPPED_JUDGE, system="judge")
    size = sum(path.stat().st_size for path in checkpoint.path.iterdir())
    assert size < 2_000_000
    assert shipped.config.threshold == 0.5 and len(shipped.config.slots) == 16
    assert set(shipped.ceiling) == {"valid", "test"}
    assert all(0.0 <= split["macro_accuracy"] <= 1.0 for split in shipped.ceiling.values())
    card = checkpoint.card
    assert "orchestrion train judge --preset cpu" in card and "2026-12-08" in card
    with pytest.raises(CheckpointError):
        load_checkpoint(SHIPPED_JUDGE, system="render")


def test_the_shipped_judge_names_nothing_in_silence(shipped):
    probabilities = judge_chunks(np.zeros(6 * 16000, np.float32), 16000, shipped)
    assert (probabilities <= shipped.config.threshold).all()


def held_out_style_phrase(program: int, lowest: int, highest: int, seconds: float, seed: int) -> pretty_midi.PrettyMIDI:
    """A seeded random melody within a range (no chorale: a phrase the judge never heard)."""
    rng = np.random.default_rng(seed)
    score = pretty_midi.PrettyMIDI()
    part = pretty_midi.Instrument(program=program)
    time = 0.0
    while time < seconds:
        length = float(rng.choice([0.25, 0.5, 0.75, 1.0]))
        pitch = int(rng.integers(lowest, highest + 1))
        part.notes.append(pretty_midi.Note(int(rng.integers(60, 120)), pitch, time, min(time + length, seconds)))
        time += length
    score.instruments = [part]
    return score


def test_the_shipped_judge_names_a_flute_phrase_flute(shipped, renderer_16k):
    phrase = held_out_style_phrase(73, 62, 91, 8.0, seed=5)
    wave = renderer_16k.render_score(phrase, tail_s=0.0)
    probabilities = judge_chunks(wave, 16000, shipped)
    named = probabilities > shipped.config.threshold
    flute = InstrumentVocabulary.default().by_name("flute").index
    assert named[:, flute].mean() >= 0.75  # most chunks (its flute recall on held-out mixtures is 0.73)
    assert named.sum(axis=1).mean() <= 1.5  # flute, and seldom anything beside it


@pytest.mark.slow
def test_judge_data_and_training_write_a_loadable_judge_with_its_ceiling(tmp_path):
    import shutil

    from typer.testing import CliRunner

    from orchestrion.cli import app
    from orchestrion.metrics.judge_data import JudgeDataConfig, build_judge_data

    data = tmp_path / "judge-data"
    manifest = build_judge_data(data, JudgeDataConfig(limit=1, train_slots_per_part=2), progress=False)
    assert manifest["pieces"]["train"] == 1
    piece = next((data / "train").glob("*.npz"))
    with np.load(piece) as arrays:
        stems, slots, parts = arrays["stems"], arrays["slots"], arrays["parts"]
        assert stems.dtype == np.int16 and len(stems) == len(slots) == len(parts)
        for part in np.unique(parts):  # each part is played by distinct slots
            assert len(set(slots[parts == part].tolist())) == int((parts == part).sum())
        assert set(arrays["note_stems"].tolist()) == set(range(len(slots)))
    for split in ("valid", "test"):  # a one-piece build has no held-out piece: borrow it
        (data / split).mkdir()
        shutil.copy(piece, data / split / piece.name)
    out = tmp_path / "judge"
    result = CliRunner().invoke(app, ["train", "judge", "--preset", "tiny", "--data", str(data),
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "ceiling valid: macro accuracy" in result.output
    judge = load_judge(out)
    assert set(judge.ceiling) == {"valid", "test"} and judge.config.threshold == 0.5
    assert judge_chunks(np.zeros(32000, np.float32), 16000, judge).shape == (1, 16)


def test_training_refuses_an_unknown_preset_and_a_folder_without_pieces(tmp_path):
    from orchestrion.errors import ConfigError, DatasetError
    from orchestrion.metrics.judge_train import train_judge

    with pytest.raises(ConfigError, match="unknown judge preset"):
        train_judge(tmp_path, tmp_path / "out", preset="huge")
    with pytest.raises(DatasetError, match="no train pieces"):
        train_judge(tmp_path, tmp_path / "out", preset="tiny")
    assert not (tmp_path / "out").exists()


def test_training_draws_hold_the_presets_number_of_parts_at_its_levels():
    from orchestrion.metrics.judge_train import JudgePiece, JudgeTrainConfig, draw_batch

    config = JudgeConfig()
    n = 3 * config.chunk_samples
    rng = np.random.default_rng(0)
    stems = np.round(rng.uniform(-0.5, 0.5, (8, n)) * 32767).astype(np.int16)  # 4 parts x 2 slots
    slots, parts = np.arange(8), np.repeat(np.arange(4), 2)
    notes = [(np.array([0.0]), np.array([3.0 * config.chunk_s]))] * 8  # every stem sounds throughout
    pieces = [JudgePiece("p", stems, slots, parts, notes)]
    four = JudgeTrainConfig(part_count_weights=(0, 0, 0, 0, 1))
    _, labels = draw_batch(pieces, config, four, rng, 32)
    assert (labels.sum(dim=1) == 4).all()  # one slot per part, every part sounding
    assert (labels.view(32, -1)[:, :8].view(32, 4, 2).sum(dim=2) == 1).all()
    none = JudgeTrainConfig(part_count_weights=(1, 0, 0, 0, 0))
    waves, labels = draw_batch(pieces, config, none, rng, 8)
    assert labels.sum() == 0 and waves.abs().max() < 0.1  # silence, at most faint noise
