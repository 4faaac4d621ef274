"""Configuration of the `note` system (SING): one frozen dataclass and two named presets.

``paper`` is SING's own setup (Défossez et al., "SING: Symbol-to-Instrument Neural
Generator", NeurIPS 2018, and its public training defaults): 4096-channel autoencoder,
128-dimensional latent sequence, 3 x 1024 LSTM, 4 s notes at 16 kHz, spectral loss with
n_fft 1024 / hop 256 / eps 1, Adam 3e-4, batch 64, 50 / 50 / 20 epochs for the three stages.
``cpu`` keeps the same geometry but is narrow enough to train on 2 CPU cores (sizes chosen
from measured step times), feeds the pitch as continuous features, replaces the decoder's
output layer by 24 harmonics of the requested pitch (`harmonic_partials`,
`conv_synthesis`), starts from a Kaiming init and trains every stage at Adam 1e-3 (reasons
next to the preset). The step times below are for SING's conv output; the harmonic output
costs about the same (0.36 s -> 0.72 s per stage-3 batch of 16 with both outputs).

Measured step times (2 CPU cores, torch 2.13 CPU; forward + backward + Adam step on one
batch of 4 s notes, STFT loss; best of 5 after a warm-up; the machine was shared, so
repeated runs varied by about +-25 %)::

    stage 1 (autoencoder)      batch 16  batch 32     stage 2 (LSTM, 9 x 32-step TBPTT)
    channels  256              0.22 s    0.39 s       1 x 256       0.05 s   0.09 s
              384              0.19 s    0.48 s       2 x 256       0.10 s   0.18 s
              512              0.26 s    0.61 s       2 x 384       0.20 s   0.33 s
             1024              0.61 s    1.57 s       2 x 512       0.33 s   0.56 s
             4096 (paper)      7.8 s                  3 x 512       0.51 s   0.94 s
                                                      3 x 1024 (paper) ~11 s CPU-time

    stage 3 (LSTM + decoder), batch 16:  1 x 256   2 x 256   2 x 384   2 x 512
    channels  256                        0.29 s    0.23 s    -         0.42 s
              384                        0.19 s    0.25 s    0.38 s    0.46 s
              512                        0.24 s    0.29 s    0.39 s    0.50 s
             1024                        0.42 s    0.52 s    -         0.73 s
             4096, 3 x 1024 (paper): ~19 s CPU-time (30 s wall on the loaded machine)

Stage-1 loss cost at 512 channels, batch 16: STFT 0.26 s, mel 0.29 s, MFCC 0.30 s, CQT
0.61 s. ``cpu`` = 512 channels, LSTM 2 x 256 (3.6M weights): one epoch of 5,000 notes
at batch 16 (313 steps) takes ~80 s (stage 1), ~32 s (stage 2), ~92 s (stage 3).

Every field is plain data, so a config round-trips through JSON
(`SingConfig.to_dict` / `SingConfig.from_dict`) next to a checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from orchestrion.errors import ConfigError
from orchestrion.presets import check_field_names, pick_preset

MAX_PITCH_SHIFT = 12.0
"""Largest detune of a training note, in semitones (`SingConfig.pitch_shift_semitones`)."""

ACTIVATIONS = ("relu", "elu")
"""Activation names accepted by `SingConfig.activation`."""
LOSS_TRANSFORMS = ("stft", "cqt", "mel", "mfcc")
"""Spectral representations accepted by `SingConfig.loss_transform`."""
LOSS_DISTANCES = ("l1", "mse")
"""Distances accepted by `SingConfig.loss_distance`."""
PITCH_ENCODINGS = ("table", "continuous")
"""How the generator sees the pitch: SING's lookup table, or smooth features of the MIDI number."""
CONV_INITS = ("default", "kaiming")
"""Initialisations accepted by `SingConfig.conv_init`."""
AUTOENCODER_LOSSES = ("spectral", "waveform_mse")
"""Losses accepted by `SingConfig.autoencoder_loss` and `finetune_loss` (SING: the spectral loss)."""


