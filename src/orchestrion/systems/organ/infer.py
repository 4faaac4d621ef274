"""orGAN inference: a score in, audio out. The one render function of the CLI and the web page.

Pipeline (:func:`render_score`)
-------------------------------
1. **Score -> tracks.** The MIDI file is read with :func:`~orchestrion.symbolic.read_midi`
   (bad files raise :class:`~orchestrion.errors.MidiReadError`, scores without pitched
   notes :class:`~orchestrion.errors.EmptyScoreError`); drum tracks are left out with a
   ``DrumTrackWarning``. Every GM program maps to an instrument slot through the
   vocabulary; a track whose slot the model never learned is moved to a substitute slot
   with a :class:`RenderWarning` naming it (see *Unlearned slots*).
2. **Roll.** The pianoroll is made exactly as in training (``systems/organ/data.py``):
   :func:`~orchestrion.symbolic.score_to_pianoroll` at ``sample_rate / hop_length``
   frames per second, ``mode="velocity"``, with onsets; the model is called as
   ``model(roll, onsets if config.onset_channels else None)``. It is rasterised one
   stretch of windows at a time (:class:`StreamingRoll`), so it never exists whole.
3. **Generator, window by window** (see *Windows*), each window's log-power turned into a
   magnitude with the training target's inverse (the input gain divided back out), the
   windows cross-faded. Windows where a part has no note are silent for it and not run.
   The seed's noise subtraction (the empty-roll magnitude subtracted, clamped at 0) is
   available (``noise_subtraction=True``) but off: it measured worse.
4. **Phase** by our Fast Griffin-Lim (:func:`~orchestrion.audio.phase.griffin_lim`), in
   overlapping blocks of ~30 s (see *Phase blocks*), then resampling if asked.

Windows and cross-fade (a decision)
-----------------------------------
The U-Net's receptive field spans its whole input, and it was trained on chunks of
``config.chunk_frames`` frames (2 s for the cpu preset). Scores are therefore rendered in
windows of that size (``window_s``) that overlap by ``overlap_s``; the roll is padded
with silence at the end so every window is full and the hop is the same everywhere.
In each overlap the outer quarters on both sides are dropped (those frames see the
U-Net's zero padding where the music goes on) and the middle half is a raised-cosine
cross-fade, ``sin^2`` / ``cos^2`` weights that sum to 1.

The cross-fade is done in the **power** domain, ``|X|^2 = w_a |X_a|^2 + w_b |X_b|^2``
(``crossfade="power"``; ``"magnitude"`` and ``"log_power"`` are available). Two windows
are two estimates of the same spectrogram that differ in their fine structure (dropout
draws, and a frame seen near one window's end and the other's start), and averaging
differing estimates in the magnitude or log domain lowers the energy mid-fade
(``((a + b) / 2)^2 <= (a^2 + b^2) / 2``; geometric mean <= arithmetic mean): a dip at
every window boundary. The power domain keeps the energy of the two exactly. Measured
(level over a fade minus the level inside the windows next to it): with a random
cpu-preset model, whose windows disagree most, power +0.02 dB, magnitude -1.8 dB (-2.4 dB
for a briefly trained one; the test suite checks this); with the trained ``render-cpu``
(62 min), averaged over 64 fades of 8 held chords, power +0.3, magnitude +0.1, log-power
0.0 dB: no audible seam in any domain, and the same audio-protocol figures. Power is the
default because it stays level when the windows disagree. Memory for the generator is
flat in the score's length: ``batch_windows`` windows at a time.

Threads: window batches run on ``workers`` Python threads, each with single-threaded
torch kernels (like our Griffin-Lim), which keeps working when other processes share
the cores, where torch's OpenMP pool spin-waits (measured at load 5 on 2 cores: 2 OpenMP
threads 2x slower than 1). Dropout masks come from a generator seeded per window batch
(:class:`SeededNoiseDropout`), so the audio depends on `seed`, not on the threads.

``per_track=True`` (the default) renders every instrument slot alone (as the seed
preferred, thesis Fig. 5.12) and combines the slots as ``sqrt(sum |X_s|^2)``: the seed
added the separately reconstructed waveforms, whose phases are independent, and the
expected magnitude of such a sum is the power sum (a plain magnitude sum would overstate
every shared partial by up to 3 dB); one Griffin-Lim then serves all tracks. Measured
with ``render-cpu`` on 8 validation pieces (audio protocol, MS-SSIM / MR-STFT / LSD):
per track 0.684 / 1.443 / 8.50 dB, the whole mix in one pass 0.653 / 1.632 / 9.14 dB,
better on every piece. It costs one generator pass per part (~4x the generator time
for a quartet); ``per_track=False`` is the fast mode.

Noise subtraction
-----------------
As the seed (thesis §4.7): an empty roll is run through the generator and its magnitude
subtracted from every window's, clamped at 0. The empty-roll magnitude is the mean of
:data:`NOISE_DRAWS` dropout draws (one draw is itself noisy), computed for the window
length in use, so it removes the same edge effects the windows have. Windows whose roll
is empty are then exactly silent and are not run at all.

Unlearned slots
---------------
A slot is *learned* if the checkpoint lists it: a ``trained_slots`` list (names or
indices) in the checkpoint's config, else a ``trained slots: ...`` line in its model card,
else the 13 URMP instruments (the piano, plucked strings and voice slots are then
unlearned). A track on an unlearned slot is played by the trained slot whose range
(``instruments.json``) covers most of the track's notes (then: the smaller mean distance
outside the range), ties broken by the preference order of :data:`SUBSTITUTE_PREFERENCES`
- same family first for the URMP slots, and for the spare slots: piano -> bowed strings
then winds (the widest compass with a soft attack), plucked strings -> bowed strings,
voice -> the breath-driven winds (clarinet, horn, oboe, flute, ...).

Phase blocks
------------
Griffin-Lim over a whole score would hold state for every frame (~1.4 MB per second of
audio). Scores longer than :data:`GRIFFIN_LIM_BLOCK_S` are reconstructed in blocks that
overlap by :data:`GRIFFIN_LIM_OVERLAP_S`; each block starts from the previous block's
phase in the overlap, so both mostly agree there (correlation ~0.7-0.85 after 32
iterations), and the waveforms are cross-faded over the middle half of the overlap with
:func:`coherent_crossfade`, which keeps the level for partly correlated signals. On a
65 s FluidSynth render: spectral convergence 0.070 vs 0.067 for one call, level within
0.3 dB at the seams. Memory then stays flat apart from the output arrays themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import re
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pretty_midi
import torch
from torch import Tensor, nn

from orchestrion.audio.io import resample
from orchestrion.audio.phase import griffin_lim
from orchestrion.checkpoints import Checkpoint, CheckpointError, load_checkpoint, load_state_into
from orchestrion.errors import ConfigError, EmptyScoreError
from orchestrion.nn.blocks import NoiseDropout
from orchestrion.symbolic.instruments import InstrumentVocabulary, Slot, track_label
from orchestrion.symbolic.midi import ScoreLike, ScoreRepairWarning, as_score, melodic_instruments
from orchestrion.symbolic.pianoroll import cut_restrike_gaps, score_to_pianoroll, time_to_frame
from orchestrion.systems.organ.data import TargetSpectrogram
from orchestrion.systems.organ.model import OrganModel
from orchestrion.systems.organ.presets import OrganConfig

SYSTEM = "render"
DEFAULT_MODEL = "render-cpu"
"""Name of the shipped render model (``orchestrion/assets/models/render-cpu``)."""
DEFAULT_TAIL_S = 0.5
"""Release tail after the last note ends, seconds."""
DEFAULT_OVERLAP_S = 0.5
"""Overlap of consecutive generator windows, seconds."""
NOISE_DRAWS = 4
"""Dropout draws averaged into the empty-roll noise magnitude."""
WINDOW_BATCH = 2
"""Generator windows per forward pass (one task for a worker thread). Smaller batches stay in
cache: 60 s of a quartet rendered a part at a time took 2.1-2.4 s of generator time with 2
windows per pass, 2.4-2.5 s with 4, 2.8 s with 8 and 4.3 s with 32 (2 threads)."""
GRIFFIN_LIM_BLOCK_S = 30.0
"""Longest stretch reconstructed by one Griffin-Lim call, seconds."""
GRIFFIN_LIM_OVERLAP_S = 1.0
"""Overlap of consecutive Griffin-Lim blocks, seconds."""
_NOISE_STREAM, _WINDOW_STREAM, _PHASE_STREAM = 1, 2, 3
"""Keys of the random streams of a render: the noise draws never shift the windows' draws."""

