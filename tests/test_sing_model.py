"""SING model: presets build and run, geometry gives exactly 64,000 samples, gradients reach
the decoder's first layer under every spectral loss, and each training stage learns."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from orchestrion.errors import ConfigError
from orchestrion.nn.spectral_losses import LogSpectralLoss
from orchestrion.systems.sing import PRESETS, STAGES, FrameGeometry, Sing, SingConfig, get_preset
from orchestrion.nn.pitch import pitch_to_hz
from orchestrion.systems.sing.harmonic import HarmonicBranch
from orchestrion.systems.sing.model import spectral_loss_from_config

SAMPLE_RATE = 16_000


def tiny_config(**overrides) -> SingConfig:
    """SING's geometry (1024 / 256 / 9) on short notes, with narrow layers: fast on 2 cores."""
    values = dict(
        n_samples=8192, channels=32, latent_dim=16, lstm_layers=1, lstm_hidden=32,
        n_instruments=4, lstm_truncation_steps=8, batch_size=4,
    )
    values.update(overrides)
    return SingConfig(**values)


def harmonic_notes(n_samples: int, pitches=(57, 64, 69, 76)) -> torch.Tensor:
    """(B, n_samples) decaying notes with 4 harmonics at the given MIDI pitches."""
    time = torch.arange(n_samples, dtype=torch.float32) / SAMPLE_RATE
    notes = []
    for pitch in pitches:
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
        wave = sum(torch.sin(2 * math.pi * k * f0 * time) / k for k in range(1, 5))
        notes.append(0.3 * wave * torch.exp(-3.0 * time))
    return torch.stack(notes)


