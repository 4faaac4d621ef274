"""orGAN networks: every preset builds and runs, receptive fields, dropout as noise, encodings,
losses and their gradients, class weights, configuration errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from orchestrion.checkpoints import Checkpoint, load_state_into
from orchestrion.errors import ConfigError
from orchestrion.metrics.audio import MR_STFT_LOG_EPS
from orchestrion.nn.adversarial import (
    AdversarialLoss,
    WeightedMultiHotBCE,
    class_weights_from_counts,
    class_weights_from_labels,
)
from orchestrion.nn.pitch import pitch_to_hz
from orchestrion.systems.organ import (
    DISCRIMINATOR_VARIANTS,
    PRESETS,
    Discriminator,
    Generator,
    OrganConfig,
    OrganLoss,
    OrganModel,
    build_encoding,
    get_preset,
    harmonic_templates,
    instrument_labels,
    padded_length,
    receptive_field,
)
from orchestrion.systems.organ.encoding import rising_edges, slots_playing
from orchestrion.systems.organ.discriminator import CLASSIFIER_WEIGHTS
from orchestrion.systems.organ.model import sounding_slots
from orchestrion.systems.organ.train import _fresh_weights, load_start

A4 = 69


def _roll(batch: int, frames: int, seed: int = 0, velocity: bool = False) -> torch.Tensor:
    """A sparse (batch, 16, 128, frames) roll: a few notes in slots 0-3."""
    generator = torch.Generator().manual_seed(seed)
    roll = torch.zeros(batch, 16, 128, frames)
    for b in range(batch):
        for _ in range(4):
            slot = int(torch.randint(0, 4, (), generator=generator))
            pitch = int(torch.randint(48, 84, (), generator=generator))
            start = int(torch.randint(0, max(frames - 2, 1), (), generator=generator))
            loudness = float(torch.randint(40, 127, (), generator=generator)) / 127
            value = loudness if velocity else 1.0
            roll[b, slot, pitch, start : start + 3] = value
    return roll


# -- every preset is built and run --------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_runs_on_a_tiny_input(name: str) -> None:
    torch.manual_seed(0)
    config = get_preset(name)
    model = OrganModel.from_config(config)
    batch, frames = 2, 8
    roll = _roll(batch, frames)
    condition = model.condition(roll)
    assert condition.shape == (batch, model.encoding.out_channels, config.n_bins, frames)
    with torch.no_grad():
        spectrogram = model(roll)
        judgement = model.discriminate(spectrogram, condition)
    assert spectrogram.shape == (batch, 1, config.n_bins, frames)
    assert torch.isfinite(spectrogram).all()
    strides = 1
    for _, _, stride in config.patch_layers:
        strides *= stride
    patches = (batch, 1, -(-config.n_bins // strides), -(-frames // strides))  # ceil division
    assert judgement.patch_logits.shape == patches
    assert judgement.instrument_logits is not None
    assert judgement.instrument_logits.shape == (batch, 16)
    counts = model.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["generator"] > counts["discriminator"] > 0


def test_paper_preset_is_the_seeds_architecture() -> None:
    config = get_preset("paper")
    spectrogram = (config.sample_rate, config.n_fft, config.hop_length)
    assert spectrogram == (47_872, 2048, 256) and (config.chunk_s, config.batch_size) == (5.0, 4)
    assert config.n_bins == 1025 and config.chunk_frames == 936
    generator = Generator(16, config.generator_depth, base_width=64, decoder_width_shift=2)
    assert config.generator_depth == 10
    assert generator.grid_size(config.n_bins, config.chunk_frames) == (1024, 1024)
    assert generator.encoder_widths == [64, 128, 256, 512, 512, 512, 512, 512, 512, 512]
    assert generator.decoder_widths == [512, 512, 512, 512, 256, 128, 64, 32, 16, 16]
    assert (config.msssim_weight, config.instrument_weight, config.learning_rate, config.betas) == (
        100.0, 0.5, 2e-4, (0.5, 0.999)
    )
    assert config.discriminator == "190"


def test_cpu_preset_numbers() -> None:
    config = get_preset("cpu")
    assert (config.sample_rate, config.n_fft, config.hop_length) == (16_000, 1024, 256)
    assert 2.0 <= config.chunk_s <= 4.0
    assert config.encoding == "harmonic" and config.input_gain == 5.0


@pytest.mark.parametrize("frames", [1, 5, 126, 130])
def test_generator_takes_any_length(frames: int) -> None:
    model = OrganModel.from_config(get_preset("cpu", base_width=4)).eval()
    with torch.no_grad():
        assert model(_roll(1, frames)).shape == (1, 1, 513, frames)


def test_padded_length_rule() -> None:
    lengths = (1, 3, 20, 32, 33, 126, 512)
    assert [padded_length(n, 5) for n in lengths] == [1, 4, 32, 32, 64, 128, 512]
    assert padded_length(935, 10) == 1024 and padded_length(1500, 10) == 2048


# -- discriminator ------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "expected"), [("94", 94), ("190", 190), ("286", 286)])
def test_receptive_fields_of_the_seed_variants(variant: str, expected: int) -> None:
    assert receptive_field(DISCRIMINATOR_VARIANTS[variant]) == expected
    discriminator = Discriminator(16, DISCRIMINATOR_VARIANTS[variant], width_multiplier=0.25)
    assert discriminator.receptive_field == expected


@pytest.mark.parametrize("variant", ["94", "190", "286"])
def test_receptive_field_matches_the_gradient_support(variant: str) -> None:
    """One patch logit depends on exactly receptive_field input pixels per axis."""
    torch.manual_seed(0)
    layers = DISCRIMINATOR_VARIANTS[variant]
    discriminator = Discriminator(1, layers, width_multiplier=1 / 16, classifier=False).eval()
    size = 480
    spectrogram = torch.randn(1, 1, size, size, requires_grad=True)
    patches = discriminator(spectrogram, torch.randn(1, 1, size, size)).patch_logits
    row, col = patches.shape[-2] // 2, patches.shape[-1] // 2
    patches[0, 0, row, col].backward()
    touched = spectrogram.grad[0, 0].abs() > 0
    rows = torch.nonzero(touched.any(dim=1)).flatten()
    cols = torch.nonzero(touched.any(dim=0)).flatten()
    assert int(rows[-1] - rows[0] + 1) == int(variant)
    assert int(cols[-1] - cols[0] + 1) == int(variant)


def test_spectrogram_classifier_does_not_see_the_roll() -> None:
    torch.manual_seed(0)
    spectrogram = torch.rand(2, 1, 129, 16)
    for classifier_input, sees_roll in [("spectrogram", False), ("joint", True)]:
        layers = DISCRIMINATOR_VARIANTS["94"]
        discriminator = Discriminator(16, layers, 0.25, classifier_input=classifier_input).eval()
        first = discriminator(spectrogram, torch.rand(2, 16, 129, 16)).instrument_logits
        second = discriminator(spectrogram, torch.rand(2, 16, 129, 16)).instrument_logits
        assert torch.equal(first, second) is not sees_roll


# -- dropout as the noise source ------------------------------------------------------


def test_dropout_stays_on_in_eval_unless_switched_off() -> None:
    torch.manual_seed(0)
    model = OrganModel.from_config(get_preset("cpu", base_width=4)).eval()
    roll = _roll(1, 16)
    with torch.no_grad():
        assert not torch.equal(model(roll), model(roll)), "dropout is the noise source at inference"
        model.set_inference_dropout(False)
        assert torch.equal(model(roll), model(roll))
        model.set_inference_dropout(True)
        assert not torch.equal(model(roll), model(roll))


# -- encodings -----------------------------------------------------------------------


@pytest.mark.parametrize(("sample_rate", "n_fft"), [(16_000, 1024), (47_872, 2048)])
def test_harmonic_encoding_puts_a4_at_its_bin(sample_rate: int, n_fft: int) -> None:
    encoding = build_encoding("harmonic", sample_rate=sample_rate, n_fft=n_fft, n_harmonics=4)
    roll = torch.zeros(1, 16, 128, 3)
    roll[0, 5, A4, 1] = 1.0
    image = encoding(roll)
    assert image.shape == (1, 16, n_fft // 2 + 1, 3)
    assert image[0, :5].abs().sum() == 0 and image[0, 6:].abs().sum() == 0  # other slots silent
    assert image[0, 5, :, [0, 2]].abs().sum() == 0  # other frames silent
    column = image[0, 5, :, 1]
    position = 440.0 / (sample_rate / n_fft)  # fractional bin of the fundamental
    lower = int(position)
    assert int(column.argmax()) == round(position)
    torch.testing.assert_close(column[lower], torch.tensor(1.0 - (position - lower)))
    torch.testing.assert_close(column[lower + 1], torch.tensor(position - lower))
    second = 2 * position  # second harmonic at half amplitude
    torch.testing.assert_close(column[int(second)] + column[int(second) + 1], torch.tensor(0.5))
    torch.testing.assert_close(column.sum(), torch.tensor(1 + 1 / 2 + 1 / 3 + 1 / 4))


def test_harmonic_templates_stay_below_nyquist() -> None:
    templates = harmonic_templates(16_000, 1024, n_harmonics=16)
    assert templates.shape == (128, 513)
    assert templates[:, -1].abs().sum() == 0
    assert templates[127].sum() < 1.0  # G9 (12.5 kHz) keeps no partial below 8 kHz
    torch.testing.assert_close(pitch_to_hz(A4), torch.tensor(440.0, dtype=torch.float64))


def test_binary_and_velocity_encodings_place_pitch_p_on_row_p() -> None:
    roll = torch.zeros(1, 16, 128, 2)
    roll[0, 2, 60, 0] = 0.5
    binary = build_encoding("binary", sample_rate=16_000, n_fft=1024)(roll)
    velocity = build_encoding("velocity", sample_rate=16_000, n_fft=1024)(roll)
    assert binary.shape == velocity.shape == (1, 16, 513, 2)
    assert binary[0, 2, 60, 0] == 1.0 and velocity[0, 2, 60, 0] == 0.5
    assert binary.sum() == 1.0 and velocity.sum() == 0.5


def test_onset_channels_come_from_rising_edges_when_not_given() -> None:
    roll = torch.zeros(1, 16, 128, 6)
    roll[0, 1, 60, 1:4] = 1.0
    encoding = build_encoding("velocity", sample_rate=16_000, n_fft=1024, onset_channels=True)
    image = encoding(roll)
    assert image.shape == (1, 32, 513, 6) and encoding.out_channels == 32
    assert image[0, 17, 60].tolist() == [0, 1, 0, 0, 0, 0]
    given = torch.zeros_like(roll)
    given[0, 1, 60, 2] = 1.0
    assert encoding(roll, given)[0, 17, 60].tolist() == [0, 0, 1, 0, 0, 0]
    assert rising_edges(roll)[0, 1, 60].tolist() == [0, 1, 0, 0, 0, 0]


def test_learned_harmonic_encoding_starts_at_the_templates_and_trains() -> None:
    config = get_preset("cpu", base_width=4, learned_encoding=True)
    model = OrganModel.from_config(config)
    fixed = build_encoding("harmonic", sample_rate=16_000, n_fft=1024, n_harmonics=config.harmonics)
    roll = _roll(1, 8)
    torch.testing.assert_close(model.condition(roll), fixed(roll))
    assert model.parameter_counts()["encoding"] == 128 * 512
    model(roll).sum().backward()
    assert model.encoding.refined.grad is not None and model.encoding.refined.grad.abs().sum() > 0


def test_harmonic_encoding_of_the_sounding_lanes_equals_the_dense_product() -> None:
    """Only the (item, slot) lanes with notes are multiplied; silent ones must come out zero."""
    encoding = build_encoding("harmonic", sample_rate=16_000, n_fft=1024, learned=True)
    roll = torch.zeros(3, 16, 128, 6)
    roll[0, 1, 60, 1:4] = 0.5
    roll[2, 7, 40, :] = 1.0  # item 1 is silent throughout
    matrix = encoding.pitch_to_bin_matrix()
    dense = torch.matmul(matrix.t(), roll.clamp(0, 1))
    image = encoding(roll)
    torch.testing.assert_close(image, dense)
    assert image[1].abs().sum() == 0 and image[0, 7].abs().sum() == 0
    (image * torch.randn_like(image)).sum().backward()
    assert encoding.refined.grad is not None and encoding.refined.grad[60].abs().sum() > 0


@pytest.mark.parametrize("name", ["binary", "velocity", "harmonic"])
@pytest.mark.parametrize("onset_channels", [False, True])
def test_encoding_some_slots_gives_those_channels_of_the_whole_image(name: str, onset_channels: bool) -> None:
    encoding = build_encoding(name, sample_rate=16_000, n_fft=1024, onset_channels=onset_channels)
    roll = torch.zeros(2, 16, 128, 10)
    roll[0, 3, 60, 2:8] = 0.5
    roll[1, 11, 45, :5] = 1.0
    slots = torch.tensor([3, 11])
    subset = encoding.encode_slots(roll, slots)
    expected = [3, 11, 19, 27] if onset_channels else [3, 11]
    assert subset.channels.tolist() == expected
    torch.testing.assert_close(subset.image, encoding(roll)[:, expected], rtol=0, atol=0)


def test_the_harmonic_image_of_the_pitches_played_equals_the_full_product() -> None:
    """to_frequency multiplies only the pitches that are played; the rest would add zeros."""
    encoding = build_encoding("harmonic", sample_rate=16_000, n_fft=1024)
    lanes = torch.zeros(2, 3, 128, 40)
    lanes[0, 1, 60, 5:30] = 0.7
    lanes[0, 1, 64, 20:40] = 0.3  # overlapping partials of two notes
    lanes[1, 2, 33, :] = 1.0
    full = torch.matmul(encoding.pitch_to_bin_matrix().t(), lanes)
    torch.testing.assert_close(encoding.to_frequency(lanes), full, rtol=1e-6, atol=1e-7)
    assert float(encoding.to_frequency(lanes)[1, 0].abs().max()) == 0.0


def test_slots_playing_is_any_note_per_slot() -> None:
    roll = torch.zeros(3, 16, 128, 12)
    roll[0, 2, 70, 3] = 0.2
    roll[2, 15, 0, 11] = 1.0
    torch.testing.assert_close(slots_playing(roll), (roll > 0).flatten(2).any(dim=-1))
    assert slots_playing(torch.zeros(2, 16, 128, 0)).shape == (2, 16)
    assert sounding_slots(roll).tolist() == [2, 15]


@pytest.mark.parametrize("with_ages", [False, True])
def test_generator_on_the_sounding_channels_equals_it_on_the_whole_image(with_ages: bool) -> None:
    """The render path encodes only the slots that sound; training passes the whole image."""
    torch.manual_seed(0)
    config = get_preset("cpu", base_width=4, discriminator_width=0.125, n_fft=256,
                        note_age_s=(0.05, 0.2) if with_ages else ())
    model = OrganModel.from_config(config).eval()
    model.set_inference_dropout(False)
    if with_ages:  # move the note-age weights off zero, so they count
        torch.nn.init.normal_(model.generator.age_input.weight, std=0.1)
    roll = torch.zeros(3, 16, 128, 24)
    roll[0, 2, 60, 3:20] = 0.8
    roll[1, 2, 64, :10] = 0.4
    roll[2, 9, 40, 5:] = 0.6
    whole = model.generate(model.condition(roll), roll, model.age_condition(roll))
    torch.testing.assert_close(model(roll), whole, rtol=1e-5, atol=1e-5)
    # the whole image of one part's roll: its silent channels are left out by the generator too
    alone = roll[:2]
    torch.testing.assert_close(
        model(alone), model.generate(model.condition(alone), alone, model.age_condition(alone)),
        rtol=1e-5, atol=1e-5,
    )
    silent = torch.zeros(1, 16, 128, 24)
    assert torch.isfinite(model(silent)).all()


def test_encodings_reject_bad_rolls_and_names() -> None:
    encoding = build_encoding("harmonic", sample_rate=16_000, n_fft=1024)
    with pytest.raises(ConfigError):
        encoding(torch.zeros(1, 13, 128, 4))
    with pytest.raises(ConfigError):
        build_encoding("spectral", sample_rate=16_000, n_fft=1024)
    with pytest.raises(ConfigError):
        build_encoding("binary", sample_rate=16_000, n_fft=128)  # 65 bins cannot hold 128 pitches


# -- losses and training ----------------------------------------------------------------


def test_combined_loss_reaches_the_generators_first_layer() -> None:
    torch.manual_seed(0)
    config = get_preset("cpu", base_width=4, l1_weight=100.0)
    model = OrganModel.from_config(config).train()
    loss = OrganLoss(config)
    roll = _roll(2, 16)
    labels = instrument_labels(roll)
    real = 3.0 * torch.rand(2, 1, config.n_bins, 16)
    condition = model.condition(roll)
    fake = model.generator(condition)
    terms = loss.generator_loss(fake, real, model.discriminate(fake, condition), labels)
    assert set(terms) == {"adversarial", "l1", "msssim", "sc", "instrument", "total"}
    assert all(torch.isfinite(value) for value in terms.values())
    terms["total"].backward()
    first = model.generator.encoder[0].conv.weight.grad
    assert first is not None and torch.isfinite(first).all() and first.abs().sum() > 0
    real_judgement = model.discriminate(real, condition.detach())
    fake_judgement = model.discriminate(fake.detach(), condition.detach())
    d_terms = loss.discriminator_loss(real_judgement, fake_judgement, labels)
    assert set(d_terms) == {"adversarial", "instrument", "total"}
    factor = config.discriminator_adversarial_factor
    expected = factor * d_terms["adversarial"] + config.instrument_weight * d_terms["instrument"]
    torch.testing.assert_close(d_terms["total"], expected)


def _loss_with_only(**weights: float) -> OrganLoss:
    """orGAN's loss with every generator term off but `weights` (no classifier)."""
    off = dict(msssim_weight=0.0, l1_weight=0.0, adversarial_weight=0.0,
               spectral_convergence_weight=0.0, log_magnitude_weight=0.0,
               instrument_classifier=False)
    return OrganLoss(get_preset("cpu", **{**off, **weights}))