CrossfadeDomain = Literal["power", "magnitude", "log_power"]
CROSSFADE_DOMAINS: tuple[str, ...] = ("power", "magnitude", "log_power")

_SUBSTITUTE_ORDER = {
    # spare slots (never in URMP): family or sound-production neighbours first
    "piano": (
        "cello, viola, violin, bassoon, clarinet, horn, double bass, flute, oboe, "
        "saxophone, trombone, trumpet, tuba"
    ),
    "plucked strings": (
        "cello, viola, violin, double bass, bassoon, clarinet, horn, flute, oboe, "
        "saxophone, trombone, trumpet, tuba"
    ),
    "voice": (
        "clarinet, horn, oboe, flute, saxophone, viola, cello, bassoon, trombone, "
        "violin, trumpet, tuba, double bass"
    ),
    # URMP slots (for models trained on some of them only): same family first
    "violin": (
        "viola, cello, double bass, flute, oboe, clarinet, saxophone, trumpet, horn, "
        "bassoon, trombone, tuba"
    ),
    "viola": (
        "violin, cello, double bass, clarinet, horn, oboe, flute, saxophone, bassoon, "
        "trumpet, trombone, tuba"
    ),
    "cello": (
        "viola, double bass, violin, bassoon, horn, trombone, saxophone, clarinet, "
        "tuba, oboe, flute, trumpet"
    ),
    "double bass": (
        "cello, viola, violin, tuba, bassoon, trombone, horn, saxophone, clarinet, "
        "oboe, flute, trumpet"
    ),
    "flute": (
        "oboe, clarinet, saxophone, violin, bassoon, trumpet, horn, viola, cello, "
        "trombone, double bass, tuba"
    ),
    "oboe": (
        "clarinet, flute, saxophone, bassoon, violin, trumpet, horn, viola, cello, "
        "trombone, double bass, tuba"
    ),
    "clarinet": (
        "saxophone, oboe, flute, bassoon, horn, viola, violin, trumpet, cello, "
        "trombone, double bass, tuba"
    ),
    "saxophone": (
        "clarinet, bassoon, oboe, flute, horn, trombone, cello, viola, trumpet, violin, "
        "tuba, double bass"
    ),
    "bassoon": (
        "saxophone, clarinet, oboe, flute, cello, horn, trombone, tuba, double bass, "
        "viola, violin, trumpet"
    ),
    "trumpet": (
        "horn, trombone, tuba, oboe, clarinet, saxophone, flute, violin, viola, "
        "bassoon, cello, double bass"
    ),
    "horn": (
        "trombone, trumpet, tuba, bassoon, saxophone, clarinet, cello, viola, oboe, "
        "flute, violin, double bass"
    ),
    "trombone": (
        "horn, tuba, trumpet, bassoon, saxophone, cello, clarinet, double bass, viola, "
        "oboe, violin, flute"
    ),
    "tuba": (
        "trombone, horn, trumpet, double bass, bassoon, cello, saxophone, clarinet, "
        "viola, oboe, violin, flute"
    ),
}
SUBSTITUTE_PREFERENCES: dict[str, tuple[str, ...]] = {
    slot: tuple(name.strip() for name in names.split(","))
    for slot, names in _SUBSTITUTE_ORDER.items()
}
"""Substitute candidates per slot, in tie-break order (register fit decides first)."""

