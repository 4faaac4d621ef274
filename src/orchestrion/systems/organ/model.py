"""orGAN networks: encoding -> U-Net generator -> log-power spectrogram; PatchGAN + classifier.

The model is a composition, each part built from :class:`OrganConfig` data:

``roll (B, 16, 128, T)`` --:mod:`encoding`--> ``image (B, C, n_bins, T)``
--:class:`Generator`--> ``S (B, 1, n_bins, T)``, ``S = ln(1 + |X|^2)``;
:class:`Discriminator` judges ``concat(S, image)`` patch by patch and (optionally)
names the instruments it hears.

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

Discriminator
-------------
PatchGAN on ``concat(S, encoded roll)``: hidden layers SAME-padded Conv -> BatchNorm
(not on the first) -> LeakyReLU(0.2), then a 1-filter convolution giving a map of
logits (apply ``sigmoid`` for probabilities). Its receptive field is computed by
:func:`receptive_field`: 94, 190, 286 for the seed's variants. The instrument classifier
gives 16 independent logits (multi-hot) from average pooling + a linear layer, either on
the patch trunk's last hidden features (``classifier_input="joint"``, the seed) or on its
own stack of the variant's stride-2 layers that sees only the spectrogram
(``"spectrogram"``; the joint trunk also sees the roll, whose slot channels *are* the
answer). The pooling is global (``classifier_pooling="global"``, the seed's) or over time
only (``"time"``): the linear layer then reads every channel at every frequency row, so
it sees where in the spectrum the energy lies (an instrument's register and formants),
which a global mean of 4-16 channels cannot tell apart. With ``classifier_max_pooling`` the
features' maximum over the same axes is read too, by a second linear layer that starts at
zero (so a classifier continued with it answers as before until it learns).

The seed first squeezed its 1025-bin spectrogram to 1024 rows with a 2 x 2 'valid'
convolution so it could be stacked with the zero-padded roll (which makes its true
receptive field one larger than the variant's name); here the encoded roll already lives
on the spectrogram's grid, so the receptive field is exactly 94 / 190 / 286. The seed's
dropout in the discriminator's last two down-sampling modules is left out.

Both networks run their convolutions in channels-last memory layout (2-3x faster with
oneDNN on CPU); outputs may therefore be non-contiguous.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.audio.phase import spectral_convergence
from orchestrion.errors import ConfigError
from orchestrion.metrics.audio import MR_STFT_LOG_EPS, peak_db_image
from orchestrion.nn.adversarial import AdversarialLoss, WeightedMultiHotBCE
from orchestrion.nn.blocks import (
    FrequencyContext,
    NoiseDropout,
    SameConv2d,
    fold_batch_norm,
    set_inference_dropout,
)
from orchestrion.nn.msssim import MSSSIMLoss
from orchestrion.systems.organ.encoding import (
    ChannelSubset,
    RollEncoding,
    build_encoding,
    note_ages,
    rising_edges,
    slots_playing,
)
from orchestrion.systems.organ.harmonic_output import HarmonicOutput
from orchestrion.systems.organ.mel_classifier import MelClassifier
from orchestrion.systems.organ.note_bank import NoteBank
from orchestrion.systems.organ.presets import (
    CLASSIFIER_INPUTS,
    CLASSIFIER_POOLINGS,
    OUTPUT_ACTIVATIONS,
    LayerSpec,
    OrganConfig,
)

SILENT_POWER = 1e-14
"""Power added under the square root of :meth:`OrganLoss.log_magnitude` (a gained magnitude of 1e-7,
far below the 1e-5 floor), so its gradient stays finite at exact silence."""
NEGATIVE_SLOPE = 0.2
"""LeakyReLU slope of the encoder, the discriminator and the seed's output activation."""


