"""Metrics: the render quality protocol on real FluidSynth audio (cross-checked against the
reference script), SWD, instrument classifier scores, the Table 6.3 row."""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from orchestrion.audio.io import resample
from orchestrion.audio.phase import griffin_lim
from orchestrion.audio.spectral import Stft
from orchestrion.errors import AudioTooShortError, ConfigError, NonFiniteAudioError
from orchestrion.metrics import (
    Table63Row,
    binary_auc,
    compare_audio,
    compare_files,
    crop_to_scale_grid,
    db_image,
    instrument_classifier_scores,
    laplacian_pyramid,
    log_spectral_distance,
    mr_stft_distance,
    sliced_wasserstein,
    sliced_wasserstein_distance,
    spectrogram_l1,
    table63_row,
)
from orchestrion.metrics.swd import expand_pyramid_level

REFERENCE_SCRIPT = Path(os.environ.get(
    "ORCHESTRION_REFERENCE_SCRIPT", Path(__file__).resolve().parents[2] / "shared" / "tools" / "compare_audio.py"))
"""The audio protocol's reference script: in the project's shared folder beside the repository."""
SR = 16000


# --------------------------------------------------------------------------- signals
def _sine_render(midi_path: Path, n_samples: int, sample_rate: int = SR) -> np.ndarray:
    """The score's notes as plain sine waves (velocity / 127 amplitude, 10 ms fades)."""
    score = pretty_midi.PrettyMIDI(str(midi_path))
    out = np.zeros(n_samples, dtype=np.float64)
    fade = int(0.01 * sample_rate)
    for note in (n for inst in score.instruments if not inst.is_drum for n in inst.notes):
        start, stop = int(note.start * sample_rate), min(int(note.end * sample_rate), n_samples)
        if stop - start < 2 * fade:
            continue
        index = np.arange(start, stop)
        envelope = np.minimum(1.0, np.minimum(index - start, stop - 1 - index) / fade)
        frequency = pretty_midi.note_number_to_hz(note.pitch)
        tone = np.sin(2 * np.pi * frequency * index / sample_rate)
        out[start:stop] += note.velocity / 127 * envelope * tone
    return (0.1 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def reference(chorale_16k) -> np.ndarray:
    wave, sample_rate = chorale_16k
    assert sample_rate == SR
    return wave


@pytest.fixture(scope="module")
def griffin_lim_32(reference) -> np.ndarray:
    """Griffin-Lim (32 iterations, random initial phase) from the true magnitude."""
    magnitude = Stft(n_fft=1024, hop_length=256)(torch.from_numpy(reference)).abs()
    generator = torch.Generator().manual_seed(0)
    wave = griffin_lim(magnitude, 1024, 256, n_iter=32, length=len(reference), generator=generator)
    return wave.numpy()


@pytest.fixture(scope="module")
def sines(reference, example_midi) -> np.ndarray:
    return _sine_render(example_midi, len(reference))


# --------------------------------------------------------------------------- protocol
def test_a_render_against_itself_is_perfect(reference) -> None:
    result = compare_audio(reference, reference, SR)
    assert result.ms_ssim == pytest.approx(1.0, abs=1e-6)
    assert result.mr_stft == pytest.approx(0.0, abs=1e-9)
    assert result.lsd == pytest.approx(0.0, abs=1e-9)
    assert result.len_reference == result.len_candidate == len(reference)


def test_a_quieter_copy_is_loudness_matched(reference) -> None:
    result = compare_audio(reference, torch.from_numpy(0.3 * reference), SR)
    assert result.ms_ssim == pytest.approx(1.0, abs=1e-5)
    assert result.mr_stft < 1e-4
    assert result.lsd < 1e-3


def test_griffin_lim_of_the_true_magnitude_is_near_calibration(reference, griffin_lim_32) -> None:
    # Calibration (whole pieces): 0.996 / 0.38. Measured on these 6 s: 0.9958 / 0.314 / 1.9 dB.
    result = compare_audio(reference, griffin_lim_32, SR)
    assert 0.99 < result.ms_ssim < 0.9995
    assert 0.2 < result.mr_stft < 0.45
    assert 0.5 < result.lsd < 4.0


def test_sine_waves_of_the_same_notes_score_far_worse(reference, sines) -> None:
    # Calibration (whole pieces): 0.19 / 5.9. Measured on these 6 s: 0.134 / 6.47 / 24 dB.
    result = compare_audio(reference, sines, SR)
    assert result.ms_ssim < 0.3
    assert result.mr_stft > 4.5
    assert result.lsd > 15.0


CROSS_CHECK_CASES = ("sines", "griffin_lim_22k_short")


@pytest.fixture(scope="module")
def cross_check_files(
    reference, griffin_lim_32, sines, tmp_path_factory
) -> dict[str, tuple[Path, Path]]:
    """(reference.wav, candidate.wav) per case, float WAV."""
    folder = tmp_path_factory.mktemp("cross_check")
    reference_path = folder / "reference.wav"
    sf.write(reference_path, reference, SR, subtype="FLOAT")
    sf.write(folder / "sines.wav", sines, SR, subtype="FLOAT")
    # another rate and 0.5 s short: exercises resampling and trimming too
    short = resample(griffin_lim_32[: len(reference) - SR // 2], SR, 22050)
    sf.write(folder / "griffin_lim_22k_short.wav", short, 22050, subtype="FLOAT")
    return {case: (reference_path, folder / f"{case}.wav") for case in CROSS_CHECK_CASES}


@pytest.fixture(scope="module")
def reference_script_figures(cross_check_files) -> dict[str, dict[str, float]]:
    """The reference script's figures per case; the runs go in parallel (startup dominates)."""
    if not REFERENCE_SCRIPT.is_file():
        pytest.skip(f"the protocol's reference script {REFERENCE_SCRIPT} is not here")
    runs = {
        case: subprocess.Popen(
            [sys.executable, str(REFERENCE_SCRIPT), str(reference_path), str(candidate_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for case, (reference_path, candidate_path) in cross_check_files.items()
    }
    figures = {}
    for case, run in runs.items():
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, f"{REFERENCE_SCRIPT.name} failed on {case}: {stderr[-2000:]}"
        pairs = re.findall(r"(\w+)=([-\d.eE+]+)", stdout)
        figures[case] = {name: float(value) for name, value in pairs}
    return figures


@pytest.mark.parametrize("case", CROSS_CHECK_CASES)
def test_figures_agree_with_the_reference_script(
    case, cross_check_files, reference_script_figures
) -> None:
    ours = compare_files(*cross_check_files[case])
    script = reference_script_figures[case]
    assert (ours.len_reference, ours.len_candidate) == (script["len_ref"], script["len_cand"])
    assert ours.ms_ssim == pytest.approx(script["ms_ssim"], abs=0.01)
    assert ours.mr_stft == pytest.approx(script["mrstft"], abs=0.02)


def test_candidate_rate_and_length_are_handled(reference) -> None:
    candidate = resample(reference[: len(reference) - 1000], SR, 22050)
    stereo = np.stack([reference, reference])
    result = compare_audio(stereo, candidate, SR, candidate_sample_rate=22050)
    assert result.len_reference == len(reference)
    assert abs(result.len_candidate - (len(reference) - 1000)) <= 1
    assert result.ms_ssim > 0.99 and result.mr_stft < 0.1


def test_compare_audio_rejects_bad_input(reference) -> None:
    with pytest.raises(ConfigError, match="silent"):
        compare_audio(np.zeros(SR, np.float32), reference[:SR], SR)
    with pytest.raises(AudioTooShortError, match="2048"):
        compare_audio(reference[:1000], reference[:1000], SR)
    with pytest.raises(ConfigError, match="samples"):
        compare_audio(np.zeros((1, 2, SR)), reference, SR)
    with pytest.raises(ConfigError, match="empty"):
        compare_audio(np.zeros(0), reference, SR)
    bad = reference.copy()
    bad[100] = np.nan
    with pytest.raises(NonFiniteAudioError):
        compare_audio(reference, bad, SR)
    with pytest.raises(ConfigError, match="sample rate"):
        compare_audio(reference, reference, 0)


def test_a_silent_candidate_scores_badly_not_nan(reference) -> None:
    result = compare_audio(reference, np.zeros_like(reference), SR)
    # measured 0.10: regions silent in both images still match (the sines score 0.13)
    assert result.ms_ssim < 0.2
    assert math.isfinite(result.mr_stft) and result.mr_stft > 5
    assert math.isfinite(result.lsd) and result.lsd > 20


# --------------------------------------------------------------------------- building blocks
def test_db_image_is_in_unit_range_with_the_peak_at_one(reference) -> None:
    image = db_image(reference)
    assert image.shape == (513, 1 + len(reference) // 256)
    assert float(image.min()) >= 0.0 and float(image.max()) == pytest.approx(1.0)
    peak = float(Stft(1024, 256)(torch.from_numpy(reference)).abs().max() ** 2)
    quieter = db_image(0.1 * reference, reference_peak=peak)
    # 20 dB down on an 80 dB scale: every unclipped pixel drops by 0.25
    unclipped = quieter > 0
    drop = (image - quieter)[unclipped]
    assert torch.allclose(drop, torch.full_like(drop, 0.25), atol=1e-5)
    with pytest.raises(ConfigError, match="silent"):
        db_image(np.zeros(4096))


def test_log_spectral_distance_of_a_halved_noise_is_6_db() -> None:
    noise = torch.randn(SR, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    halved = float(log_spectral_distance(noise, 0.5 * noise))
    assert halved == pytest.approx(20 * math.log10(2), abs=1e-9)
    assert float(log_spectral_distance(noise, noise)) == 0.0
    with pytest.raises(ConfigError, match="same shape"):
        log_spectral_distance(noise, noise[:-1])


def test_mr_stft_distance_of_a_halved_noise() -> None:
    noise = torch.randn(SR, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # spectral convergence 0.5 + |ln 2| per resolution (magnitudes >> 1e-5)
    assert float(mr_stft_distance(noise, 0.5 * noise)) == pytest.approx(0.5 + math.log(2), rel=1e-4)
    batch = torch.stack([noise, 0.5 * noise])
    assert mr_stft_distance(batch, batch).shape == (2,)
    with pytest.raises(ConfigError, match="same shape"):
        mr_stft_distance(noise, noise[:-1])


def test_crop_to_scale_grid() -> None:
    assert crop_to_scale_grid(torch.zeros(1, 1, 513, 376)).shape[-2:] == (512, 368)
    assert crop_to_scale_grid(torch.zeros(10, 40)).shape == (10, 32)


# --------------------------------------------------------------------------- SWD
@pytest.fixture(scope="module")
def image_sets(reference, sines) -> dict[str, torch.Tensor]:
    """Four (1, 513, 94) dB-image chunks of the chorale, of its sine render, and of noise."""

    def chunks(wave: np.ndarray) -> torch.Tensor:
        matched = wave * np.sqrt(np.mean(reference**2) / np.mean(wave**2))
        image = db_image(matched, reference_peak=peak)
        return torch.stack([image[:, k * 94:(k + 1) * 94] for k in range(4)])[:, None]

    peak = float(Stft(1024, 256)(torch.from_numpy(reference)).abs().max() ** 2)
    real = chunks(reference)
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(1), dtype=real.dtype)
    return {"real": real, "sines": chunks(sines), "noise": noise}


def test_swd_levels_follow_the_pyramid(image_sets) -> None:
    result = sliced_wasserstein_distance(image_sets["real"], image_sets["noise"])
    assert result.level_sizes == ((513, 94), (257, 47), (129, 24))
    assert len(result.per_level) == 3
    assert result.mean == pytest.approx(sum(result.per_level) / 3)
    assert "swd=" in result.format()


def test_swd_of_a_set_with_itself_is_the_noise_floor_and_others_are_far(image_sets) -> None:
    real = image_sets["real"]
    itself = sliced_wasserstein_distance(real, real).mean
    to_noise = sliced_wasserstein_distance(real, image_sets["noise"]).mean
    to_sines = sliced_wasserstein_distance(real, image_sets["sines"]).mean
    # measured: 0.064 (sampling noise of 512 patches), 0.24, 0.63
    assert itself < 0.1
    assert to_noise > 3 * itself
    assert to_sines > 5 * itself


def test_swd_is_roughly_symmetric_and_seeded(image_sets) -> None:
    real, sines = image_sets["real"], image_sets["sines"]
    forward = sliced_wasserstein_distance(real, sines, seed=0)
    backward = sliced_wasserstein_distance(sines, real, seed=0)
    assert abs(forward.mean - backward.mean) < 0.15 * forward.mean
    assert sliced_wasserstein_distance(real, sines, seed=0) == forward
    assert sliced_wasserstein_distance(real, sines, seed=1).mean != forward.mean


def test_swd_ignores_a_global_gain_and_offset(image_sets) -> None:
    # Descriptors are standardised per set and channel (ProGAN), the pyramid is linear.
    real = image_sets["real"]
    plain = sliced_wasserstein_distance(real, real)
    shifted = sliced_wasserstein_distance(real, 2.0 * real + 0.3)
    assert shifted.per_level == pytest.approx(plain.per_level, abs=1e-9)


def test_sliced_wasserstein_of_shifted_points_on_a_line_is_the_shift() -> None:
    points = torch.randn(200, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert sliced_wasserstein(points, points + 0.7) == pytest.approx(0.7, abs=1e-12)
    assert sliced_wasserstein(points, points[torch.randperm(200)]) == 0.0


def test_laplacian_pyramid_adds_back_up_to_the_image() -> None:
    images = torch.rand(2, 1, 70, 45, generator=torch.Generator().manual_seed(0))
    levels = laplacian_pyramid(images, min_size=16)
    assert [tuple(level.shape[-2:]) for level in levels] == [(70, 45), (35, 23)]
    rebuilt = levels[-1]
    for level in reversed(levels[:-1]):
        rebuilt = level + expand_pyramid_level(rebuilt, (level.shape[-2], level.shape[-1]))
    torch.testing.assert_close(rebuilt, images.double(), atol=1e-12, rtol=0)


def test_swd_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="same shape"):
        sliced_wasserstein_distance(torch.rand(2, 1, 32, 32), torch.rand(3, 1, 32, 32))
    with pytest.raises(ConfigError, match="at least 7 x 7"):
        sliced_wasserstein_distance(torch.rand(2, 1, 5, 32), torch.rand(2, 1, 5, 32))
    with pytest.raises(ConfigError, match="B, C, H, W"):
        sliced_wasserstein_distance(torch.rand(1, 32, 32), torch.rand(1, 32, 32))
    with pytest.raises(ConfigError, match="n_projections"):
        images = torch.rand(2, 1, 32, 32)
        sliced_wasserstein_distance(images, images, n_projections=0)


# --------------------------------------------------------------------------- classifier
def _pairwise_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    positives, negatives = scores[labels == 1], scores[labels == 0]
    pairs = itertools.product(positives, negatives)
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs)
    return wins / (len(positives) * len(negatives))


def test_auc_is_one_for_perfect_and_a_half_for_constant_scores() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 16)) < 0.3).astype(np.float32)
    labels[0], labels[1] = 1, 0  # every class has both positives and negatives
    perfect = instrument_classifier_scores(0.05 + 0.9 * labels, labels)
    assert perfect.auc == 1.0 and perfect.micro_accuracy == 1.0 and perfect.macro_accuracy == 1.0
    assert set(perfect.per_class_auc) == set(range(16))
    constant = instrument_classifier_scores(np.full(labels.shape, 0.5), labels)
    assert constant.auc == 0.5
    assert all(value == 0.5 for value in constant.per_class_auc.values())
    # 0.5 is not above the threshold: everything is predicted absent
    assert constant.micro_accuracy == pytest.approx(float((labels == 0).mean()))
    assert constant.macro_accuracy == pytest.approx(float((labels.sum(axis=1) == 0).mean()))
    inverted = instrument_classifier_scores(0.95 - 0.9 * labels, labels)
    assert inverted.auc == 0.0


def test_auc_equals_a_brute_force_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.random((60, 16)) < 0.25).astype(np.int64)
    labels[:, 5] = 0  # a class without positives: no AUC, left out of the mean
    probabilities = np.round(rng.random((60, 16)), 1)  # coarse values: many ties
    result = instrument_classifier_scores(torch.from_numpy(probabilities), torch.from_numpy(labels))
    expected = {k: _pairwise_auc(probabilities[:, k], labels[:, k]) for k in range(16) if k != 5}
    assert result.per_class_auc.keys() == expected.keys()
    for k, value in expected.items():
        assert result.per_class_auc[k] == pytest.approx(value, abs=1e-12)
        assert binary_auc(probabilities[:, k], labels[:, k]) == pytest.approx(value, abs=1e-12)
    assert result.auc == pytest.approx(np.mean(list(expected.values())), abs=1e-12)


def test_micro_and_macro_accuracy_on_a_hand_made_example() -> None:
    labels = np.zeros((4, 16))
    labels[0, [0, 4]] = 1  # violin + flute
    labels[1, [2]] = 1  # cello
    labels[2, [6, 9, 10]] = 1  # clarinet, trumpet, horn
    labels[3, [1]] = 1  # viola
    probabilities = np.full((4, 16), 0.1)
    probabilities[0, [0, 4]] = 0.9  # all 16 right
    probabilities[1, [2, 3]] = 0.8  # cello found, double bass claimed: 15 right
    probabilities[2, [6, 9]] = 0.7  # horn missed: 15 right
    probabilities[3, [1]] = 0.6  # all 16 right
    names = [f"slot{k}" for k in range(16)]
    result = instrument_classifier_scores(probabilities, labels, class_names=names)
    assert result.micro_accuracy == pytest.approx(62 / 64)
    assert result.macro_accuracy == pytest.approx(2 / 4)
    assert result.n_samples == 4
    # by the number of instruments present: the solos 1 of 2 right, the duo and the trio 1 and 0
    assert result.macro_by_count == {1: (0.5, 2), 2: (1.0, 1), 3: (0.0, 1)}
    assert result.format_macro_by_count() == "1: 0.500 (2)  2: 1.000 (1)  3: 0.000 (1)"
    assert set(result.per_class_auc) == {f"slot{k}" for k in (0, 1, 2, 4, 6, 9, 10)}
    assert result.per_class_auc["slot10"] == 0.5  # the horn's sample scores 0.1 like the negatives


def test_classifier_scores_reject_bad_input() -> None:
    labels = np.zeros((3, 16))
    with pytest.raises(ConfigError, match="one shape"):
        instrument_classifier_scores(np.zeros((3, 15)), labels)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        instrument_classifier_scores(np.full((3, 16), 2.0), labels)
    with pytest.raises(ConfigError, match="multi-hot"):
        instrument_classifier_scores(np.zeros((3, 16)), np.full((3, 16), 0.5))
    with pytest.raises(ConfigError, match="non-empty"):
        instrument_classifier_scores(np.zeros((0, 16)), np.zeros((0, 16)))
    with pytest.raises(ConfigError, match="both classes"):
        binary_auc(np.array([0.1, 0.2]), np.array([1, 1]))
    assert math.isnan(instrument_classifier_scores(np.zeros((3, 16)), labels).auc)


# --------------------------------------------------------------------------- Table 6.3
def test_spectrogram_l1() -> None:
    l1 = spectrogram_l1(np.zeros((2, 1, 8, 8)), np.full((2, 1, 8, 8), 0.25))
    assert l1 == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="paired"):
        spectrogram_l1(np.zeros((2, 1, 8, 8)), np.zeros((1, 1, 8, 8)))


def test_table63_row_of_a_perfect_model(image_sets) -> None:
    real = image_sets["real"]
    labels = np.zeros((4, 16))
    labels[[0, 1], 4] = 1
    labels[[1, 2, 3], 6] = 1
    row = table63_row(real, real.clone(), 0.05 + 0.9 * labels, labels)
    assert row.ms_ssim == pytest.approx(1.0, abs=1e-6)
    assert row.l1 == 0.0
    assert row.swd < 0.1
    assert (row.auc, row.micro_acc, row.macro_acc) == (1.0, 1.0, 1.0)


def test_table63_row_format_is_aligned() -> None:
    row = Table63Row(
        ms_ssim=0.873, swd=0.237, l1=0.049, auc=float("nan"), micro_acc=0.894, macro_acc=0.947
    )
    header, line = row.format(label="multi-inst-190").splitlines()
    assert header.split() == ["model", "MS-SSIM", "SWD", "L1", "AUC", "microACC", "macroACC"]
    figures = ["0.8730", "0.2370", "0.0490", "nan", "0.8940", "0.9470"]
    assert line.split() == ["multi-inst-190", *figures]
    assert len(header) == len(line)
    # the label column is left-aligned, the figures right-aligned under their names
    header_ends = [match.end() for match in re.finditer(r"\S+", header)]
    line_ends = [match.end() for match in re.finditer(r"\S+", line)]
    assert header_ends[1:] == line_ends[1:]
    assert len(row.format(header=False).splitlines()) == 1
