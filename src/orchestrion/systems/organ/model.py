"""orGAN's rendering network: encoding -> U-Net generator -> output prior -> log-power spectrogram.

The model is a composition, each part built from :class:`OrganConfig` data:

``roll (B, 16, 128, T)`` --:mod:`encoding`--> ``image (B, C, n_bins, T)``
--:class:`Generator`--> ``S (B, 1, n_bins, T)``, ``S = ln(1 + |X|^2)``, through the output
prior (:mod:`.harmonic_output` or :mod:`.note_bank`) when the config has one. This is all
that rendering builds; training adds the discriminator (:mod:`.discriminator`, :mod:`.gan`)
and the losses (:mod:`.losses`).

Generator (seed thesis §4.7, pix2pix)
-------------------------------------
* Encoder: ``depth`` layers Conv 4x4 stride 2 -> BatchNorm -> LeakyReLU(0.2), no
  BatchNorm on the first; widths ``base * 2**i`` capped at ``width_cap * base``.
* Decoder: ConvTranspose 4x4 stride 2 -> BatchNorm -> Dropout(0.5) on the first 3 ->
  ReLU, each output concatenated with the encoder output of the same resolution.
  Widths: ``decoder_width_shift`` halvings below the encoder's at the same resolution
  (2 = the seed's 512 x 4, 256, ..., 16, 16 for base 64, depth 10).
* Head: ConvTranspose 1 filter, kernel 2, stride 1, no padding (adds one row and one
  column: the U-Net's ``n_fft / 2`` rows become ``n_fft / 2 + 1`` bins) -> output
  activation -> crop to the target.
* Dropout stays active in ``eval()`` (the noise source; there is no z). Turn it off
  with ``set_inference_dropout(False)`` for deterministic outputs.

Padding (a decision)
--------------------
The U-Net works on a grid of ``(n_bins - 1) x T`` (the Nyquist row is produced by the
head; encodings leave that input row empty), zero-padded per axis to the *next power of
two* when the axis is at most ``2**depth`` long, else to a *multiple of* ``2**depth``.
For the paper's chunks this is the seed's 1024 x 1024; for long scores it avoids
doubling the work; for tiny inputs it stays tiny. Down-sampling uses "SAME" padding, so
an axis that has reached 1 stays 1 in deeper layers, and the decoder crops each
up-sampled map to its skip connection's size. The output is cropped back to
``(n_bins, T)``.

Output activation (a decision per preset)
-----------------------------------------
``S >= 0``. The seed puts a LeakyReLU after the head (negative values are read back via
``|exp(S) - 1|``); the paper preset keeps it. The cpu preset uses softplus: positive,
smooth, and no dead units in silent regions. ReLU and identity are also available.

The generator runs its convolutions in channels-last memory layout (2-3x faster with
oneDNN on CPU); outputs may therefore be non-contiguous.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.errors import ConfigError
from orchestrion.nn.blocks import NoiseDropout, SameConv2d, fold_batch_norm, set_inference_dropout
from orchestrion.systems.organ.encoding import (
    ChannelSubset,
    RollEncoding,
    build_encoding,
    note_ages,
    rising_edges,
    slots_playing,
)
from orchestrion.systems.organ.harmonic_output import HarmonicOutput
from orchestrion.systems.organ.note_bank import NoteBank
from orchestrion.systems.organ.presets import OUTPUT_ACTIVATIONS, OrganConfig

NEGATIVE_SLOPE = 0.2
"""LeakyReLU slope of the encoder, the discriminator and the seed's output activation."""


def padded_length(length: int, depth: int) -> int:
    """Grid length of one axis for a U-Net of `depth` down-samplings (see module notes)."""
    if length < 1:
        raise ConfigError(f"an input axis must hold at least 1 element, got {length}")
    unit = 1 << depth
    if length <= unit:
        return 1 << math.ceil(math.log2(length))
    return unit * math.ceil(length / unit)


def _output_activation(name: str) -> nn.Module:
    if name == "softplus":
        return nn.Softplus()
    if name == "leaky_relu":
        return nn.LeakyReLU(NEGATIVE_SLOPE)
    if name == "relu":
        return nn.ReLU()
    if name == "identity":
        return nn.Identity()
    raise ConfigError(
        f"output activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}, got {name!r}"
    )