def _spectrogram_and_noisy_copy(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, fake): a random log-power spectrogram in [0, scale) and a noisy, non-negative
    copy that requires grad (seeded)."""
    torch.manual_seed(0)
    real = scale * torch.rand(2, 1, 33, 10)
    fake = (real + 0.3 * torch.randn_like(real)).clamp(min=0).requires_grad_()
    return real, fake


def test_spectral_convergence_term_compares_linear_magnitudes() -> None:
    loss = _loss_with_only(spectral_convergence_weight=2.0)
    real, fake = _spectrogram_and_noisy_copy(4.0)
    assert float(loss.generator_loss(real, real, None)["sc"]) < 1e-6
    terms = loss.generator_loss(fake, real, None)
    magnitude = torch.sqrt(torch.expm1(real))  # |X| without the floor: nearly the same
    expected = ((magnitude - torch.sqrt(torch.expm1(fake.detach()))).flatten(1).norm(dim=1)
                / magnitude.flatten(1).norm(dim=1)).mean()
    assert float(terms["sc"]) == pytest.approx(float(expected), rel=1e-3)
    torch.testing.assert_close(terms["total"], 2.0 * terms["sc"])
    terms["total"].backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    silent = torch.zeros_like(real, requires_grad=True)  # a silent fake: finite, bounded slope
    loss.generator_loss(silent, real, None)["total"].backward()
    assert torch.isfinite(silent.grad).all()
    # a louder error on the loudest bins costs more than the same log error on quiet ones
    loud, quiet = real.clone(), real.clone()
    top = real >= real.flatten().kthvalue(int(0.9 * real.numel())).values
    loud[top] += 0.5
    quiet[real < 0.5] += 0.5
    assert loss.generator_loss(loud, real, None)["sc"] > loss.generator_loss(quiet, real, None)["sc"]


def test_a_few_steps_overfit_one_batch() -> None:
    torch.manual_seed(0)
    config = get_preset(
        "cpu", base_width=8, l1_weight=1.0, msssim_weight=1.0, adversarial_weight=0.0,
        instrument_classifier=False,
    )
    model = OrganModel.from_config(config).train()
    assert model.discriminator is None  # generator-only setup
    loss = OrganLoss(config)
    roll = _roll(2, 16, seed=1)
    real = model.condition(roll)[:, :4].sum(dim=1, keepdim=True) * 4.0  # a target the roll explains
    optimiser = torch.optim.Adam(model.generator_parameters(), lr=3e-3)
    history = []
    for _ in range(20):
        terms = loss.generator_loss(model(roll), real, None)
        optimiser.zero_grad()
        terms["total"].backward()
        optimiser.step()
        history.append(float(terms["total"].detach()))
    assert history[-1] < 0.7 * history[0], history


def test_unit_db_maps_the_floor_to_zero_and_is_monotonic() -> None:
    loss = OrganLoss(get_preset("cpu"))
    spectrogram = torch.tensor([0.0, 1e-3, 0.1, 1.0, 5.0, 10.0])
    unit = loss.unit_db(spectrogram)
    assert float(unit[0]) == pytest.approx(0.0, abs=1e-6)
    assert bool((unit.diff() > 0).all())
    # the seed's LeakyReLU output may go negative; it reads as |exp(S) - 1|
    assert float(loss.unit_db(torch.tensor(-0.5))) > 0


def test_class_weights_follow_the_formula() -> None:
    counts = torch.tensor([4, 2, 0, 8] + [1] * 12)
    weights = class_weights_from_counts(counts, n_total=8)
    assert weights[0] == pytest.approx(8 / 16 / 4) and weights[1] == pytest.approx(8 / 16 / 2)
    assert weights[3] == pytest.approx(8 / 16 / 8) and weights[4] == pytest.approx(8 / 16)
    assert weights[2] == 1.0  # never seen: the guard's weight
    labels = torch.zeros(8, 16)
    labels[:4, 0] = 1
    labels[:2, 1] = 1
    labels[:, 3] = 1
    from_labels = class_weights_from_labels(labels)
    assert from_labels[:4].tolist() == pytest.approx([0.125, 0.25, 1.0, 0.0625])
    with pytest.raises(ConfigError):
        class_weights_from_counts(torch.tensor([-1, 2]), n_total=2)


def test_weighted_bce_matches_a_hand_computation() -> None:
    weights = torch.rand(16) + 0.5
    logits = torch.randn(3, 16)
    labels = (torch.rand(3, 16) > 0.5).float()
    probabilities = torch.sigmoid(logits)
    log_likelihood = labels * probabilities.log() + (1 - labels) * (1 - probabilities).log()
    manual = -(weights * log_likelihood).mean()
    torch.testing.assert_close(WeightedMultiHotBCE(weights)(logits, labels), manual)
    assert WeightedMultiHotBCE(weights, reduction="none")(logits, labels).shape == (3,)


def test_adversarial_losses() -> None:
    logits = torch.tensor([[0.0, 0.0]])
    bce = AdversarialLoss("bce")
    torch.testing.assert_close(bce.generator(logits), torch.tensor(0.6931472))
    torch.testing.assert_close(bce.discriminator(logits, logits), torch.tensor(2 * 0.6931472))
    lsgan = AdversarialLoss("lsgan")
    perfect = lsgan.discriminator(torch.ones(2, 2), torch.zeros(2, 2))
    torch.testing.assert_close(perfect, torch.tensor(0.0))
    torch.testing.assert_close(lsgan.generator(torch.zeros(2, 2)), torch.tensor(1.0))
    with pytest.raises(ConfigError):
        AdversarialLoss("wasserstein")  # type: ignore[arg-type]


# -- configuration --------------------------------------------------------------------


def test_presets_reject_unknown_names_fields_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="available presets"):
        get_preset("gpu")
    with pytest.raises(ConfigError, match="unknown orGAN setting"):
        get_preset("cpu", widht=3)
    with pytest.raises(ConfigError):
        get_preset("cpu", discriminator="128")
    with pytest.raises(ConfigError):
        get_preset("cpu", dropout=1.0)
    with pytest.raises(ConfigError):
        get_preset("cpu", encoding="binary", learned_encoding=True)
    with pytest.raises(ConfigError):
        get_preset("cpu", discriminator_layers=((16, 4, 2), (8, 4, 1)))  # last must have 1 filter
    with pytest.raises(ConfigError, match="lr_schedule"):
        get_preset("cpu", lr_schedule="linear")
    with pytest.raises(ConfigError, match="lr_final_fraction"):
        get_preset("cpu", lr_final_fraction=1.5)
    for decay in (1.0, -0.5, "0.9"):
        with pytest.raises(ConfigError, match="ema_decay"):
            get_preset("cpu", ema_decay=decay)


def test_cosine_schedule_falls_from_the_rate_to_its_final_fraction() -> None:
    config = get_preset("cpu", learning_rate=1e-3, lr_schedule="cosine", lr_final_fraction=0.1)
    rates = [config.learning_rate_at(p) for p in np.linspace(0, 1, 11)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert rates[5] == pytest.approx(0.5 * (1e-3 + 1e-4))  # half-way: the mean of both ends
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert config.learning_rate_at(1.7) == pytest.approx(1e-4)  # past the last step it stays there
    assert get_preset("cpu", learning_rate=1e-3).learning_rate_at(0.9) == 1e-3


def test_warmup_rises_from_zero_then_hands_over_to_the_schedule() -> None:
    config = get_preset("cpu", learning_rate=1e-3, lr_schedule="cosine", lr_final_fraction=0.1,
                        lr_warmup_fraction=0.2)
    assert config.learning_rate_at(0.0) == 0.0
    assert config.learning_rate_at(0.1) == pytest.approx(5e-4)  # half-way up the ramp
    assert config.learning_rate_at(0.2) == pytest.approx(1e-3)  # the cosine starts at the top
    assert config.learning_rate_at(0.6) == pytest.approx(0.5 * (1e-3 + 1e-4))  # cosine half-way
    assert config.learning_rate_at(1.0) == pytest.approx(1e-4)
    flat = get_preset("cpu", learning_rate=1e-3, lr_warmup_fraction=0.5)
    assert flat.learning_rate_at(0.25) == pytest.approx(5e-4) and flat.learning_rate_at(0.75) == 1e-3
    for bad in (1.0, -0.1, True):
        with pytest.raises(ConfigError, match="lr_warmup_fraction"):
            get_preset("cpu", lr_warmup_fraction=bad)


def test_config_round_trips_through_json() -> None:
    layers = ((8, 4, 2), (16, 4, 1), (1, 4, 1))
    config = get_preset("cpu", discriminator_layers=layers, regime="transfer")
    rebuilt = OrganConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert rebuilt == config
    assert receptive_field(rebuilt.patch_layers) == 16  # 4 -> 7 -> (7 - 1) * 2 + 4
    with pytest.raises(ConfigError):
        OrganConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_generator_only_setup_has_no_discriminator() -> None:
    config = get_preset("cpu", adversarial_weight=0.0, instrument_classifier=False)
    model = OrganModel.from_config(config)
    assert model.discriminator is None and not config.uses_discriminator
    with pytest.raises(ConfigError):
        model.discriminate(torch.zeros(1, 1, 513, 4), torch.zeros(1, 16, 513, 4))


def _band_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectrograms with one 6-bin band, low (rows 8-45) or high (72-109); label 1 = high."""
    spectrogram = torch.rand(n, 1, 129, 16, generator=generator) * 0.1
    high = torch.rand(n, generator=generator) < 0.5
    starts = torch.randint(8, 40, (n,), generator=generator) + 64 * high
    for i, start in enumerate(starts.tolist()):
        spectrogram[i, :, start:start + 6] += 1.0
    return spectrogram, high.float()


