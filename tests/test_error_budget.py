"""The error budget: MS-SSIM with one region of the render's dB image restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrion.errors import ConfigError
from orchestrion.metrics import compare_audio
from orchestrion.metrics.budget import (
    ErrorBudget,
    error_budget,
    image_error_budget,
    mean_budget,
)
from orchestrion.plots import save_error_budget_png

BINS, FRAMES = 513, 160
HZ_PER_BIN = 16000 / 1024
FRAME_RATE = 16000 / 256


def _harmonic_image(seed: int = 0) -> torch.Tensor:
    """A reference dB image: partials at 500 Hz multiples over a textured floor near -64 dB."""
    generator = torch.Generator().manual_seed(seed)
    image = 0.2 + 0.05 * torch.rand(BINS, FRAMES, generator=generator, dtype=torch.float64)
    for k in range(1, 16):
        image[round(k * 500 / HZ_PER_BIN)] = 0.95 - 0.03 * k
    return image


def _restored(budget: ErrorBudget, name: str) -> float:
    return next(region.restored for region in budget.regions if region.name == name)


def test_a_flaw_in_one_band_is_restored_by_that_band_alone():
    reference = _harmonic_image()
    candidate = reference.clone()
    top = round(4000 / HZ_PER_BIN)
    candidate[top:] = torch.rand(BINS - top, FRAMES, dtype=torch.float64)
    budget = image_error_budget(reference, candidate)
    assert budget.ms_ssim < 0.95
    assert _restored(budget, "4-8 kHz") == pytest.approx(1.0, abs=1e-6)
    for untouched in ("0-0.5 kHz", "0.5-1 kHz", "1-2 kHz", "2-4 kHz"):
        assert _restored(budget, untouched) == pytest.approx(budget.ms_ssim, abs=1e-6)
    assert budget.gain("4-8 kHz") == pytest.approx(1.0 - budget.ms_ssim, abs=1e-6)


def test_each_group_covers_every_cell_once():
    budget = image_error_budget(_harmonic_image(), _harmonic_image(seed=1), onsets_s=[0.5, 1.2])
    shares: dict[str, float] = {}
    for region in budget.regions:
        shares[region.group] = shares.get(region.group, 0.0) + region.share
    assert set(shares) == {"level", "band", "partials", "time"}
    for group, total in shares.items():
        assert total == pytest.approx(1.0, abs=1e-12), group
    assert "time" not in {r.group for r in image_error_budget(_harmonic_image(), _harmonic_image(1)).regions}


def test_partials_and_levels_separate_the_lines_from_the_floor():
    reference = _harmonic_image()
    candidate = reference.clone()
    floor = reference < 0.5
    candidate[floor] = torch.rand(int(floor.sum()), dtype=torch.float64) * 0.4  # a wrong floor
    budget = image_error_budget(reference, candidate)
    # every wrong cell is below -60 dB and between partials; the partials themselves are right
    assert _restored(budget, "below -60 dB") == pytest.approx(1.0, abs=1e-6)
    assert _restored(budget, "between partials") == pytest.approx(1.0, abs=1e-6)
    assert _restored(budget, "on partials") == pytest.approx(budget.ms_ssim, abs=1e-6)
    on_partials = next(r for r in budget.regions if r.name == "on partials")
    assert on_partials.share == pytest.approx(15 / BINS, rel=1e-9)  # the 15 lines, every frame


def test_onset_frames_cover_the_first_96_ms_of_each_note():
    reference = _harmonic_image()
    candidate = reference.clone()
    start = 1.0
    first = int(start * FRAME_RATE) - 1
    candidate[:, first : first + 7] = 0.0  # the attack of a note at 1 s, 96 ms and a frame before
    budget = image_error_budget(reference, candidate, onsets_s=[start])
    assert budget.ms_ssim < 0.95
    assert _restored(budget, "first 96 ms of notes") == pytest.approx(1.0, abs=1e-6)
    assert _restored(budget, "rest") == pytest.approx(budget.ms_ssim, abs=1e-6)
    late = image_error_budget(reference, candidate, onsets_s=[start + 0.5])
    assert _restored(late, "first 96 ms of notes") < 0.99  # the flaw is not at that note


def test_the_audio_budget_scores_what_compare_audio_scores():
    rate = 16000
    t = np.arange(rate * 3) / rate
    reference = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 880 * t)).astype(np.float32)
    rng = np.random.default_rng(0)
    candidate = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    budget = error_budget(reference, candidate, rate, onsets_s=[0.0])
    assert budget.ms_ssim == pytest.approx(compare_audio(reference, candidate, rate).ms_ssim, abs=1e-6)
    assert budget.ms_ssim < 0.9
    # the missing 880 Hz partial lies in the 0.5-1 kHz band, the noise everywhere
    assert budget.gain("0.5-1 kHz") > budget.gain("0-0.5 kHz")


def test_mean_budget_averages_region_by_region_and_refuses_mismatches(tmp_path):
    reference = _harmonic_image()
    one = image_error_budget(reference, _harmonic_image(seed=1))
    two = image_error_budget(reference, _harmonic_image(seed=2))
    mean = mean_budget([one, two])
    assert mean.ms_ssim == pytest.approx((one.ms_ssim + two.ms_ssim) / 2)
    assert mean.regions[0].restored == pytest.approx((one.regions[0].restored + two.regions[0].restored) / 2)
    with pytest.raises(ConfigError, match="different regions"):
        mean_budget([one, image_error_budget(reference, _harmonic_image(seed=2), onsets_s=[0.1])])
    with pytest.raises(ConfigError, match="no error budgets"):
        mean_budget([])
    with pytest.raises(ConfigError, match="one shape"):
        image_error_budget(reference, reference[:, :-1])
    text = mean.format()
    assert "between partials" in text and f"{mean.ms_ssim:.4f}" in text
    png = save_error_budget_png(tmp_path / "budget.png", mean)
    assert png.read_bytes()[:4] == b"\x89PNG"
