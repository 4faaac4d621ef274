"""orGAN inference: a score in, audio out. The one render function of the CLI and the web page.

Pipeline (:func:`render_score`)
-------------------------------
1. **Score -> tracks.** The MIDI file is read with :func:`~orchestrion.symbolic.read_midi`
   (bad files raise :class:`~orchestrion.errors.MidiReadError`, scores without pitched
   notes :class:`~orchestrion.errors.EmptyScoreError`); drum tracks are left out with a
   ``DrumTrackWarning``. Every GM program maps to an instrument slot through the
   vocabulary; a track whose slot the model never learned is moved to a substitute slot
   with a :class:`~orchestrion.systems.organ.tracks.RenderWarning` naming it (see
   :mod:`orchestrion.systems.organ.tracks`).
2. **Roll.** The pianoroll is made exactly as in training (``systems/organ/data.py``):
   :func:`~orchestrion.symbolic.score_to_pianoroll` at ``sample_rate / hop_length``
   frames per second, ``mode="velocity"``, with onsets; the model is called as
   ``model(roll, onsets, ages)``. It is rasterised one stretch of windows at a time
   (:class:`StreamingRoll`), so it never exists whole. A model with note-age features
   gets each note's age from the stretch rasterised from ``note_age_lookback`` frames
   earlier, so a note begun before a window has its true age, as in training.
3. **Generator, window by window** (:mod:`orchestrion.systems.organ.windows`), each
   window's log-power turned into a magnitude with the training target's inverse (the
   input gain divided back out), the windows cross-faded. Windows where a part has no note
   are silent for it and not run. A generator call takes one part's windows (per track),
   and the model encodes and reads only the slots that sound
   (:meth:`~orchestrion.systems.organ.encoding.RollEncoding.encode_slots`): a part alone
   lights one slot of 16. The seed's noise subtraction (the empty-roll magnitude
   subtracted, clamped at 0) is available (``noise_subtraction=True``) but off: it
   measured worse.
4. **Phase** by our Fast Griffin-Lim (:func:`~orchestrion.audio.phase.griffin_lim`), in
   overlapping blocks of ~30 s (:func:`~orchestrion.audio.blocks.griffin_lim_blocks`), then
   resampling if asked.
   It starts from a phase-vocoder estimate (:mod:`orchestrion.audio.vocoder_phase`:
   each spectral peak's frequency integrated over time, its lobe locked to it), from
   which :data:`DEFAULT_N_ITER` iterations measured closer to the reference than 32
   from a random phase, in well under half the time.

Parts alone or together
-----------------------
``per_track=True`` (the default) renders every instrument slot alone (as the seed
preferred, thesis Fig. 5.12) and combines the slots as ``sqrt(sum |X_s|^2)``: the seed
added the separately reconstructed waveforms, whose phases are independent, and the
expected magnitude of such a sum is the power sum (a plain magnitude sum would overstate
every shared partial by up to 3 dB); one Griffin-Lim then serves all tracks. Measured
with ``render-cpu`` on 8 validation pieces (audio protocol, MS-SSIM / MR-STFT / LSD):
per track 0.684 / 1.443 / 8.50 dB, the whole mix in one pass 0.653 / 1.632 / 9.14 dB,
better on every piece. It costs one generator pass per part (~4x the generator time
for a quartet); ``per_track=False`` is the fast mode.

Windows, their cross-fade and the worker threads are described in
:mod:`orchestrion.systems.organ.windows`, the phase blocks in :mod:`orchestrion.audio.blocks`,
slots and substitutes in :mod:`orchestrion.systems.organ.tracks`.

Noise subtraction
-----------------
As the seed (thesis §4.7): an empty roll is run through the generator and its magnitude
subtracted from every window's, clamped at 0. The empty-roll magnitude is the mean of
:data:`NOISE_DRAWS` dropout draws (one draw is itself noisy), computed for the window
length in use, so it removes the same edge effects the windows have. Windows whose roll
is empty are then exactly silent and are not run at all.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from orchestrion.audio.blocks import check_phase_init, coherent_crossfade, griffin_lim_blocks
from orchestrion.audio.io import check_output_rate, resample
from orchestrion.checkpoints import Checkpoint, CheckpointError, load_checkpoint, load_state_into
from orchestrion.errors import ConfigError
from orchestrion.nn.blocks import NoiseDropout
from orchestrion.symbolic.instruments import InstrumentVocabulary
from orchestrion.symbolic.midi import ScoreLike
from orchestrion.systems.organ.data import TargetSpectrogram
from orchestrion.systems.organ.encoding import AGE_UNKNOWN, note_ages
from orchestrion.systems.organ.model import DISCRIMINATOR_STATE, OrganNetwork
from orchestrion.systems.organ.presets import OrganConfig
from orchestrion.systems.organ.snapshot import read_run_snapshot
from orchestrion.systems.organ.tracks import (
    SUBSTITUTE_PREFERENCES,
    PreparedScore,
    RenderWarning,
    StreamingRoll,
    prepare_score,
    substitute_slot,
    trained_slots_of,
)
from orchestrion.systems.organ.windows import (
    CROSSFADE_DOMAINS,
    CrossfadeDomain,
    WindowPlan,
    from_crossfade_domain,
    in_worker_threads,
    to_crossfade_domain,
    window_batches,
)

SYSTEM = "render"
DEFAULT_MODEL = "render-cpu"
"""Name of the shipped render model (``orchestrion/assets/models/render-cpu``)."""
DEFAULT_TAIL_S = 0.5
"""Release tail after the last note ends, seconds."""
DEFAULT_OVERLAP_S = 0.5
"""Overlap of consecutive generator windows, seconds."""
NOISE_DRAWS = 4
"""Dropout draws averaged into the empty-roll noise magnitude."""
DEFAULT_WINDOW_S = 8.0
"""Generator window, seconds, unless the model's training chunk is longer (see the
``windows`` module notes: longer windows measured better and cost less)."""
WINDOW_BATCH = 1
"""Generator windows per forward pass (one task for a worker thread). Smaller batches stay in
cache: 60 s of a quartet rendered a part at a time with 2 s windows took 2.1-2.4 s of
generator time with 2 windows per pass, 2.4-2.5 s with 4, 2.8 s with 8 and 4.3 s with 32 (2
threads); with 8 s windows, 1 or 2 per pass cost the same (one thread, 6.6-8.0 s against
7.9 s), and 1 holds half the memory."""
DEFAULT_N_ITER = 12
"""Griffin-Lim iterations from the vocoder phase (see ``benchmarks/phase_start.py``)."""
DEFAULT_PHASE_INIT = "vocoder"
"""Griffin-Lim's initial phase: ``"vocoder"`` or ``"random"``."""
GRIFFIN_LIM_BLOCK_S = 30.0
"""Longest stretch reconstructed by one Griffin-Lim call, seconds."""
GRIFFIN_LIM_OVERLAP_S = 1.0
"""Overlap of consecutive Griffin-Lim blocks, seconds."""
_NOISE_STREAM, _WINDOW_STREAM, _PHASE_STREAM = 1, 2, 3
"""Keys of the random streams of a render: the noise draws never shift the windows' draws."""

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