def test_time_pooled_classifier_learns_where_the_energy_lies() -> None:
    layers = DISCRIMINATOR_VARIANTS["190"]
    condition = torch.zeros(16, 16, 129, 16)
    held_out = _band_batch(16, torch.Generator().manual_seed(99))
    losses = {}
    for pooling in ("global", "time"):
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        discriminator = Discriminator(16, layers, 0.25, classifier_pooling=pooling,
                                      classifier_width=1.0, n_bins=129)
        optimizer = torch.optim.Adam(discriminator.parameters(), lr=3e-3)
        for _ in range(100):
            spectrogram, high = _band_batch(16, generator)
            logits = discriminator(spectrogram, condition).instrument_logits
            assert logits.shape == (16, 16)
            loss = F.binary_cross_entropy_with_logits(logits[:, 0], high)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = discriminator.eval()(held_out[0], condition).instrument_logits[:, 0]
        losses[pooling] = float(F.binary_cross_entropy_with_logits(logits, held_out[1]))
    # a mean over frequency of shift-equivariant features can hardly tell a band's register
    assert losses["time"] < 0.05 and losses["time"] < losses["global"] / 5, losses
    with pytest.raises(ConfigError, match="n_bins"):
        Discriminator(16, layers, 0.25, classifier_pooling="time")