@dataclass(frozen=True)
class SingConfig:
    """Every number that defines a SING model and its three-stage training.

    Geometry (samples at `sample_rate` Hz)
    --------------------------------------
    sample_rate : audio rate in Hz (NSynth: 16,000).
    n_samples : length of a note in samples (NSynth: 64,000 = 4 s). Must be a multiple of
        `stride`.
    kernel_size : window length of the encoder's first conv and the decoder's last
        transposed conv, in samples (SING: 1024). Must be a multiple of `stride`.
    stride : hop between latent frames, in samples (SING: 256).
    context_size : kernel of the decoder's first conv, in latent frames (SING: 9; odd).

    Autoencoder
    -----------
    channels : width of every inner layer of encoder and decoder (SING: 4096).
    latent_dim : size D of each latent frame (SING: 128).
    rewrite_layers : 1x1 convs after the first conv, in encoder and decoder (SING: 2).
    squared_window : multiply the windowed convs' kernels by hann**2 (True, SING) or hann.
    activation : "relu" (SING) or "elu" (the seed's variant).
    elu_alpha : alpha of the ELU; the seed used 10. Ignored for "relu".
    harmonic_partials : 0 (SING) or the number of harmonics of a `HarmonicBranch` added to
        the decoder (`orchestrion.systems.sing.harmonic`, not in SING): per frame, a level,
        its distribution over the first `harmonic_partials` harmonics of the note's f0 and
        a phase for each, predicted from the decoder's hidden frames; the sinusoids are
        summed with the decoder's output. The pitch then sets where the partials lie,
        instead of the loss having to teach it. It learns under the spectral loss, not
        under waveform MSE (4 min of stage 1 with the conv path silenced: held-out spectral
        loss 0.0485 -> 0.0353 under the spectral loss; under MSE it stayed at silence and
        the branch faded to nothing), and added to a trained model it fades (the trained
        conv path already sounds the training pitches; 150 batches of stage 3).
    conv_synthesis : keep SING's synthesis layer (windowed transposed conv) in the decoder
        (True, SING). False leaves the harmonic branch alone to make the sound (needs
        `harmonic_partials` > 0): under Adam, a conv path started silent grows noise at the
        step size whatever its gradient, and a fresh stage 1 under the spectral loss then
        sat at silence (500 batches), while the branch alone learned.
    conv_init : "default" (PyTorch's, as SING's code) or "kaiming" (Kaiming-normal weights,
        zero biases; `orchestrion.systems.sing.model.init_conv_weights` says why).
    synthesis_init_scale : factor on the decoder's last layer under "kaiming" init (a
        fresh decoder then starts quieter than the notes; helps waveform MSE). The
        log-spectral loss, whose gradient vanishes at silence, trains from SING's
        "default" init instead: under "kaiming" it barely moved in 16 batches of a test.
        0 starts the conv path silent, so that a harmonic branch learns first (with the
        conv path's noise at scale 0.001, a fresh stage 1 under the spectral loss sat at
        silence for 500 batches).

    Sequence generator
    ------------------
    n_instruments, n_pitches, n_velocities : lookup-table sizes (NSynth: 1006 / 128 / 128).
    instrument_dim, pitch_dim, velocity_dim, time_dim : embedding sizes (16 / 8 / 2 / 4).
    pitch_encoding : "table" (SING: a learned vector per MIDI pitch, so a pitch no
        training note had keeps its random initial vector) or "continuous" (`pitch_dim`
        fixed sine/cosine features of the MIDI number with periods of 256 semitones down,
        by halves, to 256 / 2**(pitch_dim/2 - 1), fed to the LSTM as they are: nearby pitches
        get nearby inputs, so a pitch never trained lies between trained ones).
    lstm_layers, lstm_hidden : LSTM depth and width (SING: 3 x 1024).
    lstm_truncation_steps : truncated-BPTT length of stage 2, in latent frames (SING: 32;
        0 = whole sequence).

    Loss (stages 1 and 3)
    ---------------------
    loss_transform : "stft" (SING), "cqt", "mel" or "mfcc" (the seed's variants): F in
        log(eps + |F(x)|^2); see `orchestrion.nn.spectral_losses.LogSpectralLoss`.
    loss_distance : "l1" (SING's paper and the seed) or "mse".
    loss_eps : eps inside the log (SING: 1).
    loss_n_fft, loss_hop_length : STFT size and hop of the spectral loss, in samples.
    level_weight : weight of a loudness term added to the spectral loss wherever a stage
        uses it: the L1 distance between frame levels ln(1e-6 + mean x^2) over the spectral
        loss's frames (`orchestrion.nn.spectral_losses.FrameLevelLoss`, one neper = 4.34
        dB). 0 (SING) leaves it out. The log(1 + |X|^2) loss is nearly linear in power on
        quiet partials, so a model unsure where a partial lies makes it quieter everywhere
        at no cost; the term pulls each frame back to the recording's level.
    autoencoder_loss : "spectral" (SING) or "waveform_mse" for stage 1.
    finetune_loss : "spectral" (SING) or "waveform_mse" for stage 3. Waveform MSE can
        only work where a note's phase is reproducible from its (instrument, pitch,
        velocity), as in FluidSynth renders, which start every note at the same phase.
    autoencoder_warmup_batches : stage-1 batches trained with waveform MSE before
        `autoencoder_loss` takes over (SING: 0). The log(eps + |X|^2) loss has almost no
        gradient at a near-silent output (d|X|^2/dx = 2|X|), so a fresh autoencoder first
        falls silent and then climbs out over thousands of batches; MSE batches move it
        toward the target first. Measured on 10 instruments (cpu preset, batch 16): after
        400 spectral-only batches the held-out spectral loss was 0.0389 against 0.0395 for
        plain silence; with 300 MSE batches first it was under silence (0.0329 vs 0.0381)
        200 batches after the switch.

    Data augmentation
    -----------------
    pitch_shift_semitones : each training note (all stages) is detuned by a shift drawn
        uniformly from +-this many semitones (resampled with soxr, so it also gets shorter
        or longer by up to 2.4 %) and labelled with its fractional pitch; continuous pitch
        only. 0 (SING) trains on whole MIDI pitches only. Below 0.5, no training sound
        comes within 50 cents (the pitch-accuracy tolerance) of a pitch held out of
        training, so the held-out figures still measure pitches the model never heard.

    Optimisation
    ------------
    learning_rate : Adam step size (3e-4).
    batch_size : notes per training batch.
    autoencoder_epochs, sequence_epochs, finetune_epochs : epochs of stages 1, 2, 3.
    """

    sample_rate: int = 16_000
    n_samples: int = 64_000
    kernel_size: int = 1024
    stride: int = 256
    context_size: int = 9

    channels: int = 4096
    latent_dim: int = 128
    rewrite_layers: int = 2
    squared_window: bool = True
    activation: str = "relu"
    elu_alpha: float = 10.0
    conv_init: str = "default"
    synthesis_init_scale: float = 1.0
    harmonic_partials: int = 0
    conv_synthesis: bool = True

    n_instruments: int = 1006
    n_pitches: int = 128
    n_velocities: int = 128
    instrument_dim: int = 16
    pitch_dim: int = 8
    velocity_dim: int = 2
    time_dim: int = 4
    pitch_encoding: str = "table"
    lstm_layers: int = 3
    lstm_hidden: int = 1024
    lstm_truncation_steps: int = 32

    loss_transform: str = "stft"
    loss_distance: str = "l1"
    loss_eps: float = 1.0
    loss_n_fft: int = 1024
    loss_hop_length: int = 256
    autoencoder_loss: str = "spectral"
    finetune_loss: str = "spectral"
    level_weight: float = 0.0
    autoencoder_warmup_batches: int = 0

    pitch_shift_semitones: float = 0.0

    learning_rate: float = 3e-4
    batch_size: int = 64
    autoencoder_epochs: int = 50
    sequence_epochs: int = 50
    finetune_epochs: int = 20

    def __post_init__(self) -> None:
        positive = (
            "sample_rate", "n_samples", "kernel_size", "stride", "context_size", "channels",
            "latent_dim", "n_instruments", "n_pitches", "n_velocities", "instrument_dim",
            "pitch_dim", "velocity_dim", "lstm_layers", "lstm_hidden", "loss_n_fft",
            "loss_hop_length", "batch_size",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"SING config: {name} must be a positive integer, got {value!r}")
        non_negative = (
            "rewrite_layers", "harmonic_partials", "time_dim", "lstm_truncation_steps", "autoencoder_warmup_batches",
            "autoencoder_epochs", "sequence_epochs", "finetune_epochs",
        )
        for name in non_negative:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"SING config: {name} must be an integer >= 0, got {value!r}")
        for name in ("elu_alpha", "loss_eps", "learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"SING config: {name} must be a positive number, got {value!r}")
        for name in ("level_weight", "synthesis_init_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"SING config: {name} must be a number >= 0, got {value!r}")
        if not isinstance(self.conv_synthesis, bool):
            raise ConfigError(f"SING config: conv_synthesis must be true or false, got {self.conv_synthesis!r}")
        if not self.conv_synthesis and self.harmonic_partials == 0:
            raise ConfigError("SING config: conv_synthesis = false needs harmonic_partials > 0 "
                              "(the decoder would have no output layer)")
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("conv_init", self.conv_init, CONV_INITS)
        _check_choice("pitch_encoding", self.pitch_encoding, PITCH_ENCODINGS)
        if self.pitch_encoding == "continuous" and self.pitch_dim % 2:
            raise ConfigError(
                f"SING config: a continuous pitch encoding needs an even pitch_dim (sine and "
                f"cosine pairs), got {self.pitch_dim}"
            )
        if not 0.0 <= self.pitch_shift_semitones <= MAX_PITCH_SHIFT:
            raise ConfigError(
                f"SING config: pitch_shift_semitones must lie in 0..{MAX_PITCH_SHIFT:g}, got "
                f"{self.pitch_shift_semitones!r}"
            )
        if self.pitch_shift_semitones > 0 and self.pitch_encoding != "continuous":
            raise ConfigError(
                "SING config: pitch_shift_semitones needs pitch_encoding = 'continuous' (a "
                "pitch table has no entry for a fractional pitch)"
            )
        _check_choice("loss_transform", self.loss_transform, LOSS_TRANSFORMS)
        _check_choice("loss_distance", self.loss_distance, LOSS_DISTANCES)
        _check_choice("autoencoder_loss", self.autoencoder_loss, AUTOENCODER_LOSSES)
        _check_choice("finetune_loss", self.finetune_loss, AUTOENCODER_LOSSES)
        if self.kernel_size % self.stride:
            raise ConfigError(
                f"SING config: kernel_size ({self.kernel_size}) must be a multiple of stride "
                f"({self.stride}) so that the padded note splits into whole frames"
            )
        if self.n_samples % self.stride:
            raise ConfigError(
                f"SING config: n_samples ({self.n_samples}) must be a multiple of stride "
                f"({self.stride}); 64,000 = 250 x 256 for NSynth"
            )
        if self.context_size % 2 == 0:
            raise ConfigError(
                "SING config: context_size must be odd (a centred context), "
                f"got {self.context_size}"
            )
        if self.loss_n_fft > self.n_samples:
            raise ConfigError(
                f"SING config: loss_n_fft ({self.loss_n_fft}) is longer than a note "
                f"({self.n_samples} samples)"
            )

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SingConfig:
        """Build a config from a dict (e.g. a checkpoint's JSON); unknown keys raise ConfigError."""
        _check_fields(values)
        return cls(**values)


TRAINING_ONLY_FIELDS = ("learning_rate", "batch_size", "autoencoder_epochs", "sequence_epochs", "finetune_epochs",
                        "autoencoder_loss", "finetune_loss", "level_weight", "autoencoder_warmup_batches",
                        "pitch_shift_semitones")
"""Fields that generating a note never reads (the optimiser, the stages' lengths and losses,
the augmentation): a model's config keeps them under "sing_training", apart from "sing". The
spectral distance (``loss_*``) stays with the model: `evaluate note` measures with it."""


def config_parts(config: SingConfig) -> dict[str, dict[str, Any]]:
    """A config as stored: {"sing": what generation reads, "sing_training": the rest}."""
    values = config.to_dict()
    return {"sing": {k: v for k, v in values.items() if k not in TRAINING_ONLY_FIELDS},
            "sing_training": {k: v for k, v in values.items() if k in TRAINING_ONLY_FIELDS}}


def config_of(document: Mapping[str, Any]) -> SingConfig:
    """The config a stored document holds (:func:`config_parts`, or one "sing" dict of every field)."""
    return SingConfig.from_dict({**document.get("sing_training", {}), **document["sing"]})


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"SING config: {name} must be one of {', '.join(choices)}; got {value!r}"
        )


def _check_fields(values: dict[str, Any]) -> None:
    check_field_names(SingConfig, values, "SING")


PRESETS: dict[str, SingConfig] = {
    # SING's sizes and schedule (paper + public code defaults).
    "paper": SingConfig(),
    # SING's encoder, LSTM and 4 s geometry, narrowed for 2 CPU cores, with a harmonic
    # decoder output (not SING's): the decoder's hidden frames drive 24 harmonics of the
    # requested pitch (`harmonic_partials`, `conv_synthesis=False`), so the pitch sets
    # where the partials lie. Same data, stages and budget (22 instruments, +-0.4 semitone
    # detune, one machine): SING's conv output (60 + 25 + 195 min) named the right pitch
    # on 46.9 % of 192 validation notes and 15.4 % of those whose pitch no instrument
    # trained on; the harmonic output after stage 2 alone (25 + 12 min, 48 notes) 72.9 % and
    # 83.3 %. Widths chosen by measured step times (module docstring).
    # The pitch enters the LSTM as continuous sine/cosine features, so that pitches held
    # out of training for every instrument can still be asked for. Stage 1 uses SING's
    # spectral loss: the harmonic output learns under it (the branch's phases never fit a
    # waveform under MSE: 4 min, held-out error stayed at silence). SING's conv output
    # needed waveform MSE in stage 1 instead (`autoencoder_loss="waveform_mse"`, with the
    # quiet Kaiming init below: under the spectral loss a fresh autoencoder fell silent,
    # 35 min, held-out spectral loss 0.0465 against 0.0495 for silence). Kaiming init: with
    # PyTorch's default the autoencoder sat at silence (relative MSE 1.000 after 460
    # batches of 64 notes; see init_conv_weights).
    # Stage 3 uses SING's spectral loss: MSE cannot carry a phase to a pitch the model never
    # heard. (SING's conv output, ten instruments: 14 minutes of spectral fine-tuning lifted
    # pitch accuracy from 3.3 % to 39.2 %, 35 minutes of MSE fine-tuning reached 19.2 %.)
    "cpu": SingConfig(
        channels=512,
        conv_init="kaiming",
        synthesis_init_scale=0.1,
        harmonic_partials=24,
        conv_synthesis=False,
        pitch_encoding="continuous",
        pitch_dim=12,
        autoencoder_loss="spectral",
        finetune_loss="spectral",
        learning_rate=1e-3,
        lstm_layers=2,
        lstm_hidden=256,
        batch_size=16,
        autoencoder_epochs=16,
        sequence_epochs=16,
        finetune_epochs=8,
    ),
}
"""Named configurations: ``paper`` (SING's) and ``cpu`` (2-core training)."""


def get_preset(name: str, **overrides: Any) -> SingConfig:
    """The preset `name` ("paper" or "cpu") with `overrides` applied field by field.

    Raises ConfigError for an unknown preset name, an unknown field, or an invalid value.
    """
    return pick_preset(PRESETS, name, overrides, "SING")