class _Down(nn.Module):
    """Conv 4x4 stride 2 (SAME) -> [BatchNorm] -> LeakyReLU(0.2).

    (B, C, H, W) -> (B, C', ceil(H / 2), ceil(W / 2)).
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool) -> None:
        super().__init__()
        self.conv = SameConv2d(in_channels, out_channels, 4, stride=2, bias=not batch_norm)
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)  # on a fresh output: no copy

    def forward(self, x: Tensor, weight: Tensor | None = None) -> Tensor:
        """`weight`: the convolution's weights for this call (see SameConv2d)."""
        return self.act(self.norm(self.conv(x, weight)))


class _Up(nn.Module):
    """ConvTranspose 4x4 stride 2 -> BatchNorm -> [Dropout] -> ReLU.

    (B, C, H, W) -> (B, C', 2 H, 2 W).
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            in_channels, out_channels, 4, stride=2, padding=1, bias=False
        )
        self.norm = nn.BatchNorm2d(out_channels)
        self.dropout = NoiseDropout(dropout) if dropout > 0 else nn.Identity()
        self.act = nn.ReLU(inplace=True)  # on a fresh output: no copy

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.dropout(self.norm(self.conv(x))))


class Generator(nn.Module):
    """U-Net from an encoded roll to a log-power spectrogram.

    Parameters
    ----------
    in_channels : int
        Channels of the encoded roll (16 slots, or 32 with onset channels).
    depth : int
        Down-sampling layers (the decoder has as many up-sampling layers).
    base_width : int
        Filters of the first encoder layer.
    width_cap : int
        Widths are capped at ``width_cap * base_width``.
    decoder_width_shift : int
        Decoder widths are ``2 ** shift`` times narrower than the encoder's at the same
        resolution, floored at ``base_width >> shift``.
    dropout : float
        Dropout probability in the first `dropout_layers` decoder layers.
    dropout_layers : int
        Decoder layers with dropout, counted from the bottleneck.
    output_activation : {"softplus", "leaky_relu", "relu", "identity"}
    extra_outputs : int
        Raw output channels after the spectrogram (the harmonic output's per-slot log-gains).
    side_channels : int
        Channels of a second input (the note-age features), read by their own first-layer
        weights ``age_input``, convolved with the first layer's; they start at zero, so a
        model trained without it renders the same until it learns to use it. 0: none.

    Shapes
    ------
    forward(image): (B, C, F, T) -> (B, 1 + extra_outputs, F, T); F is the spectrogram's
    bin count, whose last (Nyquist) input row is not read; channel 0 is the log-power.
    """

    def __init__(
        self,
        in_channels: int,
        depth: int,
        base_width: int = 64,
        width_cap: int = 8,
        decoder_width_shift: int = 2,
        dropout: float = 0.5,
        dropout_layers: int = 3,
        output_activation: str = "leaky_relu",
        extra_outputs: int = 0,
        side_channels: int = 0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"the U-Net needs at least 1 down-sampling layer, got depth {depth}")
        self.depth = int(depth)
        cap = base_width * width_cap
        self.encoder_widths = [min(base_width << i, cap) for i in range(depth)]
        floor = max(1, base_width >> decoder_width_shift)

        def decoder_width(level: int) -> int:
            # the encoder has base * 2**(level - 1) filters at `level` halvings
            return int(min(max(base_width * 2.0 ** (level - 1 - decoder_width_shift), floor), cap))

        self.decoder_widths = [decoder_width(depth - 1 - j) for j in range(depth)]
        self.encoder = nn.ModuleList(
            _Down(in_channels if i == 0 else self.encoder_widths[i - 1], width, batch_norm=i > 0)
            for i, width in enumerate(self.encoder_widths)
        )
        decoder = []
        for j, width in enumerate(self.decoder_widths):
            if j == 0:
                incoming = self.encoder_widths[-1]
            else:
                incoming = self.decoder_widths[j - 1] + self.encoder_widths[depth - 1 - j]
            decoder.append(_Up(incoming, width, dropout if j < dropout_layers else 0.0))
        self.decoder = nn.ModuleList(decoder)
        self.age_input: SameConv2d | None = None
        if side_channels:
            self.age_input = SameConv2d(side_channels, self.encoder_widths[0], 4, stride=2, bias=False)
            nn.init.zeros_(self.age_input.weight)
        self.extra_outputs = int(extra_outputs)
        self.head = nn.ConvTranspose2d(
            self.decoder_widths[-1], 1 + self.extra_outputs, kernel_size=2, stride=1
        )
        self.output_activation = _output_activation(output_activation)
        self.batch_norms_folded = False

    def fold_batch_norms(self) -> Generator:
        """Fold every BatchNorm into the convolution before it: the same outputs in eval mode,
        one pass over the activations fewer per layer. Inference only: the generator cannot
        be trained afterwards."""
        if self.training:
            raise ConfigError("fold the generator's BatchNorms in eval mode only")
        for block in (*self.encoder, *self.decoder):
            if isinstance(block.norm, nn.BatchNorm2d):
                fold_batch_norm(block.conv, block.norm)
                block.norm = nn.Identity()
        self.batch_norms_folded = True
        return self

    def train(self, mode: bool = True) -> Generator:
        if mode and self.batch_norms_folded:
            raise ConfigError(
                "this generator's BatchNorms were folded for inference; it cannot be trained"
            )
        return super().train(mode)

    def grid_size(self, n_bins: int, n_frames: int) -> tuple[int, int]:
        """(rows, frames) of the padded grid the U-Net works on for an (n_bins, n_frames) output."""
        return padded_length(max(n_bins - 1, 1), self.depth), padded_length(n_frames, self.depth)

    def _on_grid(self, images: list[Tensor]) -> Tensor:
        """Input images (B, C_i, F, T), concatenated along channels on the U-Net's zero-padded
        grid, channels-last (oneDNN's convolutions run 2-3x faster on CPU in this layout).

        Each image is copied once, straight into the grid (no concatenated or padded copy).
        """
        first = images[0]
        n_bins, n_frames = first.shape[-2:]
        grid_rows, grid_frames = self.grid_size(n_bins, n_frames)
        rows = max(n_bins - 1, 1)  # the Nyquist row is not read
        channels = sum(image.shape[1] for image in images)
        grid = torch.empty(
            (first.shape[0], channels, grid_rows, grid_frames), dtype=first.dtype,
            device=first.device, memory_format=torch.channels_last,
        )
        grid[:, :, rows:].zero_()
        grid[:, :, :rows, n_frames:].zero_()
        start = 0
        for image in images:
            grid[:, start : start + image.shape[1], :rows, :n_frames] = image[:, :, :rows]
            start += image.shape[1]
        return grid

    def forward(
        self, image: Tensor | ChannelSubset, extra: Tensor | None = None, side: ChannelSubset | None = None
    ) -> Tensor:
        """Encoded roll (B, C, F, T) -> log-power spectrogram (B, 1, F, T) [+ extra outputs].

        `image` may be given as its channels that are not all zero (a ChannelSubset): a part
        rendered alone lights one slot of 16. `extra` (int indices) picks the extra output
        channels to compute, in that order; default all. The harmonic output reads only the
        slots that sound. `side` is the note-age input (its non-zero channels), required if
        the generator has one.
        """
        given = image if isinstance(image, ChannelSubset) else None
        if given is None:
            if image.dim() != 4:
                raise ConfigError(
                    "the generator takes an encoded roll (batch, channels, bins, frames), "
                    f"got {tuple(image.shape)}"
                )
            given = lit_channels(image)
        if (side is None) != (self.age_input is None):
            raise ConfigError("the generator's note-age input is " + (
                "missing" if side is None else "given, but this generator has none"))
        n_bins, n_frames = given.image.shape[-2:]
        # the first layer reads only the channels given, and the note-age input, in one pass
        images, weights = [given.image], [self.encoder[0].conv.weight[:, given.channels]]
        if side is not None and side.channels.numel():  # (side is given iff there is age_input)
            if side.image.shape[-2:] != given.image.shape[-2:] or side.image.shape[0] != given.image.shape[0] \
                    or side.image.shape[1] != side.channels.numel():
                raise ConfigError(f"note-age input {tuple(side.image.shape)} does not match the "
                                  f"roll's image {tuple(given.image.shape)}")
            images.append(side.image)
            weights.append(self.age_input.weight[:, side.channels])
        x = self._on_grid(images)
        grid_rows, grid_frames = x.shape[-2:]
        skips = [self.encoder[0](x, torch.cat(weights, dim=1) if len(weights) > 1 else weights[0])]
        for down in self.encoder[1:]:
            skips.append(down(skips[-1]))
        x = skips[-1]
        skips.pop()  # the bottleneck itself
        for j, up in enumerate(self.decoder):
            x = up(x)
            if j < self.depth - 1:
                skip = skips.pop()
                x = torch.cat([x[..., : skip.shape[-2], : skip.shape[-1]], skip], dim=1)
            else:
                x = x[..., :grid_rows, :grid_frames]
        if extra is None or not self.extra_outputs:
            x = self.head(x)
        else:
            keep = torch.cat([extra.new_zeros(1), extra.to(torch.long) + 1])
            bias = None if self.head.bias is None else self.head.bias[keep]
            head = self.head
            x = F.conv_transpose2d(
                x, head.weight[:, keep], bias, head.stride, head.padding, head.output_padding
            )
        # the standard layout from here: the channels-last output's channel slices would be
        # strided, and the elementwise work after the U-Net runs several times slower on them
        x = x[..., :n_bins, :n_frames].contiguous()
        spectrogram = self.output_activation(x[:, :1])
        if not self.extra_outputs:
            return spectrogram
        return torch.cat([spectrogram, x[:, 1:]], dim=1)


def lit_channels(image: Tensor) -> ChannelSubset:
    """The channels of an image (B, C, F, T) that are not all zero (all of them if none is)."""
    lit = image.flatten(2).any(dim=-1).any(dim=0)
    if bool(lit.all()) or not bool(lit.any()):
        return ChannelSubset(image, torch.arange(image.shape[1], device=image.device))
    live = lit.nonzero().flatten()
    return ChannelSubset(image[:, live], live)



DISCRIMINATOR_STATE = "discriminator."
"""Where a whole GAN's state dict (a run's export) keeps the discriminator, which this network
neither builds nor reads."""
GENERATOR_STATE = ("encoding.", "generator.", "harmonic_output.", "note_bank.")
"""Names of everything that renders (roll encoding, U-Net, output prior) in an `OrganModel`
state dict: what the generator's optimiser and its moving average cover."""


def sounding_slots(roll: Tensor) -> Tensor:
    """Indices of the slots that sound somewhere in a batch of rolls (B, S, 128, T) -> (L,)."""
    return slots_playing(roll).any(dim=0).nonzero().flatten()


def count_parameters(module: nn.Module | None) -> int:
    """Trainable parameters of `module` (0 for None)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters() if p.requires_grad)


class OrganNetwork(nn.Module):
    """Encoding + generator + output prior built from one :class:`OrganConfig`: what renders.

    ``model(roll)`` renders: (B, 16, 128, T) -> log-power spectrogram (B, 1, n_bins, T).
    """

    def __init__(self, config: OrganConfig) -> None:
        super().__init__()
        self.config = config
        self.encoding: RollEncoding = build_encoding(
            config.encoding,
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            n_slots=config.n_slots,
            onset_channels=config.onset_channels,
            n_harmonics=config.harmonics,
            harmonic_decay=config.harmonic_decay,
            learned=config.learned_encoding,
        )
        self.generator = Generator(
            self.encoding.out_channels,
            depth=config.generator_depth,
            base_width=config.base_width,
            width_cap=config.width_cap,
            decoder_width_shift=config.decoder_width_shift,
            dropout=config.dropout,
            dropout_layers=config.dropout_layers,
            output_activation=config.output_activation,
            extra_outputs=config.n_slots if config.output_prior in ("harmonic", "bank") else 0,
            side_channels=config.n_slots * len(config.note_age_s),
        )
        self.harmonic_output: HarmonicOutput | None = None
        if config.output_prior == "harmonic":
            self.harmonic_output = HarmonicOutput(
                config.sample_rate, config.n_fft, config.n_slots, learned=config.learned_partials
            )
        self.note_bank: NoteBank | None = None
        if config.output_prior == "bank":
            self.note_bank = NoteBank(
                config.n_slots, config.n_bins, config.bank_keys, config.bank_frames, config.bank_rank
            )

    @classmethod
    def from_config(cls, config: OrganConfig) -> OrganNetwork:
        """Build the model a config describes."""
        return cls(config)

    def condition(self, roll: Tensor, onsets: Tensor | None = None) -> Tensor:
        """Encode a roll (B, S, 128, T) [+ onsets] -> (B, C, n_bins, T)."""
        return self.encoding(roll, onsets)

    @staticmethod
    def note_ages_of(roll: Tensor, onsets: Tensor | None, ages: Tensor | None) -> Tensor:
        """`ages` if given, else :func:`note_ages` of the roll's own frames: the onsets, or
        the roll's rising edges when no onsets are given (see :meth:`age_condition`)."""
        if ages is not None:
            return ages
        return note_ages(roll, rising_edges(roll) if onsets is None else onsets)

    def age_condition(
        self, roll: Tensor, onsets: Tensor | None = None, ages: Tensor | None = None,
        slots: Tensor | None = None,
    ) -> ChannelSubset | None:
        """The generator's note-age input (the channels of the slots that sound somewhere in
        the batch, K per slot), None if the config has none.

        `ages` (frames since each note's onset, :func:`note_ages` over the frames before
        too) is derived from the given frames when omitted: a note already sounding at frame
        0 then counts as old if `onsets` are given, or as struck there if they are not (the
        roll's rising edges stand in for them). `slots`: :func:`sounding_slots` of the
        roll, if already known.
        """
        if not self.config.note_age_s:
            return None
        ages = self.note_ages_of(roll, onsets, ages)
        scales = self.config.note_age_frames
        slots = sounding_slots(roll) if slots is None else slots
        channels = (slots[:, None] * len(scales) + torch.arange(len(scales), device=slots.device)).flatten()
        return ChannelSubset(self.encoding.age_image(roll, ages, scales, slots), channels)

    def generate(
        self, condition: Tensor | ChannelSubset, roll: Tensor, side: ChannelSubset | None = None,
        sounding: Tensor | None = None, ages: Tensor | None = None, onsets: Tensor | None = None,
    ) -> Tensor:
        """The generator on an encoded roll (whole, or the channels that are not all zero),
        and its note-age input `side` if it has one, with the output prior that needs the
        roll itself. `sounding`: :func:`sounding_slots` of the roll, if already known.
        The note bank reads `ages` (derived from the roll and `onsets` when omitted, as in
        :meth:`age_condition`).

        (B, C, n_bins, T), (B, S, 128, T) -> log-power (B, 1, n_bins, T).
        """
        if self.harmonic_output is None and self.note_bank is None:
            return self.generator(condition, side=side)
        # the gain images of the slots that sound somewhere in the batch, the only ones read
        sounding = sounding_slots(roll) if sounding is None else sounding
        out = self.generator(condition, extra=sounding, side=side)
        if self.note_bank is not None:
            return self.note_bank(out[:, :1], out[:, 1:], roll, self.note_ages_of(roll, onsets, ages), sounding)
        return self.harmonic_output(out[:, :1], out[:, 1:], roll, sounding)

    def forward(self, roll: Tensor, onsets: Tensor | None = None, ages: Tensor | None = None) -> Tensor:
        """Render a roll (B, S, 128, T) to a log-power spectrogram (B, 1, n_bins, T).

        `onsets` feed the onset channels and the note ages; `ages` (frames, see
        :meth:`age_condition`) matter only to a model with note-age features or a note bank.
        """
        slots = sounding_slots(roll)
        # only the sounding slots' channels are encoded: a part rendered alone lights one of 16
        condition = self.encoding.encode_slots(roll, slots, onsets) if slots.numel() else self.condition(roll, onsets)
        if self.config.uses_note_ages:  # once, for the note-age input and the note bank
            ages = self.note_ages_of(roll, onsets, ages)
        return self.generate(condition, roll, self.age_condition(roll, onsets, ages, slots), slots, ages)

    def generator_parameters(self, with_age_input: bool = True) -> list[nn.Parameter]:
        """Parameters the generator's optimiser updates (encoding refinement included),
        the learned lobes of the harmonic output excepted (:meth:`lobe_parameters`), and the
        note-age input too unless `with_age_input` (:meth:`age_parameters`)."""
        generator = [p for name, p in self.generator.named_parameters()
                     if with_age_input or not name.startswith("age_input.")]
        return list(self.encoding.parameters()) + generator

    def age_parameters(self) -> list[nn.Parameter]:
        """The generator's note-age input weights, if it has them."""
        side = self.generator.age_input
        return [] if side is None else list(side.parameters())

    def lobe_parameters(self) -> list[nn.Parameter]:
        """The harmonic output's learned lobe corrections, or the note bank, if any (their
        own Adam rate, ``partials_lr_factor``)."""
        if self.note_bank is not None:
            return list(self.note_bank.parameters())
        head = self.harmonic_output
        return [] if head is None or head.lobe_corrections is None else [head.lobe_corrections]

    def set_inference_dropout(self, active: bool) -> None:
        """Keep (True, default) or stop (False) the generator's dropout in eval mode."""
        set_inference_dropout(self.generator, active)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part and in total."""
        counts = {
            "encoding": count_parameters(self.encoding),
            "generator": count_parameters(self.generator),
            "learned lobes": count_parameters(self.harmonic_output),
            "note bank": count_parameters(self.note_bank),
        }
        counts["total"] = sum(counts.values())
        return counts