def _continued_with(added: dict, **tiny) -> tuple[OrganModel, tuple[str, ...], torch.Tensor]:
    """A tiny model continued (``init_from``) with `added` turned on: the continued model,
    the weights that started fresh, and spectrograms it was checked to classify exactly as
    the model it continued."""
    torch.manual_seed(0)
    tiny = {"base_width": 4, "discriminator_width": 0.125, **tiny}
    before = OrganModel.from_config(get_preset("cpu", **tiny))
    start = Checkpoint(None, "render", before.config.to_dict(), before.state_dict(), "")
    config = get_preset("cpu", **added, **tiny)
    skip = _fresh_weights("start", start.config, config)
    after = OrganModel.from_config(config)
    load_state_into(after, start, skip=skip)
    spectrogram = torch.rand(3, 1, config.n_bins, 24) * 4
    with torch.no_grad():
        first = before.eval().discriminator.classify(spectrogram)
        torch.testing.assert_close(after.eval().discriminator.classify(spectrogram), first, rtol=0, atol=0)
    return after, skip, spectrogram


def test_a_classifier_continued_with_frequency_context_names_the_same_instruments_at_first() -> None:
    after, skip, _ = _continued_with({"classifier_context": 2})
    assert skip == ("discriminator.classifier_context.",)
    # the context's weights count as the classifier's: a classifier-only run trains them
    assert any(name.startswith(CLASSIFIER_WEIGHTS) and ".classifier_context." in f".{name}"
               for name, _ in after.named_parameters())
    with pytest.raises(ConfigError, match="classifier_context"):
        get_preset("cpu", classifier_input="joint", classifier_context=1)
    with pytest.raises(ConfigError, match="classifier_context"):
        get_preset("cpu", classifier_context=-1)


