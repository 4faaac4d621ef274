"""SING's networks: a windowed conv autoencoder on waveforms and an LSTM sequence generator.

After Défossez et al., "SING: Symbol-to-Instrument Neural Generator" (NeurIPS 2018), as
condensed in SYSTEMS.md §5, with the ELU option of Thunus, Thomsen & Meyer,
"Modifications to SING" (seed 004).

Pieces and training stages
--------------------------
1. `WaveformEncoder` + `WaveformDecoder` form an autoencoder on padded waveforms
   (`Sing.autoencode`), trained with the spectral loss (or waveform MSE).
2. `SequenceGenerator` (embeddings of instrument, pitch, velocity and time step -> LSTM ->
   Linear) is trained with MSE to output the frozen encoder's latent sequence
   (`Sing.encode`), with truncated back-propagation through time.
3. Generator + decoder (`Sing.synthesize_padded`) are fine-tuned end to end with the
   spectral loss; the encoder is no longer used.

Frame arithmetic (`FrameGeometry`, numbers for SING's 64,000 / 1024 / 256 / 9)
-----------------------------------------------------------------------------
A decoded sample needs the overlap-add of kernel/stride = 4 transposed-conv frames, and
each frame sees ``context_size`` = 9 latent frames, so SING pads the note on both sides
and crops the decoder's output:

- ``strip = (kernel - stride) + (context - 1) / 2 * stride = 768 + 1024 = 1792`` samples
  are lost at each edge by the decoder (incomplete overlap-add + valid context conv).
- ``pad = strip + kernel / 2 = 2304`` zeros are added on each side of the note
  (SING's default ``--pad``), so the padded note has ``64,000 + 2 * 2304 = 68,608``
  samples.
- The encoder (kernel 1024, stride 256, no padding) gives
  ``n_steps = (68,608 - 1024) / 256 + 1 = 265`` latent frames: the LSTM's length.
- The decoder's context conv (kernel 9, no padding) leaves ``265 - 8 = 257`` frames; its
  transposed conv (kernel 1024, stride 256, cropping ``kernel - stride = 768`` at each end)
  gives ``(257 - 1) * 256 - 2 * 768 + 1024 = 65,024 = 64,000 + 1024`` samples: the note with
  a 512-sample margin on each side (its training target is the note zero-padded by 512).
- `Sing.forward` crops the margins: exactly ``n_samples = 64,000`` samples.

The decoder's first conv is therefore "valid" (no padding) as in SING's code, not "same":
the 9-frame context at the edges sees real (padded-silence) frames instead of zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.errors import ConfigError
from orchestrion.nn.spectral_losses import LogSpectralLoss
from orchestrion.systems.sing.harmonic import HarmonicBranch
from orchestrion.systems.sing.presets import SingConfig

STAGES = ("autoencoder", "sequence", "finetune")
"""SING's three training stages, in order."""


@dataclass(frozen=True)
class FrameGeometry:
    """Sample and frame counts that tie the note length to the conv arithmetic.

    All lengths are in samples except `n_steps` and `context_size` (latent frames).
    """

    n_samples: int
    kernel_size: int
    stride: int
    context_size: int

    @classmethod
    def from_config(cls, config: SingConfig) -> FrameGeometry:
        return cls(config.n_samples, config.kernel_size, config.stride, config.context_size)

    @property
    def decoder_strip(self) -> int:
        """Samples the decoder loses at each edge of its input span: 1792 for SING."""
        return (self.kernel_size - self.stride) + (self.context_size - 1) // 2 * self.stride

    @property
    def output_margin(self) -> int:
        """Extra samples the decoder outputs on each side of the note: kernel / 2 = 512."""
        return self.kernel_size // 2

    @property
    def pad_samples(self) -> int:
        """Zeros added on each side of a note before encoding: 2304 for SING."""
        return self.decoder_strip + self.output_margin

    @property
    def padded_length(self) -> int:
        """Length of a padded note: 68,608 for SING."""
        return self.n_samples + 2 * self.pad_samples

    @property
    def n_steps(self) -> int:
        """Latent frames per note (encoder output, LSTM length): 265 for SING."""
        return (self.padded_length - self.kernel_size) // self.stride + 1

    @property
    def decoded_length(self) -> int:
        """Decoder output length from `n_steps` frames: n_samples + kernel = 65,024 for SING."""
        return (self.n_steps - self.context_size + 2) * self.stride - self.kernel_size