def receptive_field(layers: Sequence[Sequence[int]]) -> int:
    """Receptive field (pixels per axis) of one output of a stack of convolutions.

    Walks back from a single output with ``r <- (r - 1) * stride + kernel`` per layer
    (seed eq. in §5.2; padding does not change it).

    Parameters
    ----------
    layers : sequence of (filters, kernel, stride)
        Input layer first, as in :data:`~orchestrion.systems.organ.presets.DISCRIMINATOR_VARIANTS`.

    >>> receptive_field([(16, 4, 2), (32, 4, 2), (64, 4, 2), (128, 4, 2),
    ...                  (256, 4, 1), (512, 4, 1), (1, 4, 1)])
    190
    """
    size = 1
    for layer in reversed(list(layers)):
        if len(layer) != 3:
            raise ConfigError(f"a layer is (filters, kernel, stride), got {tuple(layer)!r}")
        _, kernel, stride = layer
        size = (size - 1) * int(stride) + int(kernel)
    return size


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
            given = _lit_channels(image)
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


def _lit_channels(image: Tensor) -> ChannelSubset:
    """The channels of an image (B, C, F, T) that are not all zero (all of them if none is)."""
    lit = image.flatten(2).any(dim=-1).any(dim=0)
    if bool(lit.all()) or not bool(lit.any()):
        return ChannelSubset(image, torch.arange(image.shape[1], device=image.device))
    live = lit.nonzero().flatten()
    return ChannelSubset(image[:, live], live)


class DiscriminatorOutput(NamedTuple):
    """What the discriminator says about a batch.

    patch_logits : Tensor, (B, 1, P, Q)
        Real/fake logit per patch (``sigmoid`` gives the probability of "real").
    instrument_logits : Tensor (B, n_classes) or None
        One logit per instrument slot (multi-hot); None without a classifier.
    voices : VoiceJudgement or None
        A classifier of voices' answer per voice (the instrument logits are their maximum).
    """

    patch_logits: Tensor
    instrument_logits: Tensor | None
    voices: VoiceJudgement | None = None


class VoiceJudgement(NamedTuple):
    """A classifier of voices' logits (N, n_classes) for the sounding voices of a batch: the
    voice of slot ``slot[i]`` (N,) in item ``owner[i]`` (N,). Its label is that slot if the
    slot sounds in the item's audio; the classifier itself never sees the slot."""

    logits: Tensor
    owner: Tensor
    slot: Tensor


SILENT_CHUNK_LOGIT = -20.0
"""A classifier of voices' logit for every instrument of a chunk without notes."""


def relative_db(log_power: Tensor, range_db: float) -> Tensor:
    """Log-power ``ln(1 + |X|^2)`` (B, 1, F, T) -> its power in dB re each item's loudest
    bin, floored at -`range_db`, over 10 dB: values in [0, range_db / 10], the loudest bin
    at the top. The same audio at any level gives the same values."""
    return peak_db_image(torch.expm1(log_power.clamp_min(0.0)), range_db) * (range_db / 10.0)


def _conv_stack(in_channels: int, layers: Sequence[LayerSpec]) -> tuple[nn.Sequential, int]:
    """SAME Conv -> [BN, not on the first] -> LeakyReLU per layer; returns (stack, out channels)."""
    modules: list[nn.Module] = []
    channels = in_channels
    for i, (filters, kernel, stride) in enumerate(layers):
        modules.append(SameConv2d(channels, filters, kernel, stride=stride, bias=i == 0))
        if i > 0:
            modules.append(nn.BatchNorm2d(filters))
        modules.append(nn.LeakyReLU(NEGATIVE_SLOPE))
        channels = filters
    return nn.Sequential(*modules), channels