def _tiny_classifier_model(width: float) -> OrganModel:
    return OrganModel.from_config(get_preset("cpu", base_width=4, discriminator_width=0.125, classifier_context=2,
                                             classifier_pooling="time", classifier_width=width))


def test_a_classifier_grown_wider_names_the_same_instruments_and_its_new_channels_learn() -> None:
    torch.manual_seed(0)
    before = _tiny_classifier_model(0.25)
    with torch.no_grad():  # trained-looking weights: the zero-started ones and the BN statistics too
        for name, tensor in before.state_dict().items():
            if name.startswith(CLASSIFIER_WEIGHTS) and tensor.is_floating_point():
                tensor.add_(0.1 * torch.randn_like(tensor))
                if "running_var" in name:
                    tensor.abs_()
    start = Checkpoint(None, "render", before.config.to_dict(), before.state_dict(), "")
    after = _tiny_classifier_model(0.5)
    with pytest.warns(UserWarning, match="grows from width 0.25 to 0.5"):
        load_start(after, "start", start, after.config)
    narrow = before.discriminator.classifier_features[0].weight.shape[0]
    assert after.discriminator.classifier_features[0].weight.shape[0] == 2 * narrow
    spectrogram = torch.rand(3, 1, after.config.n_bins, 24) * 4
    with torch.no_grad():
        expected = before.eval().discriminator.classify(spectrogram)
        torch.testing.assert_close(after.eval().discriminator.classify(spectrogram), expected, rtol=0, atol=1e-5)
    # the columns that read the new channels start at zero but get a gradient
    linear = after.discriminator.classifier
    rows = after.discriminator.classifier_rows
    old_columns = before.discriminator.classifier.weight.shape[1]
    assert rows > 1 and linear.weight.shape[1] == 2 * old_columns
    assert linear.weight[:, old_columns:].abs().sum() == 0
    after.train().discriminator.classify(spectrogram).sum().backward()
    assert linear.weight.grad[:, old_columns:].abs().sum() > 0
    # a narrower classifier than the model's own cannot be grown into: it starts fresh
    with pytest.warns(UserWarning, match="starts fresh"):
        skip = _fresh_weights("start", after.config.to_dict(), before.config)
    assert set(CLASSIFIER_WEIGHTS) <= set(skip)
    # the same width, once implied by the discriminator's and once set, keeps the classifier
    implied = get_preset("cpu", base_width=4, discriminator_width=0.125, classifier_width=None)
    assert implied.classifier_width is None
    assert _fresh_weights("start", implied.to_dict(), implied.replace(classifier_width=0.125)) == ()