_CARD_SLOTS = re.compile(r"^[\s>*-]*trained slots?\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


_DROPOUT_STREAM = threading.local()


@contextlib.contextmanager
def dropout_stream(seed: int) -> Iterator[None]:
    """Draw this thread's inference-dropout masks from a generator seeded with `seed`."""
    previous = getattr(_DROPOUT_STREAM, "generator", None)
    _DROPOUT_STREAM.generator = torch.Generator().manual_seed(int(seed) % (2**63))
    try:
        yield
    finally:
        _DROPOUT_STREAM.generator = previous


class SeededNoiseDropout(NoiseDropout):
    """:class:`~orchestrion.nn.blocks.NoiseDropout` whose masks come from an explicit generator.

    Inside :func:`dropout_stream` the masks are drawn from that thread's generator, so a
    window batch gets the same noise whichever thread runs it and in whatever order;
    outside, it behaves exactly like NoiseDropout (the global RNG). Same distribution:
    keep with probability ``1 - p``, survivors scaled by ``1 / (1 - p)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        generator = getattr(_DROPOUT_STREAM, "generator", None)
        active = (self.training or self.active_at_inference) and self.p > 0.0
        if generator is None or not active or x.device.type != "cpu":
            return super().forward(x)
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep, generator=generator)  # keeps x's memory format
        return x * mask.div_(keep)


def _seed_dropout(module: nn.Module) -> None:
    """Replace every NoiseDropout inside `module` by a SeededNoiseDropout, in place.

    No weights change and, outside :func:`dropout_stream`, neither does the behaviour.
    """
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is NoiseDropout:
                setattr(parent, name, SeededNoiseDropout(child.p, child.active_at_inference))


def _stream_seed(seed: int, *key: int) -> int:
    """A well-mixed 63-bit seed for the random stream `key` of a render seeded with `seed`."""
    return int(
        np.random.SeedSequence([int(seed) % (2**32), *key]).generate_state(2, np.uint64)[0] >> 1
    )


class RenderWarning(UserWarning):
    """A score was rendered with a change: an unlearned instrument played by another slot."""


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render_score` made.

    Attributes
    ----------
    audio : np.ndarray, float32, shape (samples,)
        Mono audio at `sample_rate`, the score's end plus the release tail.
    sample_rate : int
        Hz.
    spectrogram : np.ndarray, float32, shape (n_bins, frames)
        The log-power ``ln(1 + |g X|^2)`` that was reconstructed (after cross-fade and any
        noise subtraction), in the model's units (``g`` = ``config.input_gain``), at the
        model's rate: frame k is at ``k * hop_length / model_rate`` seconds.
    warnings : list of str
        Everything the render changed or left out (drum tracks, substituted instruments,
        repaired notes), one sentence each.
    """

    audio: np.ndarray
    sample_rate: int
    spectrogram: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Length of `audio` in seconds."""
        return len(self.audio) / self.sample_rate


# ----------------------------------------------------------------------------- the model
def _slot_indices(
    entries: Sequence[str | int], vocabulary: InstrumentVocabulary, source: str
) -> tuple[int, ...]:
    indices = set()
    for entry in entries:
        if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
            if not 0 <= int(entry) < len(vocabulary):
                raise ConfigError(
                    f"{source}: slot {entry} does not exist (0..{len(vocabulary) - 1})"
                )
            indices.add(int(entry))
        else:
            indices.add(vocabulary.by_name(str(entry).strip().strip("`")).index)
    return tuple(sorted(indices))


def trained_slots_of(config: dict, card: str, vocabulary: InstrumentVocabulary) -> tuple[int, ...]:
    """Slots a checkpoint's model learned (see the module notes, *Unlearned slots*).

    Parameters
    ----------
    config : dict
        The checkpoint's config values; a ``trained_slots`` entry (names or indices) wins.
    card : str
        The model card; a line ``trained slots: violin, flute, ...`` is used next.
    vocabulary : InstrumentVocabulary

    Returns
    -------
    tuple of int, sorted slot indices; the 13 URMP slots when nothing says otherwise.
    """
    listed = config.get("trained_slots")
    if listed:
        return _slot_indices(list(listed), vocabulary, "trained_slots in the checkpoint config")
    match = _CARD_SLOTS.search(card or "")
    if match:
        names = [name for name in match.group(1).split(",") if name.strip()]
        if names:
            return _slot_indices(names, vocabulary, "the model card's trained slots")
    return tuple(slot.index for slot in vocabulary if slot.is_urmp)


class RenderModel(nn.Module):
    """A render model ready for inference: the orGAN network in eval mode and what it learned.

    The generator's dropout, the seed's noise source, is off at inference by default
    (``deterministic=True``): with noise subtraction off it scored better on every audio
    figure of 8 validation pieces. ``deterministic=False`` keeps it on, as in the seed.

    Parameters
    ----------
    network : OrganModel
        The trained (or freshly initialised) network.
    trained_slots : sequence of int, optional
        Slot indices the model learned; default the 13 URMP slots.
    card : str
        The model card's text.
    source : Path, optional
        The checkpoint folder it came from.
    deterministic : bool
        Switch the inference dropout off (default).

    Shapes
    ------
    forward(roll, onsets): (B, 16, 128, T) [+ (B, 16, 128, T)] -> log-power (B, 1, n_bins, T).
    """

    def __init__(
        self,
        network: OrganModel,
        trained_slots: Sequence[int] | None = None,
        *,
        card: str = "",
        source: Path | None = None,
        deterministic: bool = True,
    ) -> None:
        super().__init__()
        _seed_dropout(network)
        self.network = network.eval()
        self.config: OrganConfig = network.config
        self.vocabulary = InstrumentVocabulary.default()
        if self.config.n_slots != len(self.vocabulary):
            raise ConfigError(
                f"this model has {self.config.n_slots} instrument slots but the vocabulary has "
                f"{len(self.vocabulary)}"
            )
        default = [slot.index for slot in self.vocabulary if slot.is_urmp]
        self.trained_slots: tuple[int, ...] = tuple(sorted(set(trained_slots or default)))
        self.card = card
        self.source = source
        self.target = TargetSpectrogram(self.config)
        self.deterministic = False
        self._noise_cache: dict[tuple[int, bool, int], Tensor] = {}
        self.set_deterministic(deterministic)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = DEFAULT_MODEL, deterministic: bool = True
    ) -> RenderModel:
        """Load a render checkpoint: a folder path, a shipped model's name, or a training
        run's Lightning checkpoint (``.ckpt``: ``last.ckpt`` or a kept snapshot).

        Raises
        ------
        CheckpointError
            Missing, damaged, of another system, or weights that do not fit its config.
        """
        if Path(name_or_path).suffix == ".ckpt":
            from orchestrion.systems.organ.train import load_training_snapshot  # Lightning: only here

            checkpoint = load_training_snapshot(name_or_path)
        else:
            checkpoint = load_checkpoint(name_or_path, system=SYSTEM)
        return cls.from_checkpoint(checkpoint, deterministic=deterministic)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, deterministic: bool = True) -> RenderModel:
        """Build from an already loaded :class:`~orchestrion.checkpoints.Checkpoint`."""
        known = {f.name for f in dataclasses.fields(OrganConfig)}
        values = {k: v for k, v in checkpoint.config.items() if k in known or k != "trained_slots"}
        try:
            config = OrganConfig.from_dict(values)
        except (ConfigError, TypeError) as exc:
            problem = exc.problem if isinstance(exc, ConfigError) else str(exc)
            raise CheckpointError(
                f"config.json does not describe a render model ({problem})", checkpoint.path
            ) from None
        network = OrganModel.from_config(config)
        load_state_into(network, checkpoint)
        vocabulary = InstrumentVocabulary.default()
        try:
            trained = trained_slots_of(checkpoint.config, checkpoint.card, vocabulary)
        except ConfigError as exc:
            raise CheckpointError(exc.problem, checkpoint.path) from None
        return cls(
            network,
            trained,
            card=checkpoint.card,
            source=checkpoint.path,
            deterministic=deterministic,
        )

    @classmethod
    def from_config(
        cls,
        config: OrganConfig,
        deterministic: bool = True,
        trained_slots: Sequence[int] | None = None,
    ) -> RenderModel:
        """A randomly initialised model (for tests and speed benchmarks)."""
        return cls(OrganModel.from_config(config), trained_slots, deterministic=deterministic)

    def set_deterministic(self, deterministic: bool) -> None:
        """Switch the generator's inference dropout off (True) or back on (False)."""
        self.deterministic = bool(deterministic)
        self.network.set_inference_dropout(not self.deterministic)

    def train(self, mode: bool = True) -> RenderModel:
        """Inference only: the network stays in eval mode (BatchNorm uses running statistics)."""
        super().train(False)
        return self

    @property
    def frame_rate_hz(self) -> float:
        """Roll and spectrogram frames per second."""
        return self.config.frame_rate_hz

    def forward(self, roll: Tensor, onsets: Tensor | None = None) -> Tensor:
        """Log-power spectrogram of a roll; onsets are passed only if the model uses them."""
        return self.network(roll, onsets if self.config.onset_channels else None)

    @torch.inference_mode()
    def magnitude(self, roll: Tensor, onsets: Tensor | None = None) -> Tensor:
        """|X| of the audio itself (input gain divided out), (B, 16, 128, T) -> (B, n_bins, T)."""
        return self.target.inverse_magnitude(self(roll, onsets)[:, 0])

    def clear_noise_cache(self) -> None:
        """Forget the cached empty-roll magnitudes (they are recomputed on the next render)."""
        self._noise_cache.clear()

    def noise_magnitude(self, n_frames: int, seed: int = 0) -> Tensor:
        """Mean magnitude of the generator on an empty roll of `n_frames`, (n_bins, n_frames).

        The mean of :data:`NOISE_DRAWS` dropout draws (one with dropout off), from a
        random stream of its own; cached per (frames, dropout, seed).
        """
        key = (int(n_frames), not self.deterministic, int(seed))
        if key not in self._noise_cache:
            draws = 1 if self.deterministic else NOISE_DRAWS
            empty = torch.zeros(draws, self.config.n_slots, 128, int(n_frames))
            with dropout_stream(_stream_seed(seed, _NOISE_STREAM)):
                noise = self.magnitude(empty, empty).mean(dim=0)
            self._noise_cache[key] = noise.clone()
        return self._noise_cache[key]


def _as_render_model(model: RenderModel | str | Path) -> RenderModel:
    if isinstance(model, RenderModel):
        return model
    if isinstance(model, OrganModel):
        return RenderModel(model)
    if isinstance(model, (str, Path)):
        return RenderModel.from_pretrained(model)
    raise ConfigError(f"expected a RenderModel or a model name/folder, got {type(model).__name__}")


# ----------------------------------------------------------------------------- score -> tracks
@dataclass(frozen=True)
class PreparedScore:
    """A score reduced to what the generator plays.

    Attributes
    ----------
    tracks : list of (slot index, pretty_midi.Instrument)
        Melodic tracks with their slot after substitution; each track's program is its
        slot's own GM program, so rasterising maps it to that slot.
    end_s : float
        End of the last playable note, seconds.
    warnings : list of str
        Drum tracks left out, notes repaired, instruments substituted.
    """

    tracks: list[tuple[int, pretty_midi.Instrument]]
    end_s: float
    warnings: list[str]

    @property
    def slots(self) -> tuple[int, ...]:
        """The slots that play, sorted."""
        return tuple(sorted({slot for slot, _ in self.tracks}))


def _playable(note: pretty_midi.Note) -> bool:
    """The notes :func:`score_to_pianoroll` keeps."""
    return 0 <= note.start < note.end and 0 <= note.pitch < 128 and 1 <= note.velocity <= 127


def _register_fit(slot: Slot, pitches: np.ndarray) -> tuple[float, float]:
    """(share of `pitches` in the slot's range, minus their mean distance outside it, semitones)."""
    inside = (pitches >= slot.lowest_pitch) & (pitches <= slot.highest_pitch)
    below = np.clip(slot.lowest_pitch - pitches, 0, None)
    above = np.clip(pitches - slot.highest_pitch, 0, None)
    return float(inside.mean()), -float((below + above).mean())


def substitute_slot(
    slot: Slot, pitches: Sequence[int], trained: Sequence[int], vocabulary: InstrumentVocabulary
) -> Slot:
    """The trained slot that plays a track written for the unlearned `slot`.

    The trained slot whose range covers most of `pitches` (then the smaller mean distance
    outside the range); ties go to the earlier one in ``SUBSTITUTE_PREFERENCES[slot]``,
    then to vocabulary order.
    """
    trained_set = set(trained)
    if not trained_set:
        raise ConfigError("the model lists no trained instrument slots")
    preference = [
        vocabulary.by_name(name).index for name in SUBSTITUTE_PREFERENCES.get(slot.name, ())
    ]
    order = {index: rank for rank, index in enumerate(preference)}
    candidates = sorted(trained_set, key=lambda i: (order.get(i, len(order)), i))
    notes = np.asarray(pitches, dtype=np.float64)
    if notes.size == 0:
        return vocabulary[candidates[0]]
    best = max(
        candidates, key=lambda i: (*_register_fit(vocabulary[i], notes), -candidates.index(i))
    )
    return vocabulary[best]


def prepare_score(score_or_path: ScoreLike, model: RenderModel) -> PreparedScore:
    """Read a score and assign each melodic track to a slot the model learned.

    Raises
    ------
    InputFileNotFoundError, MidiReadError, EmptyScoreError
        A missing or unreadable file, or no playable pitched note.
    """
    vocabulary = model.vocabulary
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = as_score(score_or_path)
        melodic = melodic_instruments(score)
    positions = {id(inst): index for index, inst in enumerate(score.instruments)}
    replay = [(w.category, str(w.message)) for w in caught]
    tracks: list[tuple[int, pretty_midi.Instrument]] = []
    n_unplayable, end_s = 0, 0.0
    for inst in melodic:
        notes = [note for note in inst.notes if _playable(note)]
        n_unplayable += len(inst.notes) - len(notes)
        if not notes:
            continue
        slot = vocabulary.slot_for_program(inst.program)
        if slot.index not in model.trained_slots:
            substitute = substitute_slot(
                slot, [n.pitch for n in notes], model.trained_slots, vocabulary
            )
            replay.append(
                (
                    RenderWarning,
                    f"{track_label(inst, positions.get(id(inst)))} is played by the "
                    f"{slot.name} slot, which this model never learned: rendering it "
                    f"as {substitute.name} instead (nearest trained slot by register "
                    "and family)",
                )
            )
            slot = substitute
        track = pretty_midi.Instrument(program=slot.program, is_drum=False, name=inst.name)
        track.notes = notes
        tracks.append((slot.index, track))
        end_s = max(end_s, max(note.end for note in notes))
    if n_unplayable:
        replay.append(
            (
                ScoreRepairWarning,
                f"left out {n_unplayable} notes that cannot be played (no duration, a start "
                "before 0 s, or pitch or velocity outside MIDI's range)",
            )
        )
    source = score_or_path if isinstance(score_or_path, (str, Path)) else None
    if not tracks:
        raise EmptyScoreError("holds no playable pitched notes", source)
    for category, message in replay:
        warnings.warn(message, category, stacklevel=3)
        messages.append(message)
    return PreparedScore(tracks, end_s, messages)


# ----------------------------------------------------------------------------- streamed roll
class StreamingRoll:
    """The score's pianoroll, rasterised on demand for any stretch of frames.

    ``roll.frames(a, b)`` equals ``score_to_pianoroll(score, fr, mode="velocity",
    onsets=True, n_frames=N)[..., a:b]`` for any N >= b (same values, same onsets, same
    re-strike gaps), but costs memory for ``b - a`` frames only: the notes sounding in
    ``[a, b]`` are shifted by ``-a / fr`` seconds and rasterised by
    :func:`~orchestrion.symbolic.score_to_pianoroll` itself; a note begun before frame
    ``a`` keeps no onset there, and one look-ahead frame lets a re-strike at ``b`` cut
    frame ``b - 1`` as it does in the whole roll.

    Parameters
    ----------
    tracks : list of (slot index, pretty_midi.Instrument)
        Melodic tracks (see :class:`PreparedScore`); notes must be playable.
    frame_rate_hz : float
    vocabulary : InstrumentVocabulary
    """

    def __init__(
        self,
        tracks: Sequence[tuple[int, pretty_midi.Instrument]],
        frame_rate_hz: float,
        vocabulary: InstrumentVocabulary,
    ) -> None:
        self.frame_rate_hz = float(frame_rate_hz)
        self.vocabulary = vocabulary
        self.n_slots = len(vocabulary)
        self._tracks = []
        for slot, inst in tracks:
            notes = list(inst.notes)
            starts = np.array([n.start for n in notes], dtype=np.float64)
            ends = np.array([n.end for n in notes], dtype=np.float64)
            on = time_to_frame(starts, self.frame_rate_hz)
            off = time_to_frame(ends, self.frame_rate_hz)
            short = off <= on  # a note holding no frame start takes the frame it starts in
            on[short] = np.maximum(off[short] - 1, 0)
            off[short] = on[short] + 1
            self._tracks.append((slot, inst.program, notes, on, off))

    def frames(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(roll, onsets), each float32 (slots, 128, stop - first), for frames [first, stop)."""
        if not 0 <= first < stop:
            raise ConfigError(f"frame range must satisfy 0 <= first < stop, got [{first}, {stop})")
        shift_s = first / self.frame_rate_hz
        score = pretty_midi.PrettyMIDI()
        carried: list[tuple[int, int]] = []  # (slot, pitch) of notes begun before `first`
        fresh: set[tuple[int, int]] = set()  # (slot, pitch) with a true onset at `first`
        for slot, program, notes, on, off in self._tracks:
            sounding = np.flatnonzero((on <= stop) & (off > first))
            if sounding.size == 0:
                continue
            inst = pretty_midi.Instrument(program=program)
            for i in sounding:
                note = notes[i]
                if on[i] < first:
                    carried.append((slot, note.pitch))
                elif on[i] == first:
                    fresh.add((slot, note.pitch))
                start = 0.0 if on[i] < first else max(note.start - shift_s, 0.0)
                inst.notes.append(
                    pretty_midi.Note(note.velocity, note.pitch, start, note.end - shift_s)
                )
            score.instruments.append(inst)
        roll, onsets = score_to_pianoroll(
            score,
            self.frame_rate_hz,
            vocabulary=self.vocabulary,
            mode="velocity",
            n_frames=stop - first + 1,
            onsets=True,
            restrike_gap=False,
        )
        for slot, pitch in carried:
            if (slot, pitch) not in fresh:
                onsets[slot, pitch, 0] = 0.0
        cut_restrike_gaps(roll, onsets)
        return roll[..., :-1], onsets[..., :-1]


# ----------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class WindowPlan:
    """Where the generator windows go and how they are cross-faded.

    Attributes
    ----------
    n_frames : int
        Frames of the output.
    window : int
        Frames per window (the generator's input length).
    hop : int
        Frames between window starts (``window - overlap``).
    count : int
        Windows; they cover ``window + (count - 1) * hop >= n_frames`` frames.
    """

    n_frames: int
    window: int
    hop: int
    count: int

    @classmethod
    def build(cls, n_frames: int, window: int, overlap: int) -> WindowPlan:
        """Plan windows of `window` frames overlapping by `overlap` over `n_frames` frames."""
        if window < 2:
            raise ConfigError(f"a generator window needs at least 2 frames, got {window}")
        if not 0 <= overlap <= window // 2:
            raise ConfigError(
                f"window overlap must be between 0 and half the window ({window // 2} frames), "
                f"got {overlap} frames"
            )
        hop = window - overlap
        count = 1 if n_frames <= window else 1 + math.ceil((n_frames - window) / hop)
        return cls(int(n_frames), int(window), int(hop), int(count))

    @property
    def overlap(self) -> int:
        """Frames shared by consecutive windows."""
        return self.window - self.hop

    @property
    def padded_frames(self) -> int:
        """Frames the windows span (the roll is padded with silence up to here)."""
        return self.window + (self.count - 1) * self.hop

    def start(self, k: int) -> int:
        """First frame of window k."""
        return k * self.hop

    def ramp(self) -> np.ndarray:
        """Rising cross-fade weights over the middle half of an overlap, float64 (overlap,).

        0 on the first quarter, ``sin^2`` over the middle half, 1 on the last quarter; the
        falling weights are ``1 - ramp`` on the same frames, so each pair sums to 1.
        """
        overlap = self.overlap
        margin = overlap // 4
        length = overlap - 2 * margin
        ramp = np.zeros(overlap)
        if length > 0:
            ramp[margin : margin + length] = (
                np.sin(0.5 * np.pi * (np.arange(length) + 0.5) / length) ** 2
            )
        ramp[margin + length :] = 1.0
        return ramp

    def weights(self, k: int) -> np.ndarray:
        """Cross-fade weights of window k over its frames, float32 (window,)."""
        weights = np.ones(self.window)
        if self.overlap:
            ramp = self.ramp()
            if k > 0:
                weights[: self.overlap] *= ramp
            if k < self.count - 1:
                weights[self.hop :] *= 1.0 - ramp
        return weights.astype(np.float32)


def _to_domain(magnitude: Tensor, domain: str, gain: float) -> Tensor:
    if domain == "power":
        return magnitude.square()
    if domain == "magnitude":
        return magnitude
    return torch.log1p((gain * magnitude).square())


def _from_domain(values: Tensor, domain: str, gain: float) -> Tensor:
    if domain == "power":
        return values.clamp(min=0.0).sqrt()
    if domain == "magnitude":
        return values.clamp(min=0.0)
    return torch.expm1(values).clamp(min=0.0).sqrt() / gain


# ----------------------------------------------------------------------------- phase blocks
def coherent_crossfade(leaving: np.ndarray, arriving: np.ndarray) -> np.ndarray:
    """Cross-fade two estimates of one signal, keeping its energy, (samples,) -> (samples,).

    Weights ``g = cos^2``, ``f = sin^2`` (raised cosine, ``f + g = 1``) divided by
    ``sqrt(f^2 + g^2 + 2 f g rho)``, rho the correlation of the two over the fade: for
    identical signals (rho = 1) a plain raised-cosine fade, for unrelated ones an
    equal-power fade, and in between no dip in level mid-fade.
    """
    n = len(leaving)
    if n == 0:
        return leaving.copy()
    fade_in = np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2
    fade_out = 1.0 - fade_in
    norms = float(np.linalg.norm(leaving) * np.linalg.norm(arriving))
    rho = float(np.dot(leaving, arriving)) / norms if norms > 0 else 1.0
    rho = min(max(rho, 0.0), 1.0)
    scale = 1.0 / np.sqrt(fade_in**2 + fade_out**2 + 2.0 * fade_in * fade_out * rho)
    return ((leaving * fade_out + arriving * fade_in) * scale).astype(np.float32)


def griffin_lim_blocks(
    magnitude: Tensor,
    n_fft: int,
    hop_length: int,
    length: int,
    n_iter: int = 32,
    generator: torch.Generator | None = None,
    block_frames: int = 1875,
    overlap_frames: int = 63,
    on_block: Callable[[], None] | None = None,
) -> np.ndarray:
    """Griffin-Lim over a long magnitude in overlapping blocks (see *Phase blocks*).

    Parameters
    ----------
    magnitude : Tensor, (n_bins, frames)
        |X| of the whole signal, centred STFT frames.
    n_fft, hop_length : int
        The STFT's size and hop, samples.
    length : int
        Output samples; its centred STFT has ``frames`` frames.
    n_iter : int
        Iterations per block.
    generator : torch.Generator, optional
        For the random initial phase.
    block_frames, overlap_frames : int
        Frames per block and shared by consecutive blocks; one call when the signal fits
        in a block.
    on_block : callable, optional
        Called after each block (progress).

    Returns
    -------
    np.ndarray, float32, (length,)
    """
    n_bins, n_frames = magnitude.shape
    if n_frames <= block_frames or overlap_frames < 4:
        wave = griffin_lim(
            magnitude, n_fft, hop_length, n_iter, init="random", length=length, generator=generator
        )
        if on_block:
            on_block()
        return wave.numpy().astype(np.float32, copy=False)
    count = math.ceil((n_frames - overlap_frames) / (block_frames - overlap_frames))
    core = math.ceil((n_frames - overlap_frames) / count)
    out = np.zeros(length, dtype=np.float32)
    half = n_fft // 2
    window = torch.hann_window(n_fft, periodic=True)
    previous_stop = 0
    for j in range(count):
        first = j * core
        stop = n_frames if j == count - 1 else min(first + core + overlap_frames, n_frames)
        block = magnitude[:, first:stop]
        block_length = (
            length - first * hop_length if stop == n_frames else (stop - first - 1) * hop_length
        )
        phase = torch.rand(block.shape, generator=generator) * (2.0 * math.pi)
        offset = first * hop_length
        if j > 0:
            shared = previous_stop - first
            # phase of what has been reconstructed so far, at the shared frames
            lo, hi = offset - half, (previous_stop - 1) * hop_length + half
            segment = torch.from_numpy(out[max(lo, 0) : min(hi, length)].copy())
            segment = torch.nn.functional.pad(segment, (max(-lo, 0), max(hi - length, 0)))
            spectrum = torch.stft(
                segment, n_fft, hop_length, window=window, center=False, return_complex=True
            )
            phase[:, :shared] = torch.angle(spectrum[:, :shared])
        wave = griffin_lim(
            block, n_fft, hop_length, n_iter, init=phase, length=block_length
        ).numpy()
        if j == 0:
            out[:block_length] = wave
        else:
            span = (previous_stop - 1 - first) * hop_length
            fade_from, fade_to = offset + span // 4, offset + (3 * span) // 4
            local = slice(fade_from - offset, fade_to - offset)
            out[fade_from:fade_to] = coherent_crossfade(out[fade_from:fade_to], wave[local])
            out[fade_to : offset + block_length] = wave[fade_to - offset :]
        previous_stop = stop
        if on_block:
            on_block()
    return out


# ----------------------------------------------------------------------------- render
def in_worker_threads(task: Callable, items: Sequence, workers: int) -> Iterator:
    """Yield ``task(i, item)`` for each item, in order, computed by `workers` threads.

    Each thread runs torch kernels single-threaded (torch's intra-op thread count is 1
    meanwhile, then restored): the threads overlap where torch releases the GIL, and,
    unlike torch's own OpenMP pool, do not spin-wait for each other when other
    processes share the cores. At most ``2 * workers`` results are in flight, so
    memory does not grow with the number of items.
    """
    if workers <= 1 or len(items) <= 1:
        for index, item in enumerate(items):
            yield task(index, item)
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="orgen") as pool:
            queue = iter(enumerate(items))
            pending = deque(
                pool.submit(task, i, item) for i, item in itertools.islice(queue, 2 * workers)
            )
            try:
                while pending:
                    result = pending.popleft().result()
                    following = next(queue, None)
                    if following is not None:
                        pending.append(pool.submit(task, *following))
                    yield result
            finally:
                for future in pending:
                    future.cancel()
    finally:
        torch.set_num_threads(previous)


def _window_batches(plan: WindowPlan, batch: int) -> Iterator[range]:
    for k in range(0, plan.count, batch):
        yield range(k, min(k + batch, plan.count))


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@torch.no_grad()  # not inference_mode: Griffin-Lim's worker threads update tensors in place
def render_score(
    score_or_path: ScoreLike,
    model: RenderModel | str | Path,
    *,
    sample_rate: int | None = None,
    per_track: bool = True,
    window_s: float | None = None,
    overlap_s: float = DEFAULT_OVERLAP_S,
    n_iter: int = 32,
    noise_subtraction: bool = False,
    seed: int = 0,
    progress: bool = False,
    tail_s: float = DEFAULT_TAIL_S,
    crossfade: CrossfadeDomain = "power",
    batch_windows: int = WINDOW_BATCH,
    workers: int | None = None,
) -> RenderResult:
    """Render a score to audio with an orGAN model (see the module notes for every step).

    Parameters
    ----------
    score_or_path : pretty_midi.PrettyMIDI or path
        The score, or a MIDI file.
    model : RenderModel, or a model name / checkpoint folder
        E.g. ``RenderModel.from_pretrained("render-cpu")``.
    sample_rate : int, optional
        Output rate, Hz; default the model's (16 kHz for the cpu preset).
    per_track : bool
        Render each instrument slot alone and combine their power (the seed's preference,
        and closer to the reference); False runs the generator once on the whole mix.
    window_s : float, optional
        Generator window, seconds; default the model's training chunk (``chunk_s``).
    overlap_s : float
        Overlap of consecutive windows, seconds, at most half a window.
    n_iter : int
        Griffin-Lim iterations (0: the random initial phase only).
    noise_subtraction : bool
        Subtract the generator's empty-roll magnitude (the seed's post-processing). Off by
        default: on 8 validation pieces it cost the shipped model 0.10 of MR-STFT (bins
        below the noise estimate become holes, which the log term punishes).
    seed : int
        Seeds the dropout draws and the initial phase: the same seed gives the same audio.
    progress : bool
        Show a progress bar (rich, on stderr).
    tail_s : float
        Release after the last note, seconds.
    crossfade : {"power", "magnitude", "log_power"}
        Domain of the window cross-fade.
    batch_windows : int
        Windows per generator call (memory scales with it, not with the score).
    workers : int, optional
        Threads running generator calls (default ``torch.get_num_threads()``), each with
        single-threaded torch kernels; torch's own thread count is set to 1 meanwhile
        and restored. The audio does not depend on it.

    Returns
    -------
    RenderResult

    Raises
    ------
    InputFileNotFoundError, MidiReadError, EmptyScoreError
        Bad score input.
    CheckpointError
        `model` names no loadable render model.
    ConfigError
        An argument out of range.
    """
    model = _as_render_model(model)
    config = model.config
    _check_arguments(sample_rate, window_s, overlap_s, n_iter, tail_s, crossfade, batch_windows)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be a whole number, got {seed!r}")
    if workers is not None and (
        isinstance(workers, bool) or int(workers) != workers or workers < 1
    ):
        raise ConfigError(f"workers must be a whole number of threads >= 1, got {workers!r}")
    workers = torch.get_num_threads() if workers is None else int(workers)
    prepared = prepare_score(score_or_path, model)
    frame_rate = config.frame_rate_hz
    n_samples = int(round((prepared.end_s + tail_s) * config.sample_rate))
    n_frames = 1 + n_samples // config.hop_length
    window = config.chunk_frames  # frames, counted as the training chunks are
    if window_s is not None:
        window = 1 + int(round(window_s * config.sample_rate)) // config.hop_length
    plan = WindowPlan.build(n_frames, window, int(round(overlap_s * frame_rate)))
    roll_source = StreamingRoll(prepared.tracks, frame_rate, model.vocabulary)
    groups = [(s,) for s in prepared.slots] if per_track else [prepared.slots]
    gain = config.input_gain
    accumulated = torch.zeros(config.n_bins, plan.padded_frames)
    block_frames = max(int(round(GRIFFIN_LIM_BLOCK_S * frame_rate)), 2)
    overlap_frames = int(round(GRIFFIN_LIM_OVERLAP_S * frame_rate))
    n_blocks = (
        1
        if n_frames <= block_frames
        else math.ceil((n_frames - overlap_frames) / (block_frames - overlap_frames))
    )

    def render_batch(index: int, batch: range) -> tuple[range, Tensor]:
        first = plan.start(batch[0])
        roll, onsets = roll_source.frames(first, plan.start(batch[-1]) + plan.window)
        with dropout_stream(_stream_seed(seed, _WINDOW_STREAM, index)), torch.inference_mode():
            return batch, _render_windows(
                model, plan, batch, first, roll, onsets, groups, noise, batch_windows
            )

    with _progress(progress) as bar:
        windows_task = bar.add_task("generator", total=plan.count) if bar else None
        noise = model.noise_magnitude(plan.window, seed) if noise_subtraction else None
        batches = list(_window_batches(plan, batch_windows))
        for batch, mix in in_worker_threads(render_batch, batches, workers):
            for k, magnitude in zip(batch, mix, strict=True):
                start = plan.start(k)
                weights = torch.from_numpy(plan.weights(k))
                accumulated[:, start : start + plan.window] += (
                    _to_domain(magnitude, crossfade, gain) * weights
                )
            if bar:
                bar.advance(windows_task, len(batch))
        magnitude = _from_domain(accumulated[:, :n_frames], crossfade, gain)
        del accumulated
        phase_task = bar.add_task("phase", total=n_blocks) if bar else None
        generator = torch.Generator().manual_seed(_stream_seed(seed, _PHASE_STREAM))
        audio = griffin_lim_blocks(
            magnitude,
            config.n_fft,
            config.hop_length,
            n_samples,
            n_iter,
            generator,
            block_frames,
            overlap_frames,
            on_block=(lambda: bar.advance(phase_task)) if bar else None,
        )
    spectrogram = magnitude.mul_(gain).square_().log1p_().numpy()  # in place: no extra copy
    rate = config.sample_rate
    if sample_rate is not None and int(sample_rate) != rate:
        audio = resample(audio, rate, int(sample_rate))
        rate = int(sample_rate)
    return RenderResult(
        np.ascontiguousarray(audio, dtype=np.float32), rate, spectrogram, list(prepared.warnings)
    )


def _check_arguments(
    sample_rate: int | None,
    window_s: float | None,
    overlap_s: float,
    n_iter: int,
    tail_s: float,
    crossfade: str,
    batch_windows: int,
) -> None:
    if sample_rate is not None and (
        isinstance(sample_rate, bool) or not 4000 <= int(sample_rate) <= 192_000
    ):
        raise ConfigError(f"sample rate must be 4000-192000 Hz, got {sample_rate!r}")
    if window_s is not None and not window_s > 0:
        raise ConfigError(f"the window must be a positive number of seconds, got {window_s!r}")
    if not overlap_s >= 0:
        raise ConfigError(f"the window overlap must be >= 0 seconds, got {overlap_s!r}")
    if isinstance(n_iter, bool) or int(n_iter) != n_iter or n_iter < 0:
        raise ConfigError(f"Griffin-Lim iterations must be a whole number >= 0, got {n_iter!r}")
    if not 0 <= tail_s <= 60:
        raise ConfigError(f"the release tail must be 0-60 seconds, got {tail_s!r}")
    if crossfade not in CROSSFADE_DOMAINS:
        raise ConfigError(
            f"crossfade must be one of {', '.join(CROSSFADE_DOMAINS)}, got {crossfade!r}"
        )
    if isinstance(batch_windows, bool) or int(batch_windows) != batch_windows or batch_windows < 1:
        raise ConfigError(f"batch_windows must be a whole number >= 1, got {batch_windows!r}")


def _render_windows(
    model: RenderModel,
    plan: WindowPlan,
    batch: range,
    first: int,
    roll: np.ndarray,
    onsets: np.ndarray,
    groups: Sequence[tuple[int, ...]],
    noise: Tensor | None,
    batch_size: int,
) -> Tensor:
    """Magnitudes (len(batch), n_bins, window) of some windows, slot groups combined by power.

    `roll` and `onsets` (slots, 128, frames) start at frame `first`. Windows (or slot
    groups) whose roll is empty are silent and not run.
    """
    config = model.config
    out = torch.zeros(len(batch), config.n_bins, plan.window)
    jobs: list[tuple[int, tuple[int, ...]]] = []
    for i, k in enumerate(batch):
        local = plan.start(k) - first
        for group in groups:
            if not roll[list(group), :, local : local + plan.window].any():
                continue
            jobs.append((i, group))
    for j in range(0, len(jobs), batch_size):
        chunk = jobs[j : j + batch_size]
        rolls = torch.zeros(len(chunk), config.n_slots, 128, plan.window)
        starts = torch.zeros_like(rolls)
        for b, (i, group) in enumerate(chunk):
            local = plan.start(batch[i]) - first
            slots = list(group)
            rolls[b, slots] = torch.from_numpy(roll[slots, :, local : local + plan.window])
            starts[b, slots] = torch.from_numpy(onsets[slots, :, local : local + plan.window])
        magnitude = model.magnitude(rolls, starts)
        if noise is not None:
            magnitude = (magnitude - noise).clamp(min=0.0)
        for b, (i, _) in enumerate(chunk):
            if len(groups) == 1:
                out[i] = magnitude[b]
            else:
                out[i] = (out[i].square() + magnitude[b].square()).sqrt()
    return out


__all__ = [
    "CROSSFADE_DOMAINS",
    "DEFAULT_MODEL",
    "PreparedScore",
    "RenderModel",
    "RenderResult",
    "RenderWarning",
    "SeededNoiseDropout",
    "StreamingRoll",
    "SUBSTITUTE_PREFERENCES",
    "WindowPlan",
    "coherent_crossfade",
    "dropout_stream",
    "griffin_lim_blocks",
    "in_worker_threads",
    "prepare_score",
    "render_score",
    "substitute_slot",
    "trained_slots_of",
]
