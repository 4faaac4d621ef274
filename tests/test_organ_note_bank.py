"""The note-bank output prior: its estimate from stems, what it renders, and its gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from orchestrion.audio.spectral import Stft
from orchestrion.checkpoints import Checkpoint
from orchestrion.errors import ConfigError
from orchestrion.nn.pitch import pitch_to_hz
from orchestrion.systems.organ.data import PieceTensors
from orchestrion.systems.organ.gan import OrganModel
from orchestrion.systems.organ.note_bank import (
    VELOCITY_SLOPE,
    NoteBank,
    bank_table,
    estimate_note_bank,
)
from orchestrion.systems.organ.presets import get_preset
from orchestrion.systems.organ.train import _fresh_weights, start_note_bank

SR, HOP, N_FFT = 16000, 256, 1024


def tiny_config(**overrides):
    settings = {"base_width": 4, "discriminator_width": 0.125, "output_prior": "bank", "bank_age_s": 0.5}
    return get_preset("cpu", **{**settings, **overrides})


def sine_piece(pitch: int, velocity: float, slot: int = 0, seconds: float = 3.0) -> PieceTensors:
    """One part holding `pitch` from 0.5 s to 2.5 s: a sine whose level rises linearly over the
    note, its amplitude as velocity squared (its power as velocity to the fourth)."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    start, end = int(0.5 * SR), int(2.5 * SR)
    amplitude = np.zeros(n)
    amplitude[start:end] = np.linspace(0.05, 0.2, end - start) * velocity**2
    stem = (amplitude * np.sin(2 * np.pi * float(pitch_to_hz(torch.tensor(pitch))) * t)).astype(np.float32)
    frames = 1 + n // HOP
    roll = np.zeros((1, 128, frames), dtype=np.float16)
    onsets = np.zeros((1, 128, frames), dtype=bool)
    first, last = round(0.5 * SR / HOP), round(2.5 * SR / HOP)
    roll[0, pitch, first:last] = velocity
    onsets[0, pitch, first] = True
    return PieceTensors(f"sine{pitch}", (slot,), stem[None], roll, onsets)


