"""Energy correction: per-frame magnitude sums follow the reference."""

from __future__ import annotations

import pytest
import torch

from orchestrion.audio import energy_correction
from orchestrion.errors import ConfigError


def test_frame_sums_follow_the_reference():
    torch.manual_seed(0)
    output = torch.rand(2, 64, 10)
    reference = 5.0 * torch.rand(2, 64, 10)
    corrected = energy_correction(output, reference)
    assert corrected.shape == output.shape
    assert torch.allclose(corrected.sum(dim=-2), reference.sum(dim=-2), rtol=1e-5)
    # only a per-frame gain: spectral shape within each frame is kept
    ratio = corrected / output
    assert torch.allclose(ratio, ratio[:, :1, :].expand_as(ratio), rtol=1e-5)


def test_morph_reference_is_the_mean_of_both_inputs():
    torch.manual_seed(1)
    output, a, b = torch.rand(3, 32, 8).unbind(0)
    from_pair = energy_correction(output, (a, 3.0 * b))
    from_mean = energy_correction(output, (a + 3.0 * b) / 2)
    assert torch.allclose(from_pair, from_mean)
    assert torch.allclose(from_pair.sum(dim=-2), ((a + 3.0 * b) / 2).sum(dim=-2), rtol=1e-5)


def test_silent_frames_stay_silent_and_finite():
    output = torch.rand(16, 4)
    output[:, 2] = 0.0
    corrected = energy_correction(output, torch.rand(16, 4))
    assert torch.isfinite(corrected).all()
    assert torch.equal(corrected[:, 2], torch.zeros(16))


def test_reference_broadcasts_and_gradients_flow():
    output = torch.rand(3, 16, 5, requires_grad=True)
    reference = torch.rand(16, 5)
    corrected = energy_correction(output, reference)
    assert torch.allclose(corrected.sum(dim=-2), reference.sum(dim=-2).expand(3, 5), rtol=1e-5)
    (corrected * torch.rand_like(corrected)).sum().backward()
    assert output.grad is not None and torch.isfinite(output.grad).all() and output.grad.abs().max() > 0


def test_bad_input_raises_config_error():
    with pytest.raises(ConfigError, match="frames"):
        energy_correction(torch.rand(16, 5), torch.rand(16, 6))
    with pytest.raises(ConfigError, match="broadcast"):
        energy_correction(torch.rand(2, 16, 5), torch.rand(3, 16, 5))
    with pytest.raises(ConfigError, match="share one shape"):
        energy_correction(torch.rand(16, 5), (torch.rand(16, 5), torch.rand(8, 5)))
    with pytest.raises(ConfigError):
        energy_correction(torch.rand(16, 5), [])
