"""orGAN's discriminator: a PatchGAN on (spectrogram, encoded roll) and the instrument classifiers
that name what it hears. Training only: rendering never builds it.

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
which a global mean of 4-16 channels cannot tell apart.

The seed first squeezed its 1025-bin spectrogram to 1024 rows with a 2 x 2 'valid'
convolution so it could be stacked with the zero-padded roll (which makes its true
receptive field one larger than the variant's name); here the encoded roll already lives
on the spectrogram's grid, so the receptive field is exactly 94 / 190 / 286. The seed's
dropout in the discriminator's last two down-sampling modules is left out.

Its convolutions run in channels-last memory layout (2-3x faster with oneDNN on CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.errors import ConfigError
from orchestrion.nn.blocks import FrequencyContext, SameConv2d
from orchestrion.systems.organ.encoding import slots_playing
from orchestrion.systems.organ.mel_classifier import MelClassifier
from orchestrion.systems.organ.model import NEGATIVE_SLOPE
from orchestrion.systems.organ.presets import CLASSIFIER_INPUTS, CLASSIFIER_POOLINGS, LayerSpec, OrganConfig


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
        self.classifier_rows = 1  # frequency rows the linear layer reads per channel (time pooling)
        if classifier_context and not (classifier and classifier_input == "spectrogram"):
            raise ConfigError("classifier_context applies to a classifier on the spectrogram only")
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
        return self.classifier(features.mean(dim=axes).flatten(1))


CLASSIFIER_PART_WEIGHTS = {
    "strided": ("discriminator.classifier_features.", "discriminator.classifier_context.",
                "discriminator.classifier."),
    "mel_cnn": ("discriminator.mel_classifier.",),
}
"""Names of each classifier network's weights in an `OrganModel` state dict."""
CLASSIFIER_WEIGHTS = CLASSIFIER_PART_WEIGHTS["strided"] + CLASSIFIER_PART_WEIGHTS["mel_cnn"]
"""Names of the instrument classifier's weights in an `OrganModel` state dict."""


def instrument_labels(roll: Tensor) -> Tensor:
    """Multi-hot labels from a roll: a slot is present if any of its cells is on.

    (B, S, 128, T) -> (B, S), float 0/1.
    """
    return slots_playing(roll).to(torch.float32)


def build_mel_classifier(config: OrganConfig) -> MelClassifier | None:
    """The mel classifier `config` asks for (``classifier_network`` "mel_cnn" or "both"), else None."""
    if not (config.uses_classifier and "mel_cnn" in config.classifier_parts):
        return None
    width = 1.0 if config.classifier_width is None else config.classifier_width
    return MelClassifier(config.sample_rate, config.n_fft, config.n_slots, n_mels=config.classifier_mels,
                         base_width=max(1, round(16 * width)), range_db=config.classifier_mel_db_range,
                         pitch_hint=config.classifier_pitch_hint, voices=config.classifier_voices)


def build_discriminator(config: OrganConfig, condition_channels: int) -> Discriminator:
    """The discriminator (and classifiers) `config` asks for, reading `condition_channels` of encoded roll."""
    return Discriminator(
        condition_channels,
        config.patch_layers,
        width_multiplier=config.discriminator_width,
        n_classes=config.n_slots,
        classifier=config.uses_classifier,
        classifier_input=config.classifier_input,
        classifier_pooling=config.classifier_pooling,
        classifier_width=config.classifier_width,
        n_bins=config.n_bins,
        classifier_context=config.classifier_context,
        mel_classifier=build_mel_classifier(config),
        strided_classifier="strided" in config.classifier_parts,
        classifier_pitch_hint=config.classifier_pitch_hint,
        voice_bonus=config.classifier_voice_bonus,
        voice_penalty=config.classifier_voice_penalty,
    )
