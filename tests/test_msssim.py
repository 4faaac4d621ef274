"""MS-SSIM: parity with pytorch_msssim, identity, the small-image fallback, safe gradients."""

from __future__ import annotations

import pytest
import torch

from orchestrion.errors import ConfigError
from orchestrion.nn.msssim import (
    MSSSIM,
    MSSSIM_WEIGHTS,
    MSSSIMLoss,
    _fitted_window,
    gaussian_window,
    ms_ssim,
)

pytorch_msssim = pytest.importorskip("pytorch_msssim")


def _pair(shape: tuple[int, ...], noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator)
    # smooth-ish images, so every scale has structure to compare
    x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    y = (x + noise * torch.randn(shape, generator=generator)).clamp(0.0, 1.0)
    return x, y


@pytest.mark.parametrize(
    ("shape", "noise"),
    [
        ((2, 1, 192, 256), 0.1),
        ((2, 3, 161, 200), 0.3),
        ((1, 1, 513, 200), 0.05),
        ((3, 2, 257, 171), 0.2),
    ],
)
def test_agrees_with_pytorch_msssim(shape: tuple[int, ...], noise: float) -> None:
    x, y = _pair(shape, noise)
    ours = MSSSIM(data_range=1.0, reduction="none")(x, y)
    reference = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False)
    assert ours.shape == (shape[0],)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)
    torch.testing.assert_close(ms_ssim(x, y), reference.mean(), atol=1e-4, rtol=0)


def test_agrees_with_pytorch_msssim_on_other_data_range() -> None:
    x, y = _pair((2, 1, 176, 180), 0.2, seed=3)
    ours = MSSSIM(data_range=255.0)(x * 255, y * 255)
    reference = pytorch_msssim.ms_ssim(x * 255, y * 255, data_range=255.0)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("shape", [(2, 1, 192, 192), (1, 1, 513, 126), (2, 2, 20, 7), (1, 1, 1, 1)])
def test_identical_images_give_one(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape)
    torch.testing.assert_close(MSSSIM(reduction="none")(x, x), torch.ones(shape[0]))
    torch.testing.assert_close(MSSSIMLoss()(x, x), torch.tensor(0.0))


def test_fitted_window_is_centred_and_normalised() -> None:
    window = gaussian_window(11, 1.5)
    assert torch.equal(_fitted_window(window, 20), window)
    for length, expected in [(10, 9), (9, 9), (4, 3), (1, 1)]:
        cut = _fitted_window(window, length)
        assert cut.shape == (expected,)
        torch.testing.assert_close(cut.sum(), torch.tensor(1.0))
        torch.testing.assert_close(cut, cut.flip(0))
        centre = window[5 - expected // 2 : 6 + expected // 2]
        torch.testing.assert_close(cut / cut.max(), centre / window.max())


def test_small_images_fall_back_to_shorter_windows() -> None:
    """A 2 s, 16 kHz, hop-256 spectrogram (513 x 126) is below the reference's 161-pixel minimum."""
    x, y = _pair((2, 1, 513, 126), 0.0, seed=1)
    metric = MSSSIM(reduction="none")
    with pytest.raises(AssertionError):
        pytorch_msssim.ms_ssim(x, y, data_range=1.0)
    values = [metric(x, _pair((2, 1, 513, 126), noise, seed=1)[1]) for noise in (0.02, 0.1, 0.4)]
    for value in values:
        assert value.shape == (2,) and bool(((value >= 0) & (value <= 1)).all())
    more_noise_less_similar = (values[0] > values[1]).all() and (values[1] > values[2]).all()
    assert bool(more_noise_less_similar)
    tiny = metric(torch.rand(1, 1, 7, 3), torch.rand(1, 1, 7, 3))
    assert tiny.shape == (1,) and torch.isfinite(tiny).all()


def test_fallback_is_continuous_with_the_full_window() -> None:
    """At 176 pixels (coarsest scale 11) both paths coincide; below, values move smoothly."""
    x, y = _pair((1, 1, 176, 176), 0.1, seed=2)
    metric = MSSSIM()
    at_limit = metric(x, y)
    reference = pytorch_msssim.ms_ssim(x, y, data_range=1.0)
    torch.testing.assert_close(at_limit, reference, atol=1e-4, rtol=0)
    just_below = metric(x[..., :160, :160], y[..., :160, :160])
    assert abs(float(at_limit - just_below)) < 0.05


@pytest.mark.parametrize("loss_type", [MSSSIM, MSSSIMLoss])
def test_gradients_are_finite_even_for_anticorrelated_images(loss_type: type[MSSSIM]) -> None:
    x = torch.rand(2, 1, 64, 48, requires_grad=True)
    y = 1.0 - x.detach()  # negative contrast-structure terms
    value = loss_type()(x, y)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_loss_keeps_a_gradient_when_a_scale_does_not_match() -> None:
    # same fine detail, opposite coarse structure: fine scales match, coarse ones are negative
    fine = 0.3 * torch.rand(2, 1, 64, 48, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0.0, 0.7, 64).view(1, 1, 64, 1)
    z = (fine + ramp).requires_grad_()
    target = fine + ramp.flip(-2)
    assert MSSSIM(reduction="none")(z, target).tolist() == [0.0, 0.0]
    MSSSIMLoss()(z, target).backward()
    assert torch.isfinite(z.grad).all() and float(z.grad.abs().sum()) > 0
    x, y = _pair((1, 1, 192, 192), 0.1)
    torch.testing.assert_close(MSSSIMLoss()(x, y), 1.0 - MSSSIM()(x, y))


def test_window_is_a_buffer_and_weights_are_the_standard_ones() -> None:
    metric = MSSSIM()
    assert "window" in dict(metric.named_buffers())
    assert metric.weights == MSSSIM_WEIGHTS
    assert metric.window.shape == (11,)


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        MSSSIM(reduction="sum")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        MSSSIM(data_range=0)
    with pytest.raises(ConfigError):
        MSSSIM(window_size=10)
    with pytest.raises(ConfigError):
        MSSSIM()(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 31))
    with pytest.raises(ConfigError):
        MSSSIM()(torch.rand(32, 32), torch.rand(32, 32))