def make_activation(config: SingConfig) -> nn.Module:
    """ReLU (SING) or ELU(alpha = `config.elu_alpha`) (the seed's variant, alpha 10)."""
    if config.activation == "relu":
        return nn.ReLU()
    if config.activation == "elu":
        return nn.ELU(alpha=float(config.elu_alpha))
    raise ConfigError(f"unknown activation {config.activation!r}; use relu or elu")


def hann_window(length: int, squared: bool = True) -> Tensor:
    """Periodic Hann window (length,), squared if `squared` (SING smooths its convs by hann**2)."""
    window = torch.hann_window(length, periodic=True, dtype=torch.float32)
    return window.square() if squared else window


class WindowedConv1d(nn.Conv1d):
    """Conv1d whose kernel is multiplied by a fixed (squared) Hann window at every call.

    The learned weight stays unconstrained; the window (a non-persistent buffer, rebuilt
    from the config) makes each frame's analysis filter taper to zero at its edges.
    Input (B, C_in, T) -> output (B, C_out, (T - kernel) / stride + 1).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        squared: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.register_buffer("window", hann_window(kernel_size, squared), persistent=False)

    def forward(self, signal: Tensor) -> Tensor:
        return self._conv_forward(signal, self.weight * self.window, self.bias)


class WindowedConvTranspose1d(nn.ConvTranspose1d):
    """ConvTranspose1d (overlap-add synthesis) whose kernel is multiplied by a fixed window.

    ``padding = kernel - stride`` crops the edges where fewer than kernel/stride frames
    overlap. Input (B, C_in, L) -> output (B, C_out, (L - 1) * stride - 2 * (kernel - stride)
    + kernel).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        squared: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size - stride
        )
        self.register_buffer("window", hann_window(kernel_size, squared), persistent=False)

    def forward(self, frames: Tensor) -> Tensor:
        return F.conv_transpose1d(
            frames, self.weight * self.window, self.bias, self.stride, self.padding,
            self.output_padding, self.groups, self.dilation,
        )


def _rewrite_stack(config: SingConfig) -> nn.Sequential:
    """`rewrite_layers` x (1x1 conv C -> C, activation)."""
    layers: list[nn.Module] = []
    for _ in range(config.rewrite_layers):
        layers += [
            nn.Conv1d(config.channels, config.channels, kernel_size=1),
            make_activation(config),
        ]
    return nn.Sequential(*layers)


