"""orGAN configuration: one dataclass of plain values, and the ``paper`` / ``cpu`` presets.

Both presets build through the same code (:class:`~orchestrion.systems.organ.gan.OrganModel`);
they differ only in these numbers. Every field is data: a checkpoint stores
``config.to_dict()`` as JSON and :meth:`OrganConfig.from_dict` rebuilds it.

>>> config = get_preset("cpu", encoding="binary")
>>> config.n_bins, config.chunk_frames, config.generator_depth
(513, 126, 7)
>>> get_preset("paper").generator_depth
10
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestrion.errors import ConfigError
from orchestrion.presets import check_field_names, pick_preset

Regime = Literal["single", "transfer", "multi"]
LayerSpec = tuple[int, int, int]
"""One discriminator convolution: (filters, kernel size, stride)."""

DISCRIMINATOR_VARIANTS: dict[str, tuple[LayerSpec, ...]] = {
    "94": ((16, 4, 2), (32, 4, 2), (64, 4, 2), (256, 4, 1), (512, 4, 1), (1, 4, 1)),
    "190": ((16, 4, 2), (32, 4, 2), (64, 4, 2), (128, 4, 2), (256, 4, 1), (512, 4, 1), (1, 4, 1)),
    "286": ((16, 4, 2), (32, 4, 2), (64, 4, 2), (128, 4, 2), (256, 4, 2), (512, 4, 1), (1, 4, 1)),
}
"""The seed's PatchGAN variants (section 5.2), named by their receptive field in pixels."""

OUTPUT_ACTIVATIONS = ("softplus", "leaky_relu", "relu", "identity")
OUTPUT_PRIORS = ("none", "harmonic", "bank")
LR_SCHEDULES = ("constant", "cosine")
GAN_LOSSES = ("bce", "lsgan")
REGIMES = ("single", "transfer", "multi")
CLASSIFIER_INPUTS = ("spectrogram", "joint")
CLASSIFIER_POOLINGS = ("global", "time")
CLASSIFIER_NETWORKS = ("strided", "mel_cnn", "both")
CLASSIFIER_PART_SAMPLINGS = ("natural", "balanced", "dense")
CLASSIFIER_FIELDS = ("classifier_pooling", "classifier_width", "classifier_network", "classifier_mels",
                     "classifier_pitch_hint", "classifier_voices")
"""Fields that shape only the instrument classifier: a model may be continued
(``init_from``) under other values of these, with a freshly initialised classifier (or, for a
wider strided stack, a pitch hint or voices turned on, the trained one grown: see ``grow.py``)."""
CLASSIFIER_INPUT_FIELDS = ("classifier_mel_db_range", "classifier_voice_bonus", "classifier_voice_penalty")
"""Fields that change what the instrument classifier reads or how it decides, not its weights: a model may be
continued (``init_from``) under other values of these, its classifier from its weights."""
ADDED_WEIGHT_FIELDS = {"learned_partials": "harmonic_output.lobe_corrections",
                       "note_age_s": "generator.age_input.",
                       "classifier_context": "discriminator.classifier_context."}
"""Fields that, turned on, only add weights that start where they change nothing (name ->
the weights' prefix): a model saved without them may be continued (``init_from``) with them."""
BANK_SWITCH_FIELDS = ("output_prior", "learned_partials", "bank_age_s", "bank_rank", "bank_floor_db", "bank_keys")
"""Fields that may differ when a model with another output prior is continued with a note
bank (``output_prior="bank"``): the bank is estimated from the data and the harmonic
prior's weights are dropped."""
TRAINING_FIELDS = (
    "gan_loss", "adversarial_weight", "l1_weight", "msssim_weight", "instrument_weight",
    "spectral_convergence_weight", "log_magnitude_weight",
    "discriminator_adversarial_factor", "db_floor",
    "db_ceiling", "learning_rate", "betas", "batch_size", "chunk_stride_s",
    "regime", "transfer_switch_fraction", "dropout", "lr_schedule", "lr_final_fraction",
    "lr_warmup_fraction", "ema_decay", "partials_lr_factor", "age_lr_factor",
    "classifier_part_sampling", "classifier_remix", "classifier_part_gain_db", "classifier_mute_part",
)
"""Fields of the losses, the optimiser, the chunks drawn and the generator's dropout rate, not
of the weights: a model may be continued (``init_from``) under other values of these, with all
its weights (e.g. on single-instrument chunks only, ``regime=single``, for the per-track
renders, or with ``dropout=0`` for a generator without its dropout noise)."""