class RenderModel(nn.Module):
    """A render model ready for inference: the orGAN network in eval mode and what it learned.

    The generator's dropout, the seed's noise source, is off at inference by default
    (``deterministic=True``): with noise subtraction off it scored better on every audio
    figure of 8 validation pieces. ``deterministic=False`` keeps it on, as in the seed.

    Parameters
    ----------
    network : OrganNetwork
        The trained (or freshly initialised) network. It is changed in place for inference
        (BatchNorms folded into the convolutions, dropout seeded): pass a copy of a network
        that is still to be trained.
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
        network: OrganNetwork,
        trained_slots: Sequence[int] | None = None,
        *,
        card: str = "",
        source: Path | None = None,
        deterministic: bool = True,
    ) -> None:
        super().__init__()
        _seed_dropout(network)
        self.network = network.eval()
        # the same outputs, sooner: BatchNorms folded into the convolutions, and the weights
        # laid out channels-last like the activations (oneDNN then skips a reorder per call)
        self.network.generator.fold_batch_norms().to(memory_format=torch.channels_last)
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
        self.bank_only = False
        """Render with the note bank alone (no generator): the evaluation's bank baseline."""
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
            checkpoint = read_run_snapshot(name_or_path)
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
        network = OrganNetwork.from_config(config)
        load_state_into(network, checkpoint, skip=(DISCRIMINATOR_STATE,))  # a run's export holds one
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
        return cls(OrganNetwork.from_config(config), trained_slots, deterministic=deterministic)

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

    def forward(self, roll: Tensor, onsets: Tensor | None = None, ages: Tensor | None = None) -> Tensor:
        """Log-power spectrogram of a roll; onsets and note ages matter only to a model that
        uses them (see :meth:`OrganNetwork.forward`); with `bank_only` set, the note bank alone."""
        if self.bank_only:
            from orchestrion.systems.organ.bank_render import bank_only_log_power

            return bank_only_log_power(self.network, roll, onsets, ages)
        return self.network(roll, onsets, ages)

    @torch.inference_mode()
    def magnitude(self, roll: Tensor, onsets: Tensor | None = None, ages: Tensor | None = None) -> Tensor:
        """|X| of the audio itself (input gain divided out), (B, 16, 128, T) -> (B, n_bins, T)."""
        return self.target.inverse_magnitude(self(roll, onsets, ages)[:, 0])

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


