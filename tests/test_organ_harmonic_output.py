"""orGAN's harmonic output prior: partial lobes where a sinusoid's STFT puts them, added to the
free output only where a slot's notes sound, with gradients into the per-slot gains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrion.audio.spectral import Stft
from orchestrion.errors import ConfigError
from orchestrion.systems.organ import OrganModel, get_preset
from orchestrion.systems.organ.harmonic_output import (
    LOBE_REACH_BINS,
    HarmonicOutput,
    hann_lobe_power,
    partial_lobe_templates,
)

SR, N_FFT, HOP = 16000, 1024, 256
A4 = 69


def test_lobe_matches_the_stft_of_a_sine() -> None:
    frequency = 440.0
    t = np.arange(SR) / SR
    wave = torch.from_numpy(np.sin(2 * np.pi * frequency * t).astype(np.float32))
    power = Stft(N_FFT, HOP)(wave).abs().square()[:, 10:-10].mean(dim=-1).numpy()
    centre = frequency * N_FFT / SR  # 28.16 bins
    near = np.arange(int(centre) - 2, int(centre) + 4)
    expected = hann_lobe_power(near - centre) * (N_FFT / 4) ** 2  # |X| = a N / 4 * |W(d)|
    np.testing.assert_allclose(power[near], expected, rtol=0.02)


def test_templates_hold_every_partial_below_nyquist_and_nothing_between() -> None:
    lobes = partial_lobe_templates(SR, N_FFT).numpy()
    assert lobes.shape == (128, N_FFT // 2 + 1)
    row = lobes[A4]
    bin_hz = SR / N_FFT
    partials = [k * 440.0 / bin_hz for k in range(1, 40) if k * 440.0 / bin_hz <= N_FFT // 2 - LOBE_REACH_BINS]
    assert len(partials) == 18  # 18 x 440 Hz = 7920 Hz lies 4 bins below Nyquist
    for position in partials:
        assert row[int(round(position))] > 0.4  # the main lobe's peak bin
    between = [int(round((a + b) / 2)) for a, b in zip(partials, partials[1:])]
    assert row[between].max() < 1e-3  # 14 bins from a partial: outside every lobe's reach
    assert row[int(partials[-1] + LOBE_REACH_BINS) + 1:].sum() == 0  # nothing above the last partial
    assert lobes[0].sum() > lobes[A4].sum()  # a low note has more partials below Nyquist


def test_output_adds_energy_only_at_the_sounding_slots_partials() -> None:
    head = HarmonicOutput(SR, N_FFT)
    free = torch.full((1, 1, 513, 4), 0.5)
    roll = torch.zeros(1, 16, 128, 4)
    roll[0, 2, A4, 1:3] = 0.7
    silent_gains = torch.full((1, 16, 513, 4), -80.0)
    torch.testing.assert_close(head(free, silent_gains, roll), free)
    gains = torch.zeros(1, 16, 513, 4, requires_grad=True)
    out = head(free, gains, roll)
    peak = int(round(440.0 * N_FFT / SR))
    expected = 0.5 + np.log1p(float(head.lobes[A4, peak]) * np.exp(-0.5))
    assert float(out.detach()[0, 0, peak, 1]) == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(out[0, 0, :, 0], free[0, 0, :, 0])  # no note in frame 0
    assert float(out.detach()[0, 0, peak + 14, 1]) == pytest.approx(0.5, abs=1e-3)  # between partials
    out.sum().backward()
    assert gains.grad[0, 2, peak, 1] > 0 and gains.grad[0, 5].abs().sum() == 0  # slot 5 is silent
    with pytest.raises(ConfigError, match="one gain image per slot"):
        head(free, gains[:, :3], roll)


def test_output_over_sounding_pairs_equals_the_sum_over_every_slot() -> None:
    """The forward runs only the (item, slot) pairs with notes, and reads only the gain images
    of slots that sound; it must equal the dense sum."""
    head = HarmonicOutput(SR, N_FFT)
    torch.manual_seed(0)
    roll = torch.zeros(3, 16, 128, 12)
    roll[0, 2, 60, 2:9] = 0.7
    roll[0, 5, 40, :] = 0.5
    roll[2, 5, 72, 6:] = 1.0  # item 1 is silent
    free = torch.rand(3, 1, 513, 12) * 3
    gains = torch.randn(3, 16, 513, 12, requires_grad=True)
    dense_gains = gains.detach().clone().requires_grad_(True)
    dense = free + torch.log1p((head.templates(roll) * dense_gains.exp()).sum(1, keepdim=True) * (-free).exp())
    out = head(free, gains, roll)
    torch.testing.assert_close(out, dense)
    torch.testing.assert_close(out[1], free[1])
    out.sum().backward()
    dense.sum().backward()
    torch.testing.assert_close(gains.grad, dense_gains.grad)
    # the gain images of some slots only, in any order: image k belongs to slot some[k]
    some = torch.tensor([5, 2])
    torch.testing.assert_close(head(free, gains.detach()[:, some], roll, some), out.detach())
    with pytest.raises(ConfigError, match="no gain image"):
        head(free, gains.detach()[:, [2]], roll, torch.tensor([2]))  # slot 5 sounds too


def test_harmonic_prior_model_renders_and_its_gain_channels_learn() -> None:
    torch.manual_seed(0)
    config = get_preset("cpu", base_width=4, discriminator_width=0.125, output_prior="harmonic")
    model = OrganModel(config)
    assert model.generator.head.out_channels == 17
    roll = torch.zeros(1, 16, 128, 32)
    roll[0, 4, 60, 4:28] = 0.8
    out = model(roll)
    assert out.shape == (1, 1, 513, 32) and torch.isfinite(out).all()
    out.mean().backward()
    gain_grads = model.generator.head.weight.grad[:, 1:]
    assert gain_grads[:, 4].abs().sum() > 0 and gain_grads[:, 7].abs().sum() == 0
    with pytest.raises(ConfigError, match="output_prior"):
        get_preset("cpu", output_prior="partials")


def test_generator_computes_only_the_gain_images_asked_for() -> None:
    torch.manual_seed(0)
    config = get_preset("cpu", base_width=4, discriminator_width=0.125, output_prior="harmonic")
    model = OrganModel(config).eval()
    roll = torch.zeros(2, 16, 128, 16)
    roll[0, 3, 50, 2:12] = 0.9
    roll[1, 9, 70, :] = 0.6
    with torch.no_grad():
        condition = model.condition(roll)
        full = model.generator(condition)
        some = model.generator(condition, extra=torch.tensor([9, 3]))
        torch.testing.assert_close(some, full[:, [0, 10, 4]])
        # the model asks for the sounding slots only, and renders what the dense head gives
        dense = model.harmonic_output(full[:, :1], full[:, 1:], roll)
        torch.testing.assert_close(model(roll), dense)


def test_learned_lobes_start_at_the_analytic_ones_and_learn_each_slot_apart() -> None:
    analytic = HarmonicOutput(SR, N_FFT)
    learned = HarmonicOutput(SR, N_FFT, n_slots=16, learned=True)
    torch.manual_seed(0)
    roll = torch.zeros(2, 16, 128, 8)
    roll[0, 2, A4, 1:6] = 0.7
    roll[1, 5, A4, :] = 0.5  # the same key on another slot
    free = torch.rand(2, 1, 513, 8)
    gains = torch.randn(2, 16, 513, 8)
    torch.testing.assert_close(learned(free, gains, roll), analytic(free, gains, roll))
    learned(free, gains, roll).sum().backward()
    assert learned.lobe_corrections.shape == (16, int((analytic.lobes > 0).sum()))  # cells within reach
    grad = learned.on_grid(learned.lobe_corrections.grad)
    reach = analytic.lobes[A4] > 0
    assert grad[2, A4][reach].abs().min() > 0 and grad[5, A4][reach].abs().min() > 0
    assert grad[2, A4][~reach].abs().sum() == 0  # between partials the matrix stays 0
    assert grad[[0, 1, 3, 4, 6]].abs().sum() == 0 and grad[2, A4 + 1].abs().sum() == 0
    with torch.no_grad():  # a louder slot 2 changes only the item where slot 2 sounds
        louder = torch.zeros(16, *analytic.lobes.shape)
        louder[2, A4] = 2.0
        learned.lobe_corrections.copy_(louder.flatten(1)[:, learned.reach])
        after = learned(free, gains, roll)
        before = analytic(free, gains, roll)
    assert (after[0] - before[0]).max() > 0.1
    torch.testing.assert_close(after[1], before[1])
    with pytest.raises(ConfigError, match="give the slot"):
        learned.templates(roll[0])
    with pytest.raises(ConfigError, match="learned_partials"):
        get_preset("cpu", learned_partials=True)  # needs output_prior="harmonic"