def test_log_magnitude_term_is_the_protocols_log_term_down_to_its_floor() -> None:
    loss = _loss_with_only(log_magnitude_weight=2.0)
    gain = loss.config.input_gain
    real, fake = _spectrogram_and_noisy_copy(6.0)
    real = real.clone()
    real[..., :3] = 0.0  # exact silence: ln(1e-5)
    assert float(loss.generator_loss(real, real, None)["log_mag"]) < 1e-6
    terms = loss.generator_loss(fake, real, None)

    def log_mag(s: torch.Tensor) -> torch.Tensor:  # by hand: the audio's own magnitude
        return torch.log(torch.sqrt(torch.expm1(s)) / gain + MR_STFT_LOG_EPS)

    expected = (log_mag(fake.detach()) - log_mag(real)).abs().mean()
    assert float(terms["log_mag"]) == pytest.approx(float(expected), rel=1e-3)
    torch.testing.assert_close(terms["total"], 2.0 * terms["log_mag"])
    terms["total"].backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0

    # audio magnitudes 1e-4 against 1e-3: ~2.2 nepers here, below the MS-SSIM dB map's floor
    def spectrogram(audio_magnitude: float) -> torch.Tensor:
        return torch.full((1, 1, 8, 8), float(torch.log1p(torch.tensor((gain * audio_magnitude) ** 2))))

    quiet = _loss_with_only(log_magnitude_weight=1.0)
    terms = quiet.generator_loss(spectrogram(1e-3), spectrogram(1e-4), None)
    assert float(terms["log_mag"]) == pytest.approx(float(np.log((1e-3 + 1e-5) / (1e-4 + 1e-5))), rel=1e-3)