def test_the_estimate_is_each_keys_log_power_over_age_less_the_velocity_term():
    config = tiny_config()
    pieces = [sine_piece(69, 0.5), sine_piece(69, 1.0), sine_piece(72, 0.8, slot=3)]
    estimate = estimate_note_bank(pieces, config)
    assert estimate.keys == [(0, 69), (3, 72)] and estimate.notes.tolist() == [2, 1]
    frames = config.bank_frames
    assert estimate.mean.shape == (2, config.n_bins) and estimate.courses.shape == (2, frames, 8)
    bank = NoteBank(16, config.n_bins, 2, frames, 8)
    bank.load_estimate(estimate)
    ages = torch.arange(frames)
    table = bank.log_power(torch.zeros(frames, dtype=torch.long), torch.full((frames,), 69), ages).detach()
    peak = round(440.0 * N_FFT / SR)
    assert int(table[5].argmax()) == peak
    # power goes as velocity to the fourth, which the estimate takes out: both notes give
    # the log-power of the note at velocity 1 at each age
    loud = sine_piece(69, 1.0)
    spectrum = Stft(N_FFT, HOP)(torch.from_numpy(loud.stems[0]) * config.input_gain)
    direct = torch.log(spectrum.real.square() + spectrum.imag.square())
    onset = int(loud.onsets[0, 69].nonzero()[0][0])
    for age in (0, 1, 8, frames // 2, frames - 1):
        assert float(table[age, peak]) == pytest.approx(float(direct[peak, onset + age]), abs=1e-3)
    # the level rises over the note: the course over age is not flat
    assert float(table[frames - 1, peak] - table[8, peak]) > 0.5
    # slot 3's key plays elsewhere: its entry peaks at its own pitch
    other = bank.log_power(torch.tensor([3]), torch.tensor([72]), torch.tensor([10]))
    assert int(other[0].argmax()) == round(float(pitch_to_hz(torch.tensor(72))) * N_FFT / SR)


def test_a_key_never_played_reads_its_nearest_key_shifted_by_the_pitch_ratio():
    config = tiny_config()
    estimate = estimate_note_bank([sine_piece(60, 0.8), sine_piece(72, 0.8)], config)
    bank = NoteBank(16, config.n_bins, 2, config.bank_frames, 8)
    bank.load_estimate(estimate)
    assert bank.entry_pitch[0, 64].item() == 60 and bank.entry_pitch[0, 70].item() == 72
    assert bank.entry[5].eq(-1).all() and bank.stored_keys() == 2
    moved = bank.log_power(torch.tensor([0]), torch.tensor([64]), torch.tensor([10]))[0].detach()
    hz = float(pitch_to_hz(torch.tensor(64)))
    assert abs(int(moved.argmax()) - hz * N_FFT / SR) <= 1.0
    own = bank.log_power(torch.tensor([0]), torch.tensor([60]), torch.tensor([10]))[0].detach()
    assert float(moved.max()) == pytest.approx(float(own.max()), abs=0.5)


def test_the_bank_renders_what_it_stores_and_every_part_of_it_learns():
    torch.manual_seed(0)
    config = tiny_config()
    estimate = estimate_note_bank([sine_piece(69, 0.5), sine_piece(57, 0.9, slot=2)], config)
    model = OrganModel.from_config(config.replace(bank_keys=len(estimate.keys)))
    start_note_bank(model, estimate)
    bank = model.note_bank
    roll = torch.zeros(2, 16, 128, 40)
    roll[0, 0, 69, 4:30] = 0.5
    roll[1, 2, 57, 0:40] = 0.9
    onsets = torch.zeros_like(roll)
    onsets[0, 0, 69, 4] = 1
    ages = torch.full_like(roll, 1.0e4)  # slot 2's note began long before: it reads the last age
    ages[0, 0, 69, 4:30] = torch.arange(26.0)
    ages[1, 2, 57] = 1.0e4
    free = torch.zeros(2, 1, config.n_bins, 40)
    gains = torch.zeros(2, 16, config.n_bins, 40, requires_grad=True)
    out = bank(free, gains, roll, ages)
    expected = bank.log_power(torch.tensor([0]), torch.tensor([69]), torch.tensor([7]))[0] + VELOCITY_SLOPE * math.log(0.5)
    torch.testing.assert_close(out[0, 0, :, 11], torch.log1p(torch.exp(expected)), rtol=1e-4, atol=1e-5)
    old = bank.log_power(torch.tensor([2]), torch.tensor([57]), torch.tensor([10_000]))[0] + VELOCITY_SLOPE * math.log(0.9)
    torch.testing.assert_close(out[1, 0, :, 20], torch.log1p(torch.exp(old)), rtol=1e-4, atol=1e-5)
    assert float(out.detach()[0, 0, :, 0].abs().max()) == 0.0  # nothing sounds there
    out.sum().backward()
    for weights in (bank.mean, bank.spectra, bank.courses, bank.velocity_slope, gains):
        assert weights.grad is not None and float(weights.grad.abs().max()) > 0
    # the whole model, its gain images zeroed at the start, renders the bank over its free output
    model.eval()
    model.set_inference_dropout(False)
    rendered = model(roll, onsets, ages)
    assert rendered.shape == (2, 1, config.n_bins, 40) and bool(torch.isfinite(rendered).all())
    peak = round(440.0 * N_FFT / SR)
    assert float(rendered[0, 0, peak, 11]) > float(rendered[0, 0, peak, 35]) + 3.0


def test_a_bank_needs_keys_and_gain_images_of_the_slots_that_sound():
    with pytest.raises(ConfigError, match="at least one key"):
        OrganModel.from_config(tiny_config())
    with pytest.raises(ConfigError, match="bank_rank"):
        tiny_config(bank_rank=-1)
    bank = NoteBank(16, 513, 1, 8, 2)
    roll = torch.zeros(1, 16, 128, 4)
    roll[0, 0, 60] = 1.0
    with pytest.raises(ConfigError, match="one gain image per slot"):
        bank(torch.zeros(1, 1, 513, 4), torch.zeros(1, 3, 513, 4), roll, torch.zeros_like(roll))
    with pytest.raises(ConfigError, match="nothing to learn from"):
        estimate_note_bank([], tiny_config())


def test_a_harmonic_model_may_be_continued_with_a_bank_and_not_back():
    harmonic = get_preset("cpu", base_width=4, discriminator_width=0.125, output_prior="harmonic",
                          learned_partials=True)
    start = Checkpoint(None, "render", harmonic.to_dict(), {}, "")
    banked = harmonic.replace(output_prior="bank", learned_partials=False, bank_keys=12)
    assert set(_fresh_weights("start", start.config, banked)) == {"harmonic_output.", "note_bank."}
    back = Checkpoint(None, "render", banked.to_dict(), {}, "")
    with pytest.raises(ConfigError, match="output_prior"):
        _fresh_weights("start", back.config, harmonic)
    with pytest.raises(ConfigError, match="base_width"):
        _fresh_weights("start", start.config, banked.replace(base_width=8))


def test_refloor_keeps_what_was_learned_and_lowers_what_the_old_floor_held():
    pieces = [sine_piece(69, 0.5), sine_piece(72, 0.8, slot=3)]
    high, low = estimate_note_bank(pieces, tiny_config()), estimate_note_bank(pieces, tiny_config(bank_floor_db=-80))
    bank = NoteBank(16, high.mean.shape[1], 2, high.courses.shape[1], 8)
    bank.load_estimate(high)
    peak = round(440.0 * N_FFT / SR)
    far = peak + 60  # a sine's Hann sidelobes there lie far below -40 dB
    held = bank_table(high.mean, high.spectra, high.courses)[0, far, 8:]  # past the onset's click
    assert torch.allclose(held, torch.full_like(held, math.log(1e-4) - VELOCITY_SLOPE * math.log(0.5)), atol=1e-3)
    with torch.no_grad():
        bank.mean[0, peak] += 1.0  # as if training had learned it
    bank.refloor(high, low)
    stored = bank_table(bank.mean, bank.spectra, bank.courses)
    wanted = bank_table(low.mean, low.spectra, low.courses)
    wanted[0, peak] += 1.0
    assert torch.allclose(stored, wanted, atol=1e-3)
    assert float((held - stored[0, far, 8:]).min()) > 5.0
    other = estimate_note_bank(pieces[:1], tiny_config(bank_floor_db=-80))
    with pytest.raises(ConfigError, match="re-flooring"):
        bank.refloor(high, other)


def test_a_bank_model_may_be_continued_with_another_floor_only():
    banked = tiny_config(bank_keys=12)
    start = Checkpoint(None, "render", banked.to_dict(), {}, "")
    assert _fresh_weights("start", start.config, banked.replace(bank_floor_db=-80.0)) == ()
    with pytest.raises(ConfigError, match="bank_rank"):
        _fresh_weights("start", start.config, banked.replace(bank_rank=4))


def test_one_ratio_shifts_every_row_and_beyond_fills_past_the_top():
    from orchestrion.systems.organ.note_bank import shift_along_frequency

    rows = torch.zeros(3, 64)
    rows[:, 20] = torch.tensor([1.0, 2.0, 3.0])
    up = shift_along_frequency(rows, torch.tensor([2.0]))  # bin f reads bin f / 2: 20 -> 40
    assert up.shape == rows.shape and up[:, 40].tolist() == [1.0, 2.0, 3.0]
    down = shift_along_frequency(rows + 1.0, torch.tensor([0.5]), beyond=0.0)  # bin f reads 2 f
    assert down[:, 10].tolist() == [2.0, 3.0, 4.0] and bool((down[:, 32:] == 0).all())
    held = shift_along_frequency(rows + 1.0, torch.tensor([0.5]))
    assert bool((held[:, 40:] == 1.0).all())