def init_conv_weights(module: nn.Module) -> None:
    """Kaiming-normal (ReLU gain) weights and zero biases for every conv in `module`.

    PyTorch's default conv init (uniform, gain 1/sqrt(3), random biases) shrinks the signal
    at every layer, so a fresh autoencoder's hidden state is mostly its biases, the same for
    every note, and the best it can do is output silence. Measured on 64 training notes
    (cpu preset, waveform MSE, batch 16): with the default init the relative error stayed at
    1.000 for 460 batches; with this init it fell to 0.55 in 290 (0.20 with the decoder's
    synthesis layer scaled by 0.1, `SingConfig.synthesis_init_scale`, so that a fresh
    decoder starts quieter than the notes instead of louder).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.ConvTranspose1d)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class WaveformEncoder(nn.Module):
    """Waveform -> latent sequence.

    Layers: windowed Conv1d(1 -> C, k1024, s256), act, 2 x (1x1 conv C -> C, act),
    1x1 conv C -> D.

    `forward` takes (B, T) samples (a padded note: T = `FrameGeometry.padded_length`) and
    returns (B, D, (T - kernel) / stride + 1) latent frames.
    """

    def __init__(self, config: SingConfig) -> None:
        super().__init__()
        self.analysis = WindowedConv1d(
            1, config.channels, config.kernel_size, config.stride, config.squared_window
        )
        self.activation = make_activation(config)
        self.rewrite = _rewrite_stack(config)
        self.projection = nn.Conv1d(config.channels, config.latent_dim, kernel_size=1)
        if config.conv_init == "kaiming":
            init_conv_weights(self)

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() != 2:
            raise ConfigError(
                f"encoder expects waves shaped (batch, samples), got {tuple(wave.shape)}"
            )
        hidden = self.activation(self.analysis(wave.unsqueeze(1)))
        return self.projection(self.rewrite(hidden))


class WaveformDecoder(nn.Module):
    """Latent sequence -> waveform.

    Layers: Conv1d(D -> C, k9, no padding), act, 2 x (1x1 conv C -> C, act), windowed
    ConvTranspose1d(C -> 1, k1024, s256); with `SingConfig.harmonic_partials` > 0, plus a
    `HarmonicBranch` from the same hidden frames and the note's pitch (not in SING), or
    the branch alone (`SingConfig.conv_synthesis` = False).

    `forward` takes (B, D, L) latent frames (and the (B,) MIDI pitches when the decoder has
    a harmonic branch) and returns (B, (L - context + 2) * stride - kernel) samples: 65,024
    for SING's L = 265.
    """

    def __init__(self, config: SingConfig) -> None:
        super().__init__()
        self.context_conv = nn.Conv1d(
            config.latent_dim, config.channels, kernel_size=config.context_size
        )
        self.activation = make_activation(config)
        self.rewrite = _rewrite_stack(config)
        self.synthesis = WindowedConvTranspose1d(
            config.channels, 1, config.kernel_size, config.stride, config.squared_window
        ) if config.conv_synthesis else None
        self.context_size = config.context_size
        if config.conv_init == "kaiming":
            init_conv_weights(self)
            if self.synthesis is not None:
                with torch.no_grad():
                    self.synthesis.weight.mul_(config.synthesis_init_scale)
        self.harmonic = HarmonicBranch(
            config.channels, config.harmonic_partials, config.kernel_size, config.stride,
            config.sample_rate,
        ) if config.harmonic_partials else None

    @property
    def first_layer(self) -> nn.Conv1d:
        """The decoder's first layer (its context conv): gradients must reach it."""
        return self.context_conv

    def hidden_frames(self, latent: Tensor) -> Tensor:
        """(B, D, L) latent frames -> (B, C, L - context + 1): what the output layers read."""
        if latent.dim() != 3 or latent.shape[-1] < self.context_size:
            raise ConfigError(
                f"decoder expects latents shaped (batch, dim, frames >= {self.context_size}), "
                f"got {tuple(latent.shape)}"
            )
        return self.rewrite(self.activation(self.context_conv(latent)))

    def forward(self, latent: Tensor, pitch: Tensor | None = None) -> Tensor:
        hidden = self.hidden_frames(latent)
        if self.harmonic is None:
            return self.synthesis(hidden).squeeze(1)
        if pitch is None:
            raise ConfigError("this decoder has a harmonic branch: it needs the notes' pitches")
        wave = self.harmonic(hidden, _check_pitch(pitch).to(latent.device))
        return wave if self.synthesis is None else wave + self.synthesis(hidden).squeeze(1)


def _check_indices(name: str, values: Tensor, size: int) -> Tensor:
    """`values` as a (B,) long tensor, or ConfigError if it is not one or leaves 0 .. size - 1."""
    values = torch.as_tensor(values)
    if values.dim() != 1 or values.dtype.is_floating_point or values.dtype == torch.bool:
        raise ConfigError(
            f"{name} must be a 1-D integer tensor (batch,), "
            f"got {values.dtype} of shape {tuple(values.shape)}"
        )
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= size):
        raise ConfigError(
            f"{name} values must lie in 0..{size - 1}, got {int(values.min())}..{int(values.max())}"
        )
    return values.long()


def _check_pitch(values: Tensor) -> Tensor:
    """(B,) MIDI pitches, whole or fractional, as a float tensor; ConfigError outside 0..127."""
    values = torch.as_tensor(values)
    if values.dim() != 1 or values.dtype == torch.bool or values.is_complex():
        raise ConfigError(f"pitch must be a 1-D real tensor (batch,), got {values.dtype} "
                          f"of shape {tuple(values.shape)}")
    values = values.float()
    if values.numel() and not (bool(torch.isfinite(values).all())
                               and float(values.min()) >= 0 and float(values.max()) <= 127):
        raise ConfigError(f"pitch values must lie in 0..127, got {float(values.min())}.."
                          f"{float(values.max())}")
    return values


class ContinuousPitch(nn.Module):
    """MIDI pitch -> `dim` fixed sine/cosine features, periods 256, 128, ... semitones.

    Unlike a lookup table, every pitch 0-127 has a meaningful input, and neighbouring
    pitches have neighbouring ones, so the generator can interpolate to pitches no training
    note had. `num_embeddings` (128) mirrors `nn.Embedding` for index checks.
    """

    num_embeddings = 128

    def __init__(self, dim: int) -> None:
        super().__init__()
        periods = 256.0 / 2.0 ** torch.arange(dim // 2, dtype=torch.float32)
        self.register_buffer("angular", 2 * torch.pi / periods, persistent=False)

    def forward(self, pitch: Tensor) -> Tensor:
        phase = pitch.to(self.angular.dtype).unsqueeze(-1) * self.angular
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)