def note_ids(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(instrument, pitch, velocity), each (batch,)."""
    return (
        torch.arange(batch) % 4,
        torch.tensor([57, 64, 69, 76])[:batch],
        torch.tensor([25, 50, 100, 127])[:batch],
    )


# --------------------------------------------------------------------------- presets


def test_presets_are_the_documented_ones():
    paper = PRESETS["paper"]
    assert (paper.channels, paper.latent_dim) == (4096, 128)
    assert (paper.lstm_layers, paper.lstm_hidden) == (3, 1024)
    assert (paper.n_samples, paper.sample_rate) == (64_000, 16_000)
    assert (paper.kernel_size, paper.stride, paper.context_size) == (1024, 256, 9)
    embeddings = (paper.instrument_dim, paper.pitch_dim, paper.velocity_dim, paper.time_dim)
    assert embeddings == (16, 8, 2, 4)
    assert (paper.autoencoder_epochs, paper.sequence_epochs, paper.finetune_epochs) == (50, 50, 20)
    assert paper.learning_rate == 3e-4 and paper.loss_eps == 1.0 and paper.loss_transform == "stft"
    cpu = PRESETS["cpu"]
    assert cpu.n_samples == 64_000
    assert cpu.channels < paper.channels and cpu.lstm_hidden < paper.lstm_hidden
    assert paper.pitch_encoding == "table" and cpu.pitch_encoding == "continuous"
    assert (paper.autoencoder_loss, paper.finetune_loss, paper.autoencoder_warmup_batches) == ("spectral", "spectral", 0)


def test_get_preset_applies_overrides_and_rejects_unknowns():
    config = get_preset("cpu", activation="elu", loss_transform="cqt")
    assert (config.activation, config.elu_alpha, config.loss_transform) == ("elu", 10.0, "cqt")
    with pytest.raises(ConfigError, match="unknown SING preset 'gpu'"):
        get_preset("gpu")
    with pytest.raises(ConfigError, match="no field.*chanels"):
        get_preset("cpu", chanels=64)
    with pytest.raises(ConfigError, match="activation"):
        get_preset("cpu", activation="tanh")
    with pytest.raises(ConfigError, match="multiple of stride"):
        get_preset("cpu", n_samples=64_001)


def test_config_round_trips_through_a_dict():
    config = get_preset("cpu", activation="elu")
    assert SingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="no field"):
        SingConfig.from_dict({**config.to_dict(), "dropout": 0.1})


def test_geometry_matches_sing_arithmetic():
    geometry = FrameGeometry.from_config(PRESETS["paper"])
    assert geometry.pad_samples == 2304
    assert geometry.padded_length == 68_608
    assert geometry.n_steps == 265
    assert geometry.decoded_length == 65_024
    assert geometry.decoded_length - 2 * geometry.output_margin == 64_000


def test_cpu_preset_forward_gives_64000_finite_samples():
    torch.manual_seed(0)
    model = Sing(PRESETS["cpu"]).eval()
    with torch.no_grad():
        audio = model(*note_ids(2))
        latent = model.encode(harmonic_notes(64_000, pitches=(60, 67)))
    assert audio.shape == (2, 64_000)
    assert torch.isfinite(audio).all()
    assert latent.shape == (2, 128, 265)


def test_paper_preset_builds_and_runs_forward_on_batch_one():
    """SING's full size (102M weights) at its real 64,000-sample length, one note."""
    torch.manual_seed(0)
    model = Sing(PRESETS["paper"]).eval()
    assert 100e6 < model.count_parameters()["total"] < 105e6
    with torch.no_grad():
        audio = model(torch.tensor([3]), torch.tensor([60]), torch.tensor([100]))
    assert audio.shape == (1, 64_000)
    assert torch.isfinite(audio).all()


def test_every_preset_builds_with_both_activations_on_short_notes():
    for name in PRESETS:
        for activation in ("relu", "elu"):
            config = get_preset(name, activation=activation, n_samples=4096)
            if config.channels > 1024:  # the paper width is covered above; keep this one quick
                config = dataclasses.replace(config, channels=64, lstm_hidden=64)
            model = Sing(config)
            with torch.no_grad():
                audio = model(*note_ids(1))
            assert audio.shape == (1, 4096) and torch.isfinite(audio).all()


# --------------------------------------------------------------------------- argument checks


def test_bad_inputs_raise_config_errors():
    model = Sing(tiny_config())
    instrument, pitch, velocity = note_ids(2)
    with pytest.raises(ConfigError, match="pitch values must lie in 0..127"):
        model(instrument, torch.tensor([60, 128]), velocity)
    with pytest.raises(ConfigError, match="instrument values"):
        model(torch.tensor([0, 4]), pitch, velocity)
    with pytest.raises(ConfigError, match="same batch|share one batch"):
        model(instrument, pitch[:1], velocity)
    with pytest.raises(ConfigError, match="notes shaped"):
        model.autoencode(torch.zeros(2, 1000))
    with pytest.raises(ConfigError, match="unknown SING training stage"):
        model.stage_parameters("pretrain")


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("activation", ["relu", "elu"])
@pytest.mark.parametrize("transform", ["stft", "cqt", "mel", "mfcc"])
def test_spectral_loss_gradient_reaches_decoder_first_layer(transform, activation):
    """The seed's failure: its CQT/MFC losses left the autograd graph, so nothing trained."""
    torch.manual_seed(0)
    config = tiny_config(activation=activation, loss_transform=transform)
    model = Sing(config)
    loss_fn = spectral_loss_from_config(config)
    target_notes = harmonic_notes(config.n_samples)
    rebuilt = model.synthesize_padded(*note_ids(4))
    loss = loss_fn(rebuilt, model.reconstruction_target(target_notes))
    loss.backward()
    grad = model.decoder.first_layer.weight.grad
    assert grad is not None
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    generator_grad = model.generator.lstm.weight_ih_l0.grad
    assert generator_grad is not None
    assert torch.isfinite(generator_grad).all() and generator_grad.abs().sum() > 0


# --------------------------------------------------------------------------- stages


def _train(parameters, step, n_steps: int, lr: float) -> tuple[float, float]:
    optimiser = torch.optim.Adam(parameters, lr=lr)
    losses = []
    for _ in range(n_steps):
        optimiser.zero_grad()
        loss = step()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize(
    ("stage_loss", "lr", "ratio"), [("spectral", 1e-3, 0.8), ("waveform_mse", 1e-2, 0.9)]
)
def test_autoencoder_stage_lowers_its_loss(stage_loss, lr, ratio):
    """Waveform MSE (phase-exact) falls more slowly than the spectral loss: its own bar."""
    torch.manual_seed(0)
    config = tiny_config(autoencoder_loss=stage_loss)
    model = Sing(config)
    notes = harmonic_notes(config.n_samples)
    target = model.reconstruction_target(notes)
    loss_fn = spectral_loss_from_config(config) if stage_loss == "spectral" else F.mse_loss
    first, last = _train(
        model.stage_parameters("autoencoder"),
        lambda: loss_fn(model.autoencode(notes), target),
        n_steps=16,
        lr=lr,
    )
    assert last < ratio * first


def test_sequence_stage_lowers_its_loss_with_truncated_backprop():
    torch.manual_seed(0)
    config = tiny_config(lstm_truncation_steps=16)  # 47 latent frames -> 3 chunks
    model = Sing(config)
    notes = harmonic_notes(config.n_samples)
    with torch.no_grad():
        target = model.encode(notes)
    ids = note_ids(4)
    optimiser = torch.optim.Adam(model.stage_parameters("sequence"), lr=3e-3)
    chunk = config.lstm_truncation_steps

    def full_loss() -> float:
        with torch.no_grad():
            return F.mse_loss(model.generate_latent(*ids), target).item()

    before = full_loss()
    for _ in range(4):
        state = None
        for start in range(0, model.geometry.n_steps, chunk):
            length = min(chunk, model.geometry.n_steps - start)
            optimiser.zero_grad()
            latent, state = model.generator(*ids, start=start, length=length, state=state)
            state = tuple(s.detach() for s in state)
            F.mse_loss(latent, target[..., start : start + length]).backward()
            optimiser.step()
    assert full_loss() < 0.5 * before


def test_chunked_generation_equals_whole_sequence():
    torch.manual_seed(0)
    model = Sing(tiny_config()).eval()
    ids = note_ids(2)
    with torch.no_grad():
        whole = model.generate_latent(*ids)
        first, state = model.generator(*ids, start=0, length=10)
        rest, _ = model.generator(*ids, start=10, state=state)
    torch.testing.assert_close(torch.cat([first, rest], dim=-1), whole)


def test_finetune_stage_lowers_spectral_loss():
    torch.manual_seed(0)
    config = tiny_config()
    model = Sing(config)
    loss_fn = spectral_loss_from_config(config)
    target = model.reconstruction_target(harmonic_notes(config.n_samples))
    ids = note_ids(4)
    first, last = _train(
        model.stage_parameters("finetune"),
        lambda: loss_fn(model.synthesize_padded(*ids), target),
        n_steps=12,
        lr=1e-3,
    )
    assert last < 0.8 * first


def test_stage_parameters_partition_the_model():
    model = Sing(tiny_config())
    ids = lambda stage: {id(p) for p in model.stage_parameters(stage)}  # noqa: E731
    assert ids("autoencoder") | ids("sequence") == {id(p) for p in model.parameters()}
    assert ids("finetune") == ids("sequence") | {id(p) for p in model.decoder.parameters()}
    assert set(STAGES) == {"autoencoder", "sequence", "finetune"}


def test_spectral_loss_from_config_follows_the_config():
    config = tiny_config(loss_transform="mfcc", loss_distance="mse", loss_eps=0.5)
    loss = spectral_loss_from_config(config)
    assert isinstance(loss, LogSpectralLoss)
    assert (loss.transform_name, loss.distance, loss.eps) == ("mfcc", "mse", 0.5)


# --------------------------------------------------------------------------- pitch encoding


def test_continuous_pitch_features_are_distinct_and_smooth():
    from orchestrion.systems.sing.model import ContinuousPitch

    features = ContinuousPitch(12)(torch.arange(128))
    assert features.shape == (128, 12)
    distance = torch.cdist(features, features)
    assert float(distance[~torch.eye(128, dtype=torch.bool)].min()) > 1e-3  # no two pitches alike
    step = distance.diagonal(offset=1)  # neighbours
    octave = distance.diagonal(offset=12)
    assert bool((step[:116] < octave).all())


def test_continuous_pitch_has_no_per_pitch_weights_and_needs_an_even_size():
    model = Sing(tiny_config(pitch_encoding="continuous", pitch_dim=12))
    assert not any("pitch_table" in name for name in model.state_dict())
    instrument, pitch, velocity = note_ids(2)
    assert model(instrument, pitch, velocity).shape == (2, 8192)
    with pytest.raises(ConfigError, match="even pitch_dim"):
        tiny_config(pitch_encoding="continuous", pitch_dim=7)
    with pytest.raises(ConfigError, match="pitch_encoding"):
        tiny_config(pitch_encoding="onehot")


def _heldout_pitch_error(encoding: str) -> tuple[float, float]:
    """Train the generator to output a latent that varies smoothly with pitch, never showing
    it pitch 63; return (mean squared error on trained pitches, on pitch 63)."""
    torch.manual_seed(0)
    config = tiny_config(pitch_encoding=encoding, pitch_dim=12, lstm_hidden=48)
    generator = Sing(config).generator
    steps = generator.n_steps

    def target(pitch: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(config.latent_dim, dtype=torch.float32)[None, :, None]
        time = torch.linspace(0, 1, steps)[None, None, :]
        return torch.sin(rows * 0.3 + pitch[:, None, None].float() / 6.0) * (1 - time)

    trained = torch.tensor([p for p in range(55, 72) if p != 63])
    optimiser = torch.optim.Adam(generator.parameters(), lr=1e-2)
    ids = torch.zeros(len(trained), dtype=torch.long)
    for _ in range(250):
        optimiser.zero_grad()
        latent, _ = generator(ids, trained, ids + 100)
        F.mse_loss(latent, target(trained)).backward()
        optimiser.step()
    with torch.no_grad():
        seen = F.mse_loss(generator(ids, trained, ids + 100)[0], target(trained)).item()
        held = torch.tensor([63])
        unseen = F.mse_loss(generator(ids[:1], held, ids[:1] + 100)[0], target(held)).item()
    return seen, unseen


def test_continuous_pitch_generalises_to_a_pitch_never_trained():
    seen, unseen = _heldout_pitch_error("continuous")
    _, unseen_table = _heldout_pitch_error("table")
    assert seen < 0.05, seen
    assert unseen < 0.25 * unseen_table, (unseen, unseen_table)


def test_kaiming_init_lets_the_fresh_encoder_tell_notes_apart() -> None:
    """PyTorch's default init gives nearly the same latents for every note (bias-dominated):
    the cpu preset's Kaiming init does not, and its decoder starts quieter than the notes."""
    spread = {}
    for conv_init in ("default", "kaiming"):
        torch.manual_seed(0)
        model = Sing(get_preset("cpu", conv_init=conv_init, n_samples=8192,  # SING's conv output
                                conv_synthesis=True, harmonic_partials=0))
        notes = 0.2 * harmonic_notes(8192)
        with torch.no_grad():
            latent = model.encode(notes)[..., 10:20]  # frames inside the notes
            output = model.crop_output(model.autoencode(notes))
        spread[conv_init] = float(latent.std(dim=0).mean() / latent.abs().mean())
        if conv_init == "kaiming":
            assert output.pow(2).mean().sqrt() < 0.2 * notes.pow(2).mean().sqrt()
    assert spread["default"] < 0.1 < 0.3 < spread["kaiming"], spread
    with pytest.raises(ConfigError, match="conv_init"):
        get_preset("cpu", conv_init="xavier")


def test_continuous_pitch_takes_fractional_pitches_and_a_table_refuses_them():
    torch.manual_seed(0)
    model = Sing(tiny_config(pitch_encoding="continuous", pitch_dim=12))
    instrument, _, velocity = note_ids(2)
    with torch.no_grad():
        whole = model.generate_latent(instrument, torch.tensor([60, 60]), velocity)
        half = model.generate_latent(instrument, torch.tensor([60.5, 60.5]), velocity)
    assert whole.shape == half.shape and not torch.allclose(whole, half)
    with pytest.raises(ConfigError, match="0..127"):
        model(instrument, torch.tensor([60.0, 127.5]), velocity)
    table = Sing(tiny_config())
    with pytest.raises(ConfigError, match="integer"):
        table(instrument, torch.tensor([60.5, 61.0]), velocity)
    with pytest.raises(ConfigError, match="continuous"):
        tiny_config(pitch_shift_semitones=0.4)
    with pytest.raises(ConfigError, match="0..12"):
        tiny_config(pitch_encoding="continuous", pitch_dim=12, pitch_shift_semitones=-1.0)


# --------------------------------------------------------------------------- harmonic branch


def _fixed_branch(partials: int, controls: list[float]) -> HarmonicBranch:
    """A branch whose level and harmonic logits are constants (`controls`), whatever the frames."""
    branch = HarmonicBranch(8, partials, kernel_size=1024, stride=256, sample_rate=SAMPLE_RATE)
    with torch.no_grad():
        branch.controls.weight.zero_()
        branch.controls.bias[: len(controls)] = torch.tensor(controls)
        branch.controls.bias[1 + partials : 1 + 2 * partials] = 1.0
    return branch


@pytest.mark.parametrize("pitch", [45.0, 69.0, 60.5, 81.25])
def test_harmonic_branch_sounds_the_requested_pitch(pitch):
    """One dominant partial: the output's spectral peak lies within a bin of f0."""
    branch = _fixed_branch(4, [1.0, 8.0, -8.0, -8.0, -8.0])
    with torch.no_grad():
        wave = branch(torch.zeros(1, 8, 257), torch.tensor([pitch]))[0]
    assert wave.shape == (65_024,)  # the decoder's output length for 257 frames
    spectrum = torch.fft.rfft(wave * torch.hann_window(wave.numel()))
    peak_hz = float(spectrum.abs().argmax()) * SAMPLE_RATE / wave.numel()
    assert abs(peak_hz - float(pitch_to_hz(torch.tensor(pitch)))) < SAMPLE_RATE / wave.numel()
    level = float(F.softplus(torch.tensor(1.0)))
    assert float(wave.pow(2).mean().sqrt()) * math.sqrt(2) == pytest.approx(level, rel=0.01)


def test_harmonic_branch_phase_controls_shift_each_partial():
    """(cos, sin) = (0, 1) turns the partial's sine into a cosine: a quarter-period shift."""
    sine = _fixed_branch(1, [1.0, 0.0])
    cosine = _fixed_branch(1, [1.0, 0.0])
    with torch.no_grad():
        cosine.controls.bias[2:4] = torch.tensor([0.0, 1.0])
        pitch = torch.tensor([69.0])
        a = sine(torch.zeros(1, 8, 257), pitch)[0]
        b = cosine(torch.zeros(1, 8, 257), pitch)[0]
    level = float(F.softplus(torch.tensor(1.0)))
    quarter = round(SAMPLE_RATE / 440.0 / 4)  # 9 samples: 0.016 rad short of a quarter period
    assert float(b[0]) == pytest.approx(level, rel=1e-4) and abs(float(a[0])) < 1e-4
    assert torch.allclose(b[:4000], a[quarter : 4000 + quarter], atol=0.03 * level)


def test_harmonic_branch_leaves_out_partials_above_nyquist():
    branch = _fixed_branch(8, [1.0] + [0.0] * 8)
    with torch.no_grad():
        amplitudes = branch.harmonic_amplitudes(torch.zeros(2, 8, 5), torch.tensor([100.0, 120.0]))
    f0 = float(pitch_to_hz(torch.tensor(100.0)))  # 2637 Hz: harmonics 1 and 2 are below 7600 Hz
    audible = int(0.95 * SAMPLE_RATE / 2 // f0)
    assert torch.all(amplitudes[0, :audible] > 0) and torch.all(amplitudes[0, audible:] == 0)
    assert amplitudes[0].sum(0).tolist() == pytest.approx([float(F.softplus(torch.tensor(1.0)))] * 5)
    assert torch.all(amplitudes[1] == 0)  # 8372 Hz: no partial fits, and no NaN either


def test_harmonic_decoder_needs_the_pitch_and_trains_its_branch():
    torch.manual_seed(0)
    config = tiny_config(harmonic_partials=8)
    model = Sing(config)
    plain = Sing(tiny_config())
    assert model.decoder.harmonic is not None and plain.decoder.harmonic is None
    ids = note_ids(4)
    loss_fn = spectral_loss_from_config(config)
    output = model.synthesize_padded(*ids)
    assert output.shape == plain.synthesize_padded(*ids).shape
    loss_fn(output, model.reconstruction_target(harmonic_notes(config.n_samples))).backward()
    grad = model.decoder.harmonic.controls.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="needs the notes' pitches"):
        model.autoencode(harmonic_notes(config.n_samples))
    with pytest.raises(ConfigError, match="harmonic_partials"):
        tiny_config(harmonic_partials=-1)
    with pytest.raises(ConfigError, match="conv_synthesis = false needs harmonic_partials"):
        tiny_config(conv_synthesis=False)


def test_a_harmonic_only_decoder_sounds_just_its_branch():
    torch.manual_seed(0)
    model = Sing(tiny_config(harmonic_partials=8, conv_synthesis=False)).eval()
    assert model.decoder.synthesis is None
    assert not any(name.startswith("decoder.synthesis") for name in model.state_dict())
    instrument, pitch, velocity = note_ids(2)
    with torch.no_grad():
        latent = model.generate_latent(instrument, pitch, velocity)
        decoder = model.decoder
        sound = decoder.harmonic(decoder.hidden_frames(latent), pitch.float())
        assert torch.equal(decoder(latent, pitch), sound)