TRAINING_ONLY_FIELDS = (
    *(name for name in TRAINING_FIELDS if name != "dropout"), *CLASSIFIER_FIELDS, *CLASSIFIER_INPUT_FIELDS,
    "classifier_context", "classifier_input", "discriminator", "discriminator_layers",
    "discriminator_width", "instrument_classifier", "transfer_first_stage_classifier",
)
"""Fields that rendering never reads (the losses, the optimiser, the chunks drawn, the
discriminator and its classifiers): a model's config.json keeps them under "training",
apart from the model's own fields. The generator's dropout rate stays with the model
(``render --dropout-noise`` uses it)."""

RETIRED_FIELDS: dict[str, Any] = {"log_db_weight": 0.0, "classifier_db_range": 0.0, "classifier_max_pooling": False}
"""Fields removed after they measured no gain (the model history, 2026-12-03c and
2026-12-04a, and the losses table), each with the value that turned it off: a saved config
holding one at that value still loads; any other value is refused."""


NOTE_AGE_REACH = 6.0
"""Time constants after which a note-age feature counts as 0 (exp(-6) = 0.0025)."""


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


@dataclass(frozen=True)
class OrganConfig:
    """Everything that defines an orGAN model and its training, as plain values.

    The field defaults are the ``cpu`` preset; ``paper`` overrides them with the seed's.

    Spectrogram
    -----------
    sample_rate : int
        Audio sample rate, Hz (paper 47,872 = 187 * 256, so the hop divides a second).
    n_fft : int
        STFT size = window length, samples; the spectrogram has ``n_fft // 2 + 1`` bins.
    hop_length : int
        STFT hop, samples; the roll's frame rate is ``sample_rate / hop_length``.
    input_gain : float
        Audio is multiplied by this before ``S = ln(1 + |X|^2)``. FluidSynth renders at its
        default gain peak near 0.19, where the transform is almost linear and quiet bins
        carry no weight (SYSTEMS.md §1, note (b)); 5.0 brings the peak near 1.

    Data and regime
    ---------------
    chunk_s : float
        Training chunk length, seconds.
    chunk_stride_s : float
        Hop between training chunks, seconds (seed: 1 s).
    batch_size : int
        Chunks per training step.
    n_slots : int
        Instrument slots of the roll (vocabulary size), also the classifier's classes.
    regime : {"single", "transfer", "multi"}
        ``single``: single-instrument chunks only; ``transfer``: single first, then single
        + multi; ``multi``: all mixes from the start.
    transfer_switch_fraction : float
        In ``transfer``, the fraction of training steps spent on single-instrument data.
    instrument_classifier : bool
        Use the auxiliary instrument classifier (in ``transfer``: in the second stage).
    transfer_first_stage_classifier : bool
        In ``transfer``, also use it in the single-instrument stage (the seed's
        "inst-inst" variant; default off = "pure-inst").

    Encoding (see :mod:`~orchestrion.systems.organ.encoding`)
    ------------------------------------------------------------
    encoding : {"binary", "velocity", "harmonic"}
    onset_channels : bool
        Append one onset channel per slot.
    note_age_s : tuple of float
        Time constants (seconds) of the note-age features: each sounding note also enters
        the generator as ``value * exp(-age / tau)`` per constant, encoded like the roll,
        where age is the time since the note's onset. They tell the generator where in
        its note each frame is (attack, settling, the sample's sustain), which the roll's
        constant lanes cannot. Empty (default): none.
    harmonics : int
        Partials per note in the harmonic encoding.
    harmonic_decay : float
        Partial k has amplitude ``k ** -harmonic_decay``.
    learned_encoding : bool
        Harmonic encoding only: learn the pitch -> bin matrix, initialised from templates.

    Generator (U-Net)
    -----------------
    base_width : int
        Filters of the first encoder layer; layer i has ``base_width * 2**i``, capped at
        ``width_cap * base_width`` (paper 64 -> 512).
    width_cap : int
        Cap of the widths, as a multiple of `base_width`.
    depth : int or None
        Down-sampling layers. None: derived so that the shorter axis of a training chunk,
        padded to a power of two, shrinks to `min_size` (paper: 1024 -> 1, depth 10).
    min_size : int
        Bottleneck size along the shorter axis when `depth` is derived.
    decoder_width_shift : int
        The decoder layer at a given resolution has ``2 ** decoder_width_shift`` times
        fewer filters than the encoder layer there (floored at ``base_width >> shift``,
        capped like the encoder). 2 reproduces the seed's 512 x 4, 256, ..., 16, 16;
        0 is pix2pix's mirror.
    dropout : float
        Dropout probability of the first `dropout_layers` decoder layers; it stays on at
        inference as the generator's noise source.
    dropout_layers : int
        How many decoder layers (from the bottleneck) apply dropout. Seed 3.
    output_activation : {"softplus", "leaky_relu", "relu", "identity"}
        After the head. The seed's LeakyReLU lets the log-power go negative (read back
        through ``|exp(S) - 1|``); softplus keeps it positive and smooth.
    output_prior : {"none", "harmonic", "bank"}
        "harmonic" adds every sounding note's partials at their exact STFT bins, scaled by
        one log-gain image per slot that the generator also outputs
        (:mod:`~orchestrion.systems.organ.harmonic_output`); "bank" adds every sounding
        note's own (instrument, key) log-power over its age, estimated from the training
        stems and learned on, scaled the same way (:mod:`~orchestrion.systems.organ.note_bank`);
        "none" is the seed's free output.
    bank_age_s : float
        Note bank: seconds of each note's age it stores (older frames read the last one).
    bank_rank : int
        Note bank: each key's (age, bin) log-power is stored as its mean spectrum plus this
        many (spectrum, course over age) pairs.
    bank_floor_db : float
        Note bank: in the estimate, power below this (dB of the model's power units, as
        `db_floor`) counts as this. A bank model continued (``init_from``) with another
        floor is re-floored: its table moves by the difference of the two floors' estimates.
    bank_keys : int
        Note bank: how many (slot, key) pairs it stores; set by training from the data (0
        until then), saved with the model.
    learned_partials : bool
        Harmonic output only: learn a correction of each partial's lobe per slot, pitch and
        bin (starting at the analytic lobes), so each instrument's key-to-key timbre can be
        drawn directly. 16 x (the cells of the 128 x n_bins lobe matrix within reach, about
        half) more weights; a model without them can be continued with them (``init_from``).

    Discriminator (PatchGAN + instrument classifier)
    -------------------------------------------------
    discriminator : {"94", "190", "286"}
        Seed variant, named by its receptive field (patch size) in pixels.
    discriminator_layers : tuple of (filters, kernel, stride), or None
        Custom layer list; overrides `discriminator` when given.
    discriminator_width : float
        Multiplier on every hidden layer's filters (the final 1-filter layer stays 1).
    classifier_input : {"spectrogram", "joint"}
        ``"spectrogram"``: the classifier has its own convolution stack on the
        spectrogram alone. ``"joint"`` (the seed's): it pools the patch trunk's features,
        which also see the encoded roll, i.e. the answer (the roll's slot channels).
    classifier_pooling : {"global", "time"}
        Average the classifier's features over (bins, frames) (the seed's) or over frames
        only, so its linear layer reads each frequency row.
    classifier_width : float or None
        Width multiplier of the classifier's own convolutions (``"spectrogram"`` input);
        None: `discriminator_width`.
    classifier_context : int
        Residual blocks dilated along frequency (1, 2, 4, ... rows) after the classifier's
        own convolutions, so it sees how partials far apart go together; they start as the
        identity, so a model without them can be continued with them (``init_from``). 0: none.
    classifier_network : {"strided", "mel_cnn", "both"}
        ``"strided"`` (the seed's): the variant's stride-2 layers, shaped by the fields
        above. ``"mel_cnn"``: :class:`~orchestrion.systems.organ.mel_classifier.MelClassifier`,
        mel bands in dB re each chunk's peak through four VGG blocks of widths
        ``16 w .. 128 w`` (w = `classifier_width`, default 1), pooled by mean and maximum
        over frames; the strided stack's fields (pooling, context, max pooling, dB range)
        do not apply, and the last three must stay off. ``"both"``: the two, their logits
        averaged (they err on different chunks).
    classifier_mels : int
        Mel bands of the mel classifier (a multiple of 8).
    classifier_mel_db_range : float
        dB below each chunk's loudest mel band that the mel classifier reads (> 0).
    classifier_pitch_hint : bool
        The classifier also reads the score's pitches with the instruments erased: the
        encoded roll summed over its slots (every slot shares one pitch-to-frequency map),
        a second input channel aligned with the spectrogram. It then knows where notes
        sound and how many, but must still tell from the audio who plays them. Spectrogram
        input only (``"joint"`` already sees the whole roll). A model without it can be
        continued with it: the hint's input weights start at zero.
    classifier_voices : bool
        The mel classifier (``classifier_network="mel_cnn"``, with the pitch hint) names each
        voice alone: every sounding slot's notes, the slot erased, go in as one more input
        channel, and each voice is trained on its own label. A chunk's answer is
        the maximum over its voices, so a chunk without notes names none. A model without it
        can be continued with it: the voice channel's weights start at zero.
    classifier_voice_bonus : float
        Logits added to each voice's most likely instrument when a chunk's answer is formed
        (0: a voice names what it gives more than even odds). Every written voice is played
        by someone, so its best guess is named unless the classifier is sure no one plays
        it (logit below minus the bonus, as for a part written but not heard). Decides only:
        the voice loss reads the logits without it.
    classifier_voice_penalty : float
        Logits taken from each voice's other guesses when a chunk's answer is formed (0:
        none). A written voice is played by one instrument, so a large penalty lets each
        voice name its best guess only. Decides only, like the bonus.

    Losses
    ------
    gan_loss : {"bce", "lsgan"}
    adversarial_weight, l1_weight, msssim_weight, instrument_weight : float
        ``L_G = adv * L_adv + l1 * L1(S) + msssim * (1 - MS-SSIM(dB)) + inst * BCE_w
        + sc * SC + log_mag * L1(ln(|X| + 1e-5))``.
    spectral_convergence_weight : float
        Weight ``sc`` of the spectral convergence ``||M_fake - M_real||_F / ||M_real||_F``
        of the linear magnitudes (per chunk), the term of the audio protocol's MR-STFT
        that the loudest bins dominate; 0 (the seed) leaves it out.
    log_magnitude_weight : float
        Weight of ``mean |ln(|X_fake| + 1e-5) - ln(|X_real| + 1e-5)|`` on the magnitudes of
        the audio itself (the input gain divided out): the audio protocol's MR-STFT log
        term at the model's STFT size. Unlike the MS-SSIM image, whose map stops at
        `db_floor`, it reaches down to the protocol's 1e-5, where most bins of a dry render
        lie; 0 leaves it out.
    discriminator_adversarial_factor : float
        ``L_D = factor * L_adv_D + inst * BCE_w(real)``; seed 0.5.
    db_floor, db_ceiling : float
        MS-SSIM compares ``10 log10(|X|^2 + 10**(db_floor/10))`` mapped from
        [db_floor, db_ceiling] dB to [0, 1] (data range 1).

    Optimiser
    ---------
    learning_rate : float
        Adam, both networks (the starting rate under a schedule).
    betas : (float, float)
        Adam betas.
    lr_schedule : {"constant", "cosine"}
        ``cosine`` lowers the rate along half a cosine from `learning_rate` at the first
        step to ``lr_final_fraction * learning_rate`` at the run's last step (``--max-steps``).
    lr_final_fraction : float
        The cosine schedule's last rate, as a fraction of `learning_rate`.
    lr_warmup_fraction : float
        Fraction of the run, in [0, 1), over which the rate first rises linearly from 0 to
        `learning_rate` (0, the default: no warm-up); the schedule then runs over the rest.
        It keeps Adam's first large steps, before its moment estimates settle, off weights
        that are already trained (e.g. ``--classifier-only`` from a shipped model).
    partials_lr_factor : float
        The learned lobes' Adam rate as a multiple of the generator's (they are
        log-corrections, one per bin, each seen by few chunks).
    age_lr_factor : float
        The note-age input's Adam rate as a multiple of the generator's (1: one rate for
        both; the input starts at zero and moves slowly at a fine-tuning rate).
    ema_decay : float
        0 (default): the exported generator is the last weights. Otherwise training also
        keeps an exponential moving average of the generator's weights with this decay
        (e.g. 0.999, an average over about the last 1,000 steps); validation and the
        exported model use the average.

    Classifier-only training (``--classifier-only``; see
    :mod:`~orchestrion.systems.organ.classifier_data`)
    ----------------------------------------------------------------------------------
    classifier_part_sampling : {"natural", "balanced", "dense"}
        ``natural``: chunks as they come (most have one or two parts); ``balanced``: chunks
        of 1, 2, 3 and 4-or-more parts equally often; ``dense``: in proportion 1 : 2 : 3 : 4
        (the parts, not the chunks, equally often).
    classifier_remix : float
        Fraction, in [0, 1], of multi-part chunks made of parts from different pieces.
    classifier_part_gain_db : float
        Each part's level is set at random within +-this many dB (0: as rendered).
    classifier_mute_part : float
        Fraction, in [0, 1], of multi-part chunks with one part's audio removed while its
        notes stay in the score (its label is cleared): a classifier of voices learns to
        name no one where notes are written but nothing sounds.
    """

    # spectrogram
    sample_rate: int = 16_000
    n_fft: int = 1024
    hop_length: int = 256
    input_gain: float = 5.0
    # data and regime
    chunk_s: float = 2.0
    chunk_stride_s: float = 1.0
    batch_size: int = 8
    n_slots: int = 16
    regime: Regime = "multi"
    transfer_switch_fraction: float = 0.5
    instrument_classifier: bool = True
    transfer_first_stage_classifier: bool = False
    # encoding
    encoding: str = "harmonic"
    onset_channels: bool = False
    note_age_s: tuple[float, ...] = ()
    harmonics: int = 8
    harmonic_decay: float = 1.0
    learned_encoding: bool = False
    # generator
    base_width: int = 16
    width_cap: int = 8
    depth: int | None = None
    min_size: int = 1
    decoder_width_shift: int = 0
    dropout: float = 0.5
    dropout_layers: int = 3
    output_activation: str = "softplus"
    output_prior: str = "none"
    learned_partials: bool = False
    bank_age_s: float = 1.5
    bank_rank: int = 8
    bank_floor_db: float = -40.0
    bank_keys: int = 0
    # discriminator
    discriminator: str = "190"
    discriminator_layers: tuple[LayerSpec, ...] | None = None
    discriminator_width: float = 0.25
    classifier_input: str = "spectrogram"
    classifier_pooling: str = "global"
    classifier_width: float | None = None
    classifier_context: int = 0
    classifier_network: str = "strided"
    classifier_mels: int = 128
    classifier_mel_db_range: float = 80.0
    classifier_pitch_hint: bool = False
    classifier_voices: bool = False
    classifier_voice_bonus: float = 0.0
    classifier_voice_penalty: float = 0.0
    # losses
    gan_loss: str = "bce"
    adversarial_weight: float = 1.0
    l1_weight: float = 0.0
    msssim_weight: float = 100.0
    instrument_weight: float = 0.5
    spectral_convergence_weight: float = 0.0
    log_magnitude_weight: float = 0.0
    discriminator_adversarial_factor: float = 0.5
    db_floor: float = -40.0
    db_ceiling: float = 50.0
    # optimiser
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_schedule: str = "constant"
    lr_final_fraction: float = 0.05
    lr_warmup_fraction: float = 0.0
    ema_decay: float = 0.0
    partials_lr_factor: float = 20.0
    age_lr_factor: float = 1.0
    # classifier-only training
    classifier_part_sampling: str = "natural"
    classifier_remix: float = 0.0
    classifier_part_gain_db: float = 0.0
    classifier_mute_part: float = 0.0

    def __post_init__(self) -> None:
        if self.discriminator_layers is not None:
            try:
                layers = tuple(tuple(int(v) for v in layer) for layer in self.discriminator_layers)
            except (TypeError, ValueError):
                raise ConfigError(
                    "discriminator_layers must be a list of (filters, kernel, stride) triples, "
                    f"got {self.discriminator_layers!r}"
                ) from None
            object.__setattr__(self, "discriminator_layers", layers)
        try:
            object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        except (TypeError, ValueError):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}") from None
        try:
            ages = tuple(float(t) for t in self.note_age_s)
        except (TypeError, ValueError):
            raise ConfigError(
                f"note_age_s must be a list of positive seconds, got {self.note_age_s!r}"
            ) from None
        if not all(math.isfinite(t) and t > 0 for t in ages):
            raise ConfigError(f"note_age_s must be a list of positive seconds, got {self.note_age_s!r}")
        object.__setattr__(self, "note_age_s", ages)
        self._validate()

    def learning_rate_at(self, progress: float) -> float:
        """The Adam rate a fraction `progress` (0 = first step, 1 = last) into the run."""
        fraction = min(max(progress, 0.0), 1.0)
        warmup = self.lr_warmup_fraction
        if fraction < warmup:
            return self.learning_rate * fraction / warmup
        if self.lr_schedule == "constant":
            return self.learning_rate
        fraction = (fraction - warmup) / (1 - warmup)
        final = self.lr_final_fraction
        return self.learning_rate * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * fraction)))

    # -- validation -----------------------------------------------------------------
    def _validate(self) -> None:
        def whole(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")

        def number(name: str, positive: bool) -> None:
            value = getattr(self, name)
            valid = not isinstance(value, bool) and isinstance(value, (int, float))
            if not valid or not (value > 0 if positive else value >= 0):
                bound = "positive" if positive else ">= 0"
                raise ConfigError(f"{name} must be a number {bound}, got {value!r}")

        def below_one(name: str, zero_means: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1) (0 = {zero_means}), got {value!r}")

        def one_of(name: str, choices: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")

        for name in ("sample_rate", "hop_length", "batch_size", "n_slots", "harmonics",
                     "base_width", "width_cap", "min_size", "dropout_layers"):
            whole(name, 1)
        whole("n_fft", 4)
        whole("decoder_width_shift", 0)
        if self.depth is not None:
            whole("depth", 1)
        for name in ("input_gain", "chunk_s", "chunk_stride_s", "discriminator_width",
                     "learning_rate", "partials_lr_factor", "age_lr_factor"):
            number(name, positive=True)
        for name in ("harmonic_decay", "adversarial_weight", "l1_weight", "msssim_weight",
                     "instrument_weight", "discriminator_adversarial_factor",
                     "spectral_convergence_weight", "log_magnitude_weight"):
            number(name, positive=False)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.transfer_switch_fraction <= 1.0:
            raise ConfigError(
                f"transfer_switch_fraction must be in [0, 1], got {self.transfer_switch_fraction!r}"
            )
        one_of("regime", REGIMES)
        one_of("encoding", ("binary", "velocity", "harmonic"))
        one_of("output_activation", OUTPUT_ACTIVATIONS)
        one_of("output_prior", OUTPUT_PRIORS)
        one_of("lr_schedule", LR_SCHEDULES)
        if not 0.0 <= self.lr_final_fraction <= 1.0:
            raise ConfigError(f"lr_final_fraction must be in [0, 1], got {self.lr_final_fraction!r}")
        below_one("lr_warmup_fraction", zero_means="none")
        below_one("ema_decay", zero_means="off")
        one_of("gan_loss", GAN_LOSSES)
        one_of("classifier_input", CLASSIFIER_INPUTS)
        one_of("classifier_pooling", CLASSIFIER_POOLINGS)
        if self.classifier_width is not None:
            number("classifier_width", positive=True)
        whole("classifier_context", 0)
        if self.classifier_context > 8:
            raise ConfigError(f"classifier_context must be at most 8, got {self.classifier_context!r}")
        if self.classifier_context and self.classifier_input != "spectrogram":
            raise ConfigError("classifier_context applies to classifier_input 'spectrogram' only")
        one_of("classifier_part_sampling", CLASSIFIER_PART_SAMPLINGS)
        number("classifier_part_gain_db", positive=False)
        for name in ("classifier_remix", "classifier_mute_part"):
            number(name, positive=False)
            if getattr(self, name) > 1:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        one_of("classifier_network", CLASSIFIER_NETWORKS)
        whole("classifier_mels", 8)
        number("classifier_mel_db_range", positive=True)
        if self.classifier_network != "strided":
            self._check_mel_classifier()
        if not isinstance(self.classifier_pitch_hint, bool):
            raise ConfigError(f"classifier_pitch_hint must be true or false, got {self.classifier_pitch_hint!r}")
        if self.classifier_pitch_hint and self.classifier_input != "spectrogram":
            raise ConfigError("classifier_pitch_hint applies to classifier_input 'spectrogram' only "
                              "(a 'joint' classifier reads the whole encoded roll)")
        if not isinstance(self.classifier_voices, bool):
            raise ConfigError(f"classifier_voices must be true or false, got {self.classifier_voices!r}")
        for name in ("classifier_voice_bonus", "classifier_voice_penalty"):
            number(name, positive=False)
            if getattr(self, name) and not self.classifier_voices:
                raise ConfigError(f"{name} applies to a classifier of voices (classifier_voices true)")
        if self.classifier_voices and not (self.classifier_network == "mel_cnn" and self.classifier_pitch_hint):
            raise ConfigError("classifier_voices needs classifier_network 'mel_cnn' and classifier_pitch_hint true "
                              f"(got {self.classifier_network!r} and {self.classifier_pitch_hint!r})")
        number("bank_age_s", positive=True)
        floor = self.bank_floor_db
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not math.isfinite(floor):
            raise ConfigError(f"bank_floor_db must be a number of dB, got {floor!r}")
        whole("bank_rank", 0)
        whole("bank_keys", 0)
        if self.learned_partials and self.output_prior != "harmonic":
            raise ConfigError("learned_partials applies to output_prior 'harmonic' only, "
                              f"not {self.output_prior!r}")
        if self.learned_encoding and self.encoding != "harmonic":
            raise ConfigError(
                f"learned_encoding applies to the 'harmonic' encoding only, not {self.encoding!r}"
            )
        if self.encoding != "harmonic" and self.n_bins - 1 < 128:
            raise ConfigError(
                f"the '{self.encoding}' encoding needs more than 128 frequency bins below Nyquist; "
                f"n_fft {self.n_fft} gives {self.n_bins} (use n_fft >= 256 or 'harmonic')"
            )
        if self.discriminator_layers is None and self.discriminator not in DISCRIMINATOR_VARIANTS:
            raise ConfigError(
                f"discriminator must be one of {', '.join(DISCRIMINATOR_VARIANTS)} "
                f"(or give discriminator_layers), got {self.discriminator!r}"
            )
        layers = self.patch_layers
        if len(layers) < 2 or any(len(layer) != 3 or min(layer) < 1 for layer in layers):
            raise ConfigError(
                "discriminator layers must be at least 2 triples (filters, kernel, stride) "
                f"of whole numbers >= 1, got {layers!r}"
            )
        if layers[-1][0] != 1:
            raise ConfigError(
                "the last discriminator layer must have 1 filter (the patch map), "
                f"got {layers[-1]!r}"
            )
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not self.db_ceiling > self.db_floor:
            raise ConfigError(
                f"db_ceiling ({self.db_ceiling}) must be above db_floor ({self.db_floor})"
            )
        if self.chunk_frames < 2:
            raise ConfigError(
                f"a {self.chunk_s} s chunk holds fewer than 2 STFT frames at hop {self.hop_length}"
            )

    # -- derived values ----------------------------------------------------------------
    @property
    def n_bins(self) -> int:
        """Frequency bins of the spectrogram: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def frame_rate_hz(self) -> float:
        """STFT frames (= roll frames) per second."""
        return self.sample_rate / self.hop_length

    @property
    def chunk_samples(self) -> int:
        """Samples per training chunk."""
        return int(round(self.chunk_s * self.sample_rate))

    @property
    def chunk_frames(self) -> int:
        """STFT frames of a training chunk (centred STFT: ``1 + samples // hop``)."""
        return 1 + self.chunk_samples // self.hop_length

    @property
    def note_age_frames(self) -> tuple[float, ...]:
        """The note-age time constants in frames."""
        return tuple(t * self.frame_rate_hz for t in self.note_age_s)

    @property
    def bank_frames(self) -> int:
        """Note ages (frames) the note bank stores."""
        return max(1, round(self.bank_age_s * self.frame_rate_hz))

    @property
    def uses_note_ages(self) -> bool:
        """Whether the model reads each note's age (note-age features or the note bank)."""
        return bool(self.note_age_s) or self.output_prior == "bank"

    @property
    def note_age_lookback(self) -> int:
        """Frames before a chunk or window whose onsets its note ages need (0 without them):
        an older note's features are below ``exp(-NOTE_AGE_REACH)``, taken as 0, and the
        note bank reads its last stored age for any note older than it stores."""
        reach = [math.ceil(NOTE_AGE_REACH * max(self.note_age_frames))] if self.note_age_s else []
        if self.output_prior == "bank":
            reach.append(self.bank_frames)
        return max(reach, default=0)

    @property
    def patch_layers(self) -> tuple[LayerSpec, ...]:
        """The discriminator's (filters, kernel, stride) list in use."""
        if self.discriminator_layers is not None:
            return self.discriminator_layers
        return DISCRIMINATOR_VARIANTS[self.discriminator]

    @property
    def generator_depth(self) -> int:
        """Down-sampling layers of the U-Net: `depth`, or derived from the chunk size."""
        if self.depth is not None:
            return self.depth
        shorter = min(_next_power_of_two(self.n_bins - 1), _next_power_of_two(self.chunk_frames))
        return max(1, int(math.floor(math.log2(max(shorter // self.min_size, 1)))))

    def _check_mel_classifier(self) -> None:
        """ConfigError for fields a classifier network with a mel part cannot take."""
        network = self.classifier_network
        if self.classifier_input != "spectrogram":
            raise ConfigError(f"classifier_network {network!r} reads the spectrogram: it needs classifier_input 'spectrogram'")
        if self.classifier_mels % 8:
            raise ConfigError(f"classifier_mels must be a multiple of 8, got {self.classifier_mels!r}")
        if network == "mel_cnn" and self.classifier_context:
            raise ConfigError("classifier_context is for the strided classifier; turn it off for classifier_network "
                              "'mel_cnn' (or use 'both')")

    @property
    def classifier_parts(self) -> tuple[str, ...]:
        """The classifier networks built: ``("strided",)``, ``("mel_cnn",)`` or both."""
        return ("strided", "mel_cnn") if self.classifier_network == "both" else (self.classifier_network,)

    @property
    def uses_discriminator(self) -> bool:
        """Build a discriminator: False only for the generator-only ("vanilla MS-SSIM") setup."""
        return self.adversarial_weight > 0 or self.uses_classifier

    def optimizer_steps_per_batch(self, classifier_only: bool = False) -> int:
        """Optimiser steps a training batch takes (Lightning's ``global_step`` counts each):
        the discriminator's and the generator's, or one when either trains alone."""
        return 2 if self.uses_discriminator and not classifier_only else 1

    @property
    def classifier_scale(self) -> float:
        """The width multiplier of the classifier's own convolutions (the discriminator's when unset)."""
        return self.discriminator_width if self.classifier_width is None else self.classifier_width

    @property
    def uses_classifier(self) -> bool:
        """The classifier is built if any training stage uses it."""
        if self.instrument_weight == 0:
            return False
        first_stage = self.regime == "transfer" and self.transfer_first_stage_classifier
        return self.instrument_classifier or first_stage

    # -- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> OrganConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys raise ConfigError, and so do
        retired fields unless they hold the value that turned them off."""
        values = dict(values)
        for name, off in RETIRED_FIELDS.items():
            if name in values and values.pop(name) != off:
                raise ConfigError(f"{name} was removed (it measured no gain; see the model history): "
                                  f"this config needs it at {off!r}")
        _check_field_names(values)
        return cls(**values)

    def replace(self, **overrides: Any) -> OrganConfig:
        """A copy with some fields changed (validated; unknown names raise ConfigError)."""
        _check_field_names(overrides)
        return dataclasses.replace(self, **overrides)


def _check_field_names(values: Mapping[str, Any]) -> None:
    check_field_names(OrganConfig, values, "orGAN")


PRESETS: dict[str, OrganConfig] = {
    # The seed's settings (thesis ch. 4.7 and 5): 5 s chunks of 47,872 Hz audio, 1025 x 936
    # spectrograms, a U-Net from 1024 x 1024 down to 1 x 1, PatchGAN 190, MS-SSIM model.
    "paper": OrganConfig(
        sample_rate=47_872,
        n_fft=2048,
        hop_length=256,
        input_gain=1.0,
        chunk_s=5.0,
        chunk_stride_s=1.0,
        batch_size=4,
        regime="transfer",
        instrument_classifier=True,
        encoding="binary",
        base_width=64,
        width_cap=8,
        depth=None,
        min_size=1,
        decoder_width_shift=2,
        dropout=0.5,
        dropout_layers=3,
        output_activation="leaky_relu",
        discriminator="190",
        discriminator_width=1.0,
        classifier_input="joint",
        gan_loss="bce",
        adversarial_weight=1.0,
        l1_weight=0.0,
        msssim_weight=100.0,
        instrument_weight=0.5,
        discriminator_adversarial_factor=0.5,
        learning_rate=2e-4,
        betas=(0.5, 0.999),
    ),
    # 2 CPU cores: 16 kHz, n_fft 1024, 2 s chunks (126 frames -> a 512 x 128 grid, depth 7),
    # harmonic encoding, base width 16 (cap 128), pix2pix-mirror decoder, discriminator 190
    # at a quarter of the seed's widths. Measured (batch 8, G + D step, 2 threads, shared
    # machine): 0.52 s/step at 2.8M parameters; base 24 0.68 s (6.1M), base 32 0.85-0.96 s
    # (10.7M); 3-4 s chunks pad to 256 frames and cost 0.8-1.1 s.
    # The instrument classifier has its own full-width (1.0) stride-2 stack pooled over time
    # only (0.24M weights): at a quarter width with global pooling (32 features, 10k weights)
    # it still called nearly every instrument absent after 7,500 steps (macro-accuracy 0.02).
    # Losses: L1 on the log-power (weight 5) beside MS-SSIM, and a spectral-convergence term
    # (weight 20), as the shipped render-cpu trained. Continuing it for 75 min with the
    # term moved every audio figure of the held-out pieces the right way (MS-SSIM 0.652 ->
    # 0.683, MR-STFT 1.942 -> 1.595); two continuations without it had raised MS-SSIM but
    # made MR-STFT worse (1.94 -> 2.09-2.10).
    "cpu": OrganConfig(classifier_pooling="time", classifier_width=1.0, l1_weight=5.0,
                       spectral_convergence_weight=20.0),
}
"""Named presets. Use :func:`get_preset` (it returns a validated copy with overrides)."""


def get_preset(name: str, **overrides: Any) -> OrganConfig:
    """The preset called `name` with some fields overridden.

    Raises
    ------
    ConfigError
        For an unknown preset name, an unknown field, or an invalid value.
    """
    return pick_preset(PRESETS, name, overrides, "orGAN")