class SequenceGenerator(nn.Module):
    """(instrument, pitch, velocity) -> latent sequence (B, D, n_steps) through an LSTM.

    At each of `n_steps` time steps the LSTM input is the concatenation of the instrument
    (16), pitch (8) and velocity (2) embeddings, repeated over time, and of the embedding of
    the time step itself (4): 30 values for SING. A Linear layer maps each hidden state to a
    D-dimensional latent frame.
    """

    def __init__(self, config: SingConfig, n_steps: int) -> None:
        super().__init__()
        self.n_steps = n_steps
        self.instrument_table = nn.Embedding(config.n_instruments, config.instrument_dim)
        self.pitch_table: nn.Module = (
            nn.Embedding(config.n_pitches, config.pitch_dim)
            if config.pitch_encoding == "table" else ContinuousPitch(config.pitch_dim)
        )
        self.velocity_table = nn.Embedding(config.n_velocities, config.velocity_dim)
        self.time_table = nn.Embedding(n_steps, config.time_dim) if config.time_dim else None
        input_size = (
            config.instrument_dim + config.pitch_dim + config.velocity_dim + config.time_dim
        )
        self.lstm = nn.LSTM(
            input_size, config.lstm_hidden, num_layers=config.lstm_layers, batch_first=True
        )
        self.output = nn.Linear(config.lstm_hidden, config.latent_dim)

    def forward(
        self,
        instrument: Tensor,
        pitch: Tensor,
        velocity: Tensor,
        start: int = 0,
        length: int | None = None,
        state: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Latent frames `start` .. `start + length` (default: to the end) of each note.

        Parameters
        ----------
        instrument, pitch, velocity : (B,) integer ids: instrument index, MIDI pitch and
            MIDI velocity (0-127). Under the continuous pitch encoding, pitch may be
            fractional (a float tensor).
        start : first time step to generate (for truncated back-propagation).
        length : number of steps; None runs to `n_steps`.
        state : LSTM (h, c), each (layers, B, hidden), carried over from the previous chunk.

        Returns
        -------
        (latent (B, D, length), state) with state the LSTM's final (h, c).
        """
        length = self.n_steps - start if length is None else length
        if start < 0 or length <= 0 or start + length > self.n_steps:
            raise ConfigError(
                f"time steps {start}..{start + length} fall outside the model's 0..{self.n_steps}"
            )
        instrument = _check_indices("instrument", instrument, self.instrument_table.num_embeddings)
        pitch = (_check_pitch(pitch) if isinstance(self.pitch_table, ContinuousPitch)
                 else _check_indices("pitch", pitch, self.pitch_table.num_embeddings))
        velocity = _check_indices("velocity", velocity, self.velocity_table.num_embeddings)
        if not instrument.shape == pitch.shape == velocity.shape:
            raise ConfigError(
                f"instrument, pitch and velocity must share one batch size, got "
                f"{tuple(instrument.shape)}, {tuple(pitch.shape)}, {tuple(velocity.shape)}"
            )
        batch = instrument.shape[0]
        note = torch.cat(
            [
                self.instrument_table(instrument),
                self.pitch_table(pitch),
                self.velocity_table(velocity),
            ],
            dim=-1,
        )
        inputs = [note.unsqueeze(1).expand(batch, length, note.shape[-1])]
        if self.time_table is not None:
            steps = torch.arange(start, start + length, device=note.device)
            inputs.append(self.time_table(steps).unsqueeze(0).expand(batch, length, -1))
        hidden, state = self.lstm(torch.cat(inputs, dim=-1), state)
        return self.output(hidden).transpose(1, 2), state


GENERATION_UNUSED = ("encoder.",)
"""Weight-name prefixes that generating notes never uses (stage 1's encoder): a shipped
model may leave them out."""


class Sing(nn.Module):
    """The whole SING model.

    Encoder + decoder are trained in stage 1, the generator in stage 2, generator + decoder
    in stage 3.

    `forward(instrument, pitch, velocity)` returns (B, n_samples) waveforms (64,000 samples
    of 16 kHz audio for NSynth). The stage-wise pieces are `encode`, `autoencode`,
    `generate_latent`, `synthesize_padded`, `reconstruction_target` and `stage_parameters`.
    """

    def __init__(self, config: SingConfig) -> None:
        super().__init__()
        self.config = config
        self.geometry = FrameGeometry.from_config(config)
        self.encoder = WaveformEncoder(config)
        self.decoder = WaveformDecoder(config)
        self.generator = SequenceGenerator(config, self.geometry.n_steps)

    def _check_notes(self, wave: Tensor) -> None:
        if wave.dim() != 2 or wave.shape[-1] != self.geometry.n_samples:
            raise ConfigError(
                f"SING expects notes shaped (batch, {self.geometry.n_samples}), "
                f"got {tuple(wave.shape)}"
            )

    def pad_note(self, wave: Tensor) -> Tensor:
        """(B, n_samples) -> (B, padded_length): `pad_samples` zeros each side (encoder input)."""
        self._check_notes(wave)
        return F.pad(wave, (self.geometry.pad_samples, self.geometry.pad_samples))

    def reconstruction_target(self, wave: Tensor) -> Tensor:
        """(B, n_samples) -> (B, decoded_length): the note with `output_margin` zeros each side.

        This is what the decoder's full output is compared with in stages 1 and 3.
        """
        self._check_notes(wave)
        return F.pad(wave, (self.geometry.output_margin, self.geometry.output_margin))

    def crop_output(self, decoded: Tensor) -> Tensor:
        """(B, decoded_length) -> (B, n_samples): drop the `output_margin` on each side."""
        margin = self.geometry.output_margin
        return decoded[..., margin : decoded.shape[-1] - margin]

    def encode(self, wave: Tensor) -> Tensor:
        """(B, n_samples) notes -> (B, D, n_steps) latent sequence (stage 2's target)."""
        return self.encoder(self.pad_note(wave))

    def autoencode(self, wave: Tensor, pitch: Tensor | None = None) -> Tensor:
        """(B, n_samples) -> (B, decoded_length): stage 1's output.

        `pitch` (B,) is needed only by a decoder with a harmonic branch. Compare the output
        with `reconstruction_target`.
        """
        return self.decoder(self.encode(wave), pitch)

    def generate_latent(self, instrument: Tensor, pitch: Tensor, velocity: Tensor) -> Tensor:
        """(B,) ids -> (B, D, n_steps): the LSTM's whole latent sequence."""
        latent, _ = self.generator(instrument, pitch, velocity)
        return latent

    def synthesize_padded(self, instrument: Tensor, pitch: Tensor, velocity: Tensor) -> Tensor:
        """(B,) ids -> (B, decoded_length): stage 3's output.

        Compare it with `reconstruction_target`.
        """
        return self.decoder(self.generate_latent(instrument, pitch, velocity), pitch)

    def forward(self, instrument: Tensor, pitch: Tensor, velocity: Tensor) -> Tensor:
        """(B,) instrument ids, MIDI pitches, MIDI velocities -> (B, n_samples) waveforms."""
        return self.crop_output(self.synthesize_padded(instrument, pitch, velocity))

    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        """Parameters trained in `stage`: "autoencoder" (encoder + decoder), "sequence"
        (generator) or "finetune" (generator + decoder)."""
        modules = {
            "autoencoder": (self.encoder, self.decoder),
            "sequence": (self.generator,),
            "finetune": (self.generator, self.decoder),
        }
        if stage not in modules:
            raise ConfigError(
                f"unknown SING training stage {stage!r}; choose one of {', '.join(STAGES)}"
            )
        return [parameter for module in modules[stage] for parameter in module.parameters()]

    def count_parameters(self) -> dict[str, int]:
        """Number of weights per part: encoder, decoder, generator, total."""
        counts = {
            name: sum(p.numel() for p in getattr(self, name).parameters())
            for name in ("encoder", "decoder", "generator")
        }
        counts["total"] = sum(counts.values())
        return counts


def spectral_loss_from_config(config: SingConfig) -> LogSpectralLoss:
    """SING's spectral loss as the config sets it: L1 (or MSE) of log(eps + |F(x)|^2).

    Frames follow SING's STFT (n_fft `loss_n_fft`, hop `loss_hop_length`, not centred;
    CQT / mel / MFCC centred as librosa). Compare `Sing.autoencode` or
    `Sing.synthesize_padded` with `Sing.reconstruction_target`.
    """
    return LogSpectralLoss(
        transform=config.loss_transform,
        distance=config.loss_distance,
        eps=config.loss_eps,
        sample_rate=config.sample_rate,
        n_fft=config.loss_n_fft,
        hop_length=config.loss_hop_length,
    )