def _as_render_model(model: RenderModel | OrganNetwork | str | Path) -> RenderModel:
    if isinstance(model, RenderModel):
        return model
    if isinstance(model, OrganNetwork):  # a copy: RenderModel folds its network for inference
        return RenderModel(copy.deepcopy(model))
    if isinstance(model, (str, Path)):
        return RenderModel.from_pretrained(model)
    raise ConfigError(f"expected a RenderModel or a model name/folder, got {type(model).__name__}")


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
    n_iter: int = DEFAULT_N_ITER,
    phase_init: str = DEFAULT_PHASE_INIT,
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
        Generator window, seconds; default :data:`DEFAULT_WINDOW_S` (8 s), or the model's
        training chunk (``chunk_s``) if that is longer.
    overlap_s : float
        Overlap of consecutive windows, seconds, at most half a window.
    n_iter : int
        Griffin-Lim iterations (0: the initial phase only).
    phase_init : {"vocoder", "random"}
        Griffin-Lim's initial phase: the phase-vocoder estimate from the magnitude (the
        default, needs far fewer iterations) or a uniform random phase (the seed's).
    noise_subtraction : bool
        Subtract the generator's empty-roll magnitude (the seed's post-processing). Off by
        default: on 8 validation pieces it cost the shipped model 0.10 of MR-STFT (bins
        below the noise estimate become holes, which the log term punishes).
    seed : int
        Seeds the dropout draws (and a random initial phase): the same seed gives the same
        audio.
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
    check_phase_init(phase_init)  # before the generator's work, not after it
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
    window_s = max(config.chunk_s, DEFAULT_WINDOW_S) if window_s is None else window_s
    window = 1 + int(round(window_s * config.sample_rate)) // config.hop_length  # as chunks are
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
        since = max(0, first - config.note_age_lookback)
        roll, onsets = roll_source.frames(since, plan.start(batch[-1]) + plan.window)
        ages = None
        if config.uses_note_ages:
            ages = note_ages(torch.from_numpy(roll), torch.from_numpy(onsets)).numpy()[..., first - since :]
        roll, onsets = roll[..., first - since :], onsets[..., first - since :]
        with dropout_stream(_stream_seed(seed, _WINDOW_STREAM, index)), torch.inference_mode():
            return batch, _render_windows(
                model, plan, batch, first, (roll, onsets, ages), groups, noise, batch_windows
            )

    with _progress(progress) as bar:
        windows_task = bar.add_task("generator", total=plan.count) if bar else None
        noise = model.noise_magnitude(plan.window, seed) if noise_subtraction else None
        batches = list(window_batches(plan, batch_windows))
        for batch, mix in in_worker_threads(render_batch, batches, workers):
            for k, magnitude in zip(batch, mix, strict=True):
                start = plan.start(k)
                weights = torch.from_numpy(plan.weights(k))
                accumulated[:, start : start + plan.window] += (
                    to_crossfade_domain(magnitude, crossfade, gain) * weights
                )
            if bar:
                bar.advance(windows_task, len(batch))
        magnitude = from_crossfade_domain(accumulated[:, :n_frames], crossfade, gain)
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
            init=phase_init,
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
    check_output_rate(sample_rate)
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
    lanes: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    groups: Sequence[tuple[int, ...]],
    noise: Tensor | None,
    batch_size: int,
) -> Tensor:
    """Magnitudes (len(batch), n_bins, window) of some windows, slot groups combined by power.

    `lanes` are the roll, its onsets and the note ages (None for a model without
    note-age features), each (slots, 128, frames) from frame `first`. Windows (or slot
    groups) whose roll is empty are silent and not run.
    """
    roll, onsets, ages = lanes
    config = model.config
    out = torch.zeros(len(batch), config.n_bins, plan.window)
    frames = [slice(plan.start(k) - first, plan.start(k) - first + plan.window) for k in batch]
    # group by group: a generator call then sees one group's slots (a part alone lights one)
    jobs = [
        (i, group) for group in groups for i in range(len(batch)) if roll[list(group), :, frames[i]].any()
    ]
    for j in range(0, len(jobs), batch_size):
        chunk = jobs[j : j + batch_size]
        rolls = torch.zeros(len(chunk), config.n_slots, 128, plan.window)
        starts = torch.zeros_like(rolls)
        olds = None if ages is None else torch.full_like(rolls, AGE_UNKNOWN)
        for b, (i, group) in enumerate(chunk):
            slots = list(group)
            rolls[b, slots] = torch.from_numpy(roll[slots, :, frames[i]])
            starts[b, slots] = torch.from_numpy(onsets[slots, :, frames[i]])
            if olds is not None and ages is not None:
                olds[b, slots] = torch.from_numpy(ages[slots, :, frames[i]])
        magnitude = model.magnitude(rolls, starts, olds)
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
    "DEFAULT_N_ITER",
    "DEFAULT_PHASE_INIT",
    "DEFAULT_WINDOW_S",
    "SUBSTITUTE_PREFERENCES",
    "PreparedScore",
    "RenderModel",
    "RenderResult",
    "RenderWarning",
    "SeededNoiseDropout",
    "StreamingRoll",
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