class Discriminator(nn.Module):
    """PatchGAN on (spectrogram, encoded roll) with an optional instrument classifier.

    Parameters
    ----------
    condition_channels : int
        Channels of the encoded roll concatenated to the 1-channel spectrogram.
    layers : sequence of (filters, kernel, stride)
        The patch trunk, input layer first; the last layer has 1 filter.
    width_multiplier : float
        Scales every hidden layer's filters (rounded, at least 1).
    n_classes : int
        Instrument slots the classifier names. Default 16.
    classifier : bool
        Build the instrument classifier.
    classifier_input : {"spectrogram", "joint"}
        Where the classifier looks (see module notes).
    classifier_pooling : {"global", "time"}
        Mean over (bins, frames), or over frames only (see module notes).
    classifier_width : float or None
        Multiplier of the classifier's own convolution widths (None: `width_multiplier`).
    n_bins : int or None
        Frequency bins of the spectrograms; needed for ``classifier_pooling="time"``
        (the linear layer's size depends on it).
    classifier_context : int
        Residual blocks dilated along frequency after the classifier's own convolutions
        (:class:`FrequencyContext`; they start as the identity). Default 0.
    classifier_max_pooling : bool
        Add the features' maximum, pooled like the mean, through a zero-initialised linear
        layer of its own. Default False.
    classifier_db_range : float
        0: the classifier reads the log-power as given. R > 0: it reads
        :func:`relative_db` of it (dB re each item's loudest bin, R dB deep). Default 0.
    mel_classifier : MelClassifier or None
        A mel-band classifier (``classifier`` and ``classifier_input="spectrogram"`` only).
    strided_classifier : bool
        Build the strided stack too (default True); with both, the logits are averaged.
        Without it, the classifier fields above do not apply.
    classifier_pitch_hint : bool
        The strided classifier also reads :meth:`pitch_hint` (as ``ln(1 + hint)``) as a
        second input channel (``classifier_input="spectrogram"`` only); give a mel classifier
        built with ``pitch_hint`` alongside. Default False.

    A mel classifier built with ``voices`` (and no strided one) names each sounding slot's
    notes alone (:class:`VoiceJudgement`); a chunk's logits are the maximum over its voices,
    each voice's most likely instrument raised by `voice_bonus` logits and its other
    guesses lowered by `voice_penalty` (both default 0), and a chunk with no notes names
    no instrument.

    Shapes
    ------
    forward(spectrogram, condition): (B, 1, F, T), (B, C, F, T) ->
    DiscriminatorOutput((B, 1, ceil(F / s), ceil(T / s)), (B, n_classes) or None),
    s the product of the strides.
    """

    def __init__(
        self,
        condition_channels: int,
        layers: Sequence[Sequence[int]],
        width_multiplier: float = 1.0,
        n_classes: int = 16,
        classifier: bool = True,
        classifier_input: str = "spectrogram",
        classifier_pooling: str = "global",
        classifier_width: float | None = None,
        n_bins: int | None = None,
        classifier_context: int = 0,
        classifier_max_pooling: bool = False,
        classifier_db_range: float = 0.0,
        mel_classifier: MelClassifier | None = None,
        strided_classifier: bool = True,
        classifier_pitch_hint: bool = False,
        voice_bonus: float = 0.0,
        voice_penalty: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value, choices in (("classifier_input", classifier_input, CLASSIFIER_INPUTS),
                                     ("classifier_pooling", classifier_pooling, CLASSIFIER_POOLINGS)):
            if value not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        if classifier and classifier_pooling == "time" and not n_bins:
            raise ConfigError("a classifier pooled over time only needs the spectrogram's n_bins")
        layers = [tuple(int(v) for v in layer) for layer in layers]
        if len(layers) < 2 or layers[-1][0] != 1:
            raise ConfigError(
                f"the discriminator needs hidden layers and a final 1-filter layer, got {layers!r}"
            )
        self.layers: tuple[LayerSpec, ...] = tuple(layers)  # type: ignore[assignment]
        self.receptive_field = receptive_field(self.layers)
        hidden = [(max(1, round(f * width_multiplier)), k, s) for f, k, s in self.layers[:-1]]
        self.trunk, trunk_channels = _conv_stack(1 + condition_channels, hidden)
        _, last_kernel, last_stride = self.layers[-1]
        self.patch_head = SameConv2d(trunk_channels, 1, last_kernel, stride=last_stride)
        self.classifier_input = classifier_input
        self.classifier_pooling = classifier_pooling
        self.classifier_features: nn.Sequential | None = None
        self.classifier_context: FrequencyContext | None = None
        self.classifier: nn.Linear | None = None
        self.classifier_max: nn.Linear | None = None
        self.classifier_rows = 1  # frequency rows the linear layer reads per channel (time pooling)
        if classifier_context and not (classifier and classifier_input == "spectrogram"):
            raise ConfigError("classifier_context applies to a classifier on the spectrogram only")
        if classifier_db_range and not (classifier and classifier_input == "spectrogram"):
            raise ConfigError("classifier_db_range applies to a classifier on the spectrogram only")
        self.classifier_db_range = float(classifier_db_range)
        if mel_classifier is not None and not (classifier and classifier_input == "spectrogram"):
            raise ConfigError("a mel classifier needs classifier=True and classifier_input 'spectrogram'")
        if classifier and not strided_classifier and mel_classifier is None:
            raise ConfigError("a discriminator without the strided classifier needs a mel classifier")
        self.mel_classifier = mel_classifier
        if classifier_pitch_hint and not (classifier and classifier_input == "spectrogram"):
            raise ConfigError("classifier_pitch_hint applies to a classifier on the spectrogram only")
        if mel_classifier is not None and mel_classifier.pitch_hint != bool(classifier_pitch_hint):
            raise ConfigError("the mel classifier and the discriminator disagree on the pitch hint")
        if mel_classifier is not None and mel_classifier.voices and strided_classifier:
            raise ConfigError("a mel classifier of voices stands alone: build it without the strided classifier")
        self.classifier_pitch_hint = bool(classifier_pitch_hint)
        self.voice_bonus = float(voice_bonus)
        self.voice_penalty = float(voice_penalty)
        self.n_classes = int(n_classes)
        if classifier and strided_classifier:
            if classifier_input == "spectrogram":
                scale = width_multiplier if classifier_width is None else classifier_width
                own = [(max(1, round(f * scale)), k, s) for f, k, s in self.layers[:-1]]
                downsampling = [layer for layer in own if layer[2] > 1] or own[:1]
                self.classifier_features, features = _conv_stack(1 + self.classifier_pitch_hint, downsampling)
                if classifier_context:
                    self.classifier_context = FrequencyContext(features, classifier_context, NEGATIVE_SLOPE)
            else:
                downsampling, features = hidden, trunk_channels
            if classifier_pooling == "time":
                rows = int(n_bins)  # type: ignore[arg-type]
                for _, _, stride in downsampling:
                    rows = -(-rows // stride)  # SAME convolutions: ceil(rows / stride)
                self.classifier_rows = rows
                features *= rows
            self.classifier = nn.Linear(features, n_classes)
            if classifier_max_pooling:
                self.classifier_max = nn.Linear(features, n_classes, bias=False)
                nn.init.zeros_(self.classifier_max.weight)

    def forward(self, spectrogram: Tensor, condition: Tensor) -> DiscriminatorOutput:
        """Judge spectrograms (B, 1, F, T) given their encoded rolls (B, C, F, T)."""
        matching = (
            spectrogram.dim() == 4
            and condition.dim() == 4
            and spectrogram.shape[1] == 1
            and condition.shape[0] == spectrogram.shape[0]
            and condition.shape[-2:] == spectrogram.shape[-2:]
        )
        if not matching:
            raise ConfigError(
                "the discriminator takes a spectrogram (batch, 1, bins, frames) and an encoded "
                f"roll of the same batch, bins and frames; got {tuple(spectrogram.shape)} and "
                f"{tuple(condition.shape)}"
            )
        joint = torch.cat([spectrogram, condition], dim=1)
        joint = joint.contiguous(memory_format=torch.channels_last)
        features = self.trunk(joint)
        patch_logits = self.patch_head(features)
        if not self.has_classifier:
            return DiscriminatorOutput(patch_logits, None)
        return DiscriminatorOutput(patch_logits, *self.judge_instruments(spectrogram, features, condition))

    @property
    def has_classifier(self) -> bool:
        """It names instruments (strided or mel classifier)."""
        return self.classifier is not None or self.mel_classifier is not None

    @property
    def classifies_voices(self) -> bool:
        """Its classifier names each voice (a mel classifier with voices)."""
        return self.mel_classifier is not None and self.mel_classifier.voices

    def classify_voices(self, spectrogram: Tensor, condition: Tensor) -> VoiceJudgement:
        """Each sounding slot's voice named alone: spectrograms (B, 1, F, T) and their encoded
        rolls (B, C, F, T) -> :class:`VoiceJudgement`."""
        if not self.classifies_voices:
            raise ConfigError("this discriminator's classifier does not name voices")
        hint = self.pitch_hint(condition)
        notes = condition[:, :self.n_classes].detach()
        owner, slot = (notes.amax(dim=(-2, -1)) > 0).nonzero(as_tuple=True)
        logits = self.mel_classifier.voice_logits(spectrogram, hint, notes[owner, slot], owner)  # type: ignore[union-attr]
        return VoiceJudgement(logits, owner, slot)

    def chunk_logits(self, voices: VoiceJudgement, batch: int) -> Tensor:
        """Instrument logits (batch, n_classes) of chunks: each the maximum over its voices',
        each voice's top logit raised by `voice_bonus` and its others lowered by
        `voice_penalty` (:data:`SILENT_CHUNK_LOGIT` where a chunk has no voice)."""
        decided = voices.logits
        if (self.voice_bonus or self.voice_penalty) and len(decided):
            top = F.one_hot(decided.argmax(dim=1), decided.shape[1]).bool()
            decided = torch.where(top, decided + self.voice_bonus, decided - self.voice_penalty)
        logits = decided.new_full((batch, self.n_classes), SILENT_CHUNK_LOGIT)
        index = voices.owner.unsqueeze(1).expand_as(decided)
        return logits.scatter_reduce(0, index, decided, reduce="amax", include_self=False)

    def classify(self, spectrogram: Tensor, trunk_features: Tensor | None = None,
                 condition: Tensor | None = None) -> Tensor:
        """Instrument logits (B, n_classes) of spectrograms (B, 1, F, T) (see :meth:`judge_instruments`)."""
        return self.judge_instruments(spectrogram, trunk_features, condition)[0]

    def judge_instruments(self, spectrogram: Tensor, trunk_features: Tensor | None = None,
                          condition: Tensor | None = None) -> tuple[Tensor, VoiceJudgement | None]:
        """Instrument logits (B, n_classes) of spectrograms (B, 1, F, T), and for a classifier
        of voices their :class:`VoiceJudgement` (else None).

        A ``"joint"`` classifier reads the patch trunk's features of (spectrogram, roll):
        pass them as `trunk_features`; a ``"spectrogram"`` one computes its own (and ignores them).
        A classifier with the pitch hint or voices needs the encoded roll (B, C, F, T) as `condition`.
        """
        if not self.has_classifier:
            raise ConfigError("this discriminator was built without an instrument classifier")
        if self.classifies_voices:
            if condition is None:
                raise ConfigError("a classifier of voices needs the encoded roll (its notes) as condition")
            voices = self.classify_voices(spectrogram, condition)
            return self.chunk_logits(voices, len(spectrogram)), voices
        hint = self.pitch_hint(condition) if self.classifier_pitch_hint else None
        logits = [] if self.classifier is None else [self._strided_logits(spectrogram, trunk_features, hint)]
        if self.mel_classifier is not None:
            logits.append(self.mel_classifier(spectrogram, hint))
        return (logits[0] if len(logits) == 1 else sum(logits) / len(logits)), None

    def pitch_hint(self, condition: Tensor | None) -> Tensor:
        """The score's pitches with the instruments erased: the encoded roll's note channels
        (the first `n_classes`, one per slot, all through the same pitch-to-frequency map)
        summed, (B, C, F, T) -> (B, 1, F, T). Detached: it is the score's, not for a loss to move."""
        if condition is None or condition.dim() != 4 or condition.shape[1] < self.n_classes:
            raise ConfigError("a classifier with the pitch hint needs the encoded roll (batch, channels, bins, "
                              f"frames) of at least {self.n_classes} channels; got "
                              f"{None if condition is None else tuple(condition.shape)}")
        return condition[:, :self.n_classes].detach().sum(dim=1, keepdim=True)

    def _strided_logits(self, spectrogram: Tensor, trunk_features: Tensor | None,
                        hint: Tensor | None = None) -> Tensor:
        """Logits of the strided classifier (its own stack, or the patch trunk's features)."""
        assert self.classifier is not None
        if self.classifier_features is not None:
            if self.classifier_db_range:
                spectrogram = relative_db(spectrogram, self.classifier_db_range)
            if hint is not None:
                spectrogram = torch.cat([spectrogram, torch.log1p(hint)], dim=1)
            features = self.classifier_features(spectrogram.contiguous(memory_format=torch.channels_last))
            if self.classifier_context is not None:
                features = self.classifier_context(features)
        elif trunk_features is None:
            raise ConfigError("a classifier on the joint input needs the patch trunk's features")
        else:
            features = trunk_features
        axes = (-1,) if self.classifier_pooling == "time" else (-2, -1)
        logits = self.classifier(features.mean(dim=axes).flatten(1))
        if self.classifier_max is not None:
            logits = logits + self.classifier_max(features.amax(dim=axes).flatten(1))
        return logits


CLASSIFIER_PART_WEIGHTS = {
    "strided": ("discriminator.classifier_features.", "discriminator.classifier_context.",
                "discriminator.classifier.", "discriminator.classifier_max."),
    "mel_cnn": ("discriminator.mel_classifier.",),
}
"""Names of each classifier network's weights in an `OrganModel` state dict."""
CLASSIFIER_WEIGHTS = CLASSIFIER_PART_WEIGHTS["strided"] + CLASSIFIER_PART_WEIGHTS["mel_cnn"]
"""Names of the instrument classifier's weights in an `OrganModel` state dict."""

GENERATOR_STATE = ("encoding.", "generator.", "harmonic_output.", "note_bank.")
"""Names of everything that renders (roll encoding, U-Net, output prior) in an `OrganModel`
state dict: what the generator's optimiser and its moving average cover."""


def sounding_slots(roll: Tensor) -> Tensor:
    """Indices of the slots that sound somewhere in a batch of rolls (B, S, 128, T) -> (L,)."""
    return slots_playing(roll).any(dim=0).nonzero().flatten()


def instrument_labels(roll: Tensor) -> Tensor:
    """Multi-hot labels from a roll: a slot is present if any of its cells is on.

    (B, S, 128, T) -> (B, S), float 0/1.
    """
    return slots_playing(roll).to(torch.float32)


def count_parameters(module: nn.Module | None) -> int:
    """Trainable parameters of `module` (0 for None)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters() if p.requires_grad)


class OrganModel(nn.Module):
    """Encoding + generator (+ discriminator) built from one :class:`OrganConfig`.

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
        self.discriminator: Discriminator | None = None
        if config.uses_discriminator:
            self.discriminator = Discriminator(
                self.encoding.out_channels,
                config.patch_layers,
                width_multiplier=config.discriminator_width,
                n_classes=config.n_slots,
                classifier=config.uses_classifier,
                classifier_input=config.classifier_input,
                classifier_pooling=config.classifier_pooling,
                classifier_width=config.classifier_width,
                n_bins=config.n_bins,
                classifier_context=config.classifier_context,
                classifier_max_pooling=config.classifier_max_pooling,
                classifier_db_range=config.classifier_db_range,
                mel_classifier=self._mel_classifier(config),
                strided_classifier="strided" in config.classifier_parts,
                classifier_pitch_hint=config.classifier_pitch_hint,
                voice_bonus=config.classifier_voice_bonus,
                voice_penalty=config.classifier_voice_penalty,
            )

    @staticmethod
    def _mel_classifier(config: OrganConfig) -> MelClassifier | None:
        """The mel classifier `config` asks for (``classifier_network`` "mel_cnn" or "both"), else None."""
        if not (config.uses_classifier and "mel_cnn" in config.classifier_parts):
            return None
        width = 1.0 if config.classifier_width is None else config.classifier_width
        return MelClassifier(config.sample_rate, config.n_fft, config.n_slots, n_mels=config.classifier_mels,
                             base_width=max(1, round(16 * width)), range_db=config.classifier_mel_db_range,
                             pitch_hint=config.classifier_pitch_hint, voices=config.classifier_voices)

    @classmethod
    def from_config(cls, config: OrganConfig) -> OrganModel:
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

    def discriminate(self, spectrogram: Tensor, condition: Tensor) -> DiscriminatorOutput:
        """Run the discriminator on (B, 1, n_bins, T) given the encoded roll (B, C, n_bins, T).

        In the discriminator's step pass ``condition.detach()`` (and the fake detached):
        a learned encoding belongs to the generator and is updated by its loss only.
        """
        if self.discriminator is None:
            raise ConfigError(
                "this orGAN configuration has no discriminator "
                "(its adversarial and instrument weights are 0)"
            )
        return self.discriminator(spectrogram, condition)

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
            "discriminator": count_parameters(self.discriminator),
        }
        counts["total"] = sum(counts.values())
        return counts


class OrganLoss(nn.Module):
    """orGAN's composite objectives (seed §4.7), weights from :class:`OrganConfig`.

    ``L_G = adv * L_adv_G + l1 * L1(S) + msssim * (1 - MS-SSIM(dB)) + inst * BCE_w(fake)
    + sc * SC(|X|) + log_db * L1(dB) + log_mag * L1(ln(|x| + 1e-5))``

    ``L_D = factor * (L_adv(real) + L_adv(fake)) + inst * BCE_w(real)``

    L1 compares the log-power spectrograms; MS-SSIM compares them converted to dB and
    mapped to [0, 1] (:meth:`unit_db`); ``BCE_w`` is the class-weighted multi-hot BCE
    (set the weights from the training labels with ``loss.instrument.set_class_weights``).
    Terms with weight 0 are not computed.
    """

    def __init__(self, config: OrganConfig) -> None:
        super().__init__()
        self.config = config
        self.adversarial = AdversarialLoss(config.gan_loss)
        self.msssim = MSSSIMLoss(data_range=1.0)
        self.instrument = WeightedMultiHotBCE(n_classes=config.n_slots)

    def floored_power(self, spectrogram: Tensor) -> Tensor:
        """Log-power S = ln(1 + |X|^2) -> ``|exp(S) - 1| + 10**(db_floor/10)``.

        The floor, added as a power, keeps the dB map and the square root of `unit_db` and
        `magnitude` smooth with a bounded slope where a bin is silent.
        """
        return torch.expm1(spectrogram).abs() + 10.0 ** (self.config.db_floor / 10.0)

    def unit_db(self, spectrogram: Tensor, power: Tensor | None = None) -> Tensor:
        """Log-power S = ln(1 + |X|^2) -> dB mapped from [db_floor, db_ceiling] to [0, 1].

        ``(10 log10(floored power) - floor) / (ceiling - floor)``: smooth, >= 0. Values above
        the ceiling exceed 1 (not clipped). Any shape -> same shape. `power`, when given, is
        `floored_power(spectrogram)` already computed.
        """
        floor, ceiling = self.config.db_floor, self.config.db_ceiling
        power = self.floored_power(spectrogram) if power is None else power
        return (10.0 * torch.log10(power) - floor) / (ceiling - floor)

    def magnitude(self, spectrogram: Tensor, power: Tensor | None = None) -> Tensor:
        """Log-power S = ln(1 + |X|^2) -> magnitude |X| (of the gain-scaled audio), from the
        floored power (`power`, when given, is `floored_power(spectrogram)`)."""
        return torch.sqrt(self.floored_power(spectrogram) if power is None else power)

    def log_magnitude(self, spectrogram: Tensor) -> Tensor:
        """Log-power S -> ``ln(|x| + 1e-5)``, |x| the STFT magnitude of the audio itself.

        The input gain is divided out, so the floor is the audio protocol's MR-STFT
        epsilon; a tiny power floor (far below it) keeps the square root's slope finite.
        """
        power = torch.expm1(spectrogram).clamp_min(0.0) + SILENT_POWER
        return torch.log(torch.sqrt(power) / self.config.input_gain + MR_STFT_LOG_EPS)

    def generator_loss(
        self,
        fake: Tensor,
        real: Tensor,
        judgement: DiscriminatorOutput | None,
        labels: Tensor | None = None,
        use_classifier: bool = True,
    ) -> dict[str, Tensor]:
        """Generator terms and their weighted total.

        Parameters
        ----------
        fake, real : Tensor, (B, 1, n_bins, T)
            Generated and true log-power spectrograms.
        judgement : DiscriminatorOutput or None
            The discriminator on the fakes (None when no term needs it).
        labels : Tensor (B, S), optional
            Multi-hot instrument labels (:func:`instrument_labels`), for the classifier term.
        use_classifier : bool
            Whether this training stage uses the classifier term.

        Returns
        -------
        dict with "total" and each computed term ("adversarial", "l1", "msssim", "sc",
        "log_db", "log_mag", "instrument").
        """
        config = self.config
        terms: dict[str, Tensor] = {}
        total = fake.new_zeros(())
        if config.adversarial_weight > 0 and judgement is not None:
            terms["adversarial"] = self.adversarial.generator(judgement.patch_logits)
            total = total + config.adversarial_weight * terms["adversarial"]
        if config.l1_weight > 0:
            terms["l1"] = F.l1_loss(fake, real)
            total = total + config.l1_weight * terms["l1"]
        uses_db = config.msssim_weight > 0 or config.log_db_weight > 0
        if uses_db or config.spectral_convergence_weight > 0:
            power_fake, power_real = self.floored_power(fake), self.floored_power(real)
        if uses_db:
            db_fake, db_real = self.unit_db(fake, power_fake), self.unit_db(real, power_real)
        if config.msssim_weight > 0:
            terms["msssim"] = self.msssim(db_fake, db_real)
            total = total + config.msssim_weight * terms["msssim"]
        if config.log_db_weight > 0:
            terms["log_db"] = F.l1_loss(db_fake, db_real)
            total = total + config.log_db_weight * terms["log_db"]
        if config.log_magnitude_weight > 0:
            terms["log_mag"] = F.l1_loss(self.log_magnitude(fake), self.log_magnitude(real))
            total = total + config.log_magnitude_weight * terms["log_mag"]
        if config.spectral_convergence_weight > 0:
            terms["sc"] = spectral_convergence(self.magnitude(real, power_real),
                                               self.magnitude(fake, power_fake)).mean()
            total = total + config.spectral_convergence_weight * terms["sc"]
        if self._classifier_term(use_classifier, judgement, labels):
            terms["instrument"] = self.instrument_loss(judgement.instrument_logits, labels,  # type: ignore[union-attr]
                                                       judgement.voices)  # type: ignore[union-attr]
            total = total + config.instrument_weight * terms["instrument"]
        terms["total"] = total
        return terms

    def discriminator_loss(
        self,
        real_judgement: DiscriminatorOutput,
        fake_judgement: DiscriminatorOutput,
        labels: Tensor | None = None,
        use_classifier: bool = True,
    ) -> dict[str, Tensor]:
        """Discriminator terms and their weighted total (classifier trained on real only).

        Returns
        -------
        dict with "total", "adversarial" and, when used, "instrument".
        """
        config = self.config
        adversarial = self.adversarial.discriminator(
            real_judgement.patch_logits, fake_judgement.patch_logits
        )
        terms = {"adversarial": adversarial}
        total = config.discriminator_adversarial_factor * terms["adversarial"]
        if self._classifier_term(use_classifier, real_judgement, labels):
            terms["instrument"] = self.instrument_loss(real_judgement.instrument_logits, labels,  # type: ignore[arg-type]
                                                       real_judgement.voices)
            total = total + config.instrument_weight * terms["instrument"]
        terms["total"] = total
        return terms

    def instrument_loss(self, logits: Tensor, labels: Tensor, voices: VoiceJudgement | None = None) -> Tensor:
        """Class-weighted BCE of the instrument logits (B, S) against multi-hot labels (B, S);
        given a classifier of voices' `voices`, of each voice's logits against its own slot
        (one-hot, or none where the slot is silent in the audio although its notes are in the
        score) instead."""
        if voices is None:
            return self.instrument(logits, labels)
        targets = F.one_hot(voices.slot, labels.shape[1]).to(labels.dtype)
        targets = targets * labels[voices.owner, voices.slot].unsqueeze(1)
        if len(targets) == 0:  # no notes anywhere in the batch: nothing to name
            return voices.logits.sum() * 0.0
        return self.instrument(voices.logits, targets)

    def _classifier_term(
        self, use: bool, judgement: DiscriminatorOutput | None, labels: Tensor | None
    ) -> bool:
        if not use or not self.config.uses_classifier:
            return False
        if judgement is None or judgement.instrument_logits is None:
            raise ConfigError(
                "the instrument classifier term needs a discriminator built with a classifier"
            )
        if labels is None:
            raise ConfigError(
                "the instrument classifier term needs multi-hot instrument labels (batch, slots)"
            )
        return True