def test_log_magnitude_gradient_through_softplus_stays_bounded_at_silence() -> None:
    loss = _loss_with_only(log_magnitude_weight=1.0)
    logits = torch.tensor([-60.0, -30.0, -10.0, 0.0, 5.0]).view(1, 1, 5, 1).requires_grad_()
    fake = torch.nn.functional.softplus(logits)
    real = torch.zeros_like(fake)
    loss.generator_loss(fake, real, None)["total"].backward()
    assert torch.isfinite(logits.grad).all()
    assert float(logits.grad.abs().max()) <= 0.5 / 5 + 1e-6  # d ln|x| / d logit <= 1/2, over 5 bins


def test_retired_fields_load_only_at_the_value_that_turned_them_off() -> None:
    """Knobs removed after they measured no gain: old configs that never used them still load."""
    saved = {**get_preset("cpu").to_dict(), "log_db_weight": 0.0, "classifier_max_pooling": False,
             "classifier_db_range": 0.0}
    assert OrganConfig.from_dict(saved) == get_preset("cpu")
    for name, value in (("log_db_weight", 5.0), ("classifier_max_pooling", True), ("classifier_db_range", 80.0)):
        with pytest.raises(ConfigError, match=f"{name} was removed"):
            OrganConfig.from_dict({**saved, name: value})
    with pytest.raises(ConfigError, match="no field"):
        get_preset("cpu", log_db_weight=0.0)
