"""orGAN inference over time: generator windows and their cross-fade, phase reconstruction
in blocks, and the worker threads that run them (steps 3-4 of ``infer.render_score``).

Windows and cross-fade (a decision)
-----------------------------------
The U-Net's receptive field spans its whole input, and it was trained on chunks of
``config.chunk_frames`` frames (2 s for the cpu preset). It is convolutional, so scores are
rendered in longer windows (``window_s``, default ``infer.DEFAULT_WINDOW_S`` = 8 s, or the
training chunk if longer) that overlap by ``overlap_s``; the roll is padded with silence at
the end so every window is full and the hop is the same everywhere. In each overlap the
outer quarters on both sides are dropped (those frames see the U-Net's zero padding where
the music goes on) and the middle half is a raised-cosine cross-fade, ``sin^2`` / ``cos^2``
weights that sum to 1.

Window length (a decision, measured twice). With the session-10 weights, on 8 validation
pieces (MS-SSIM / MR-STFT / LSD), 2 s windows overlapping by 0.5 s 0.7357 / 1.2347 /
7.70 dB, 4 s 0.7349 / 1.2331 / 7.72 dB, 8 s 0.7349 / 1.2337 / 7.72 dB: no better, so the
training chunk stayed the default. With the session-16 weights (note-age features), the
same 8 pieces: 2 s 0.7722 / 1.1699 / 7.33 dB, 4 s 0.7750 / 1.1638 / 7.30, 8 s 0.7760 /
1.1617 / 7.27, 16 s 0.7768 / 1.1605 / 7.26; but on the next 16 validation pieces 2 s
0.7762 / 1.1784 / 7.38 against 8 s 0.7753 / 1.1839 / 7.37, so over all 24 the two are
level (8 s +0.0006 MS-SSIM, +0.001 MR-STFT). The test pieces, read afterwards, lean the
other way (8 pieces: 2 s 0.8041 / 1.1411 / 6.67, 8 s 0.8000 / 1.1575 / 6.69; 7 of the 8
pieces lower, 041 by 0.014). The differences are small either way and the validation
pieces, where the choice is made, call it level; speed decides: 8 s windows take about
25-28 % less generator time (fewer frames computed twice, fewer and larger calls), so 8 s
is the default. A window's memory grows with its length; ``window_s`` takes any length.
A 0.25 s overlap measured 0.7325 / 1.2376 / 7.73 dB against 0.5 s's 0.7357 (session 10).

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
(``infer.SeededNoiseDropout``), so the audio depends on `seed`, not on the threads.

Phase blocks
------------
Griffin-Lim over a whole score would hold state for every frame (~1.4 MB per second of
audio). Scores longer than :data:`GRIFFIN_LIM_BLOCK_S` are reconstructed in blocks that
overlap by :data:`GRIFFIN_LIM_OVERLAP_S`; each block starts from the previous block's
phase in the overlap (and from its own vocoder or random phase after it), so both mostly
agree there (correlation ~0.7-0.85 after 32
iterations), and the waveforms are cross-faded over the middle half of the overlap with
:func:`coherent_crossfade`, which keeps the level for partly correlated signals. On a
65 s FluidSynth render: spectral convergence 0.070 vs 0.067 for one call, level within
0.3 dB at the seams. Memory then stays flat apart from the output arrays themselves.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from orchestrion.audio.phase import griffin_lim
from orchestrion.audio.vocoder_phase import vocoder_phase
from orchestrion.errors import ConfigError
from orchestrion.torch_threads import single_threaded

CrossfadeDomain = Literal["power", "magnitude", "log_power"]
CROSSFADE_DOMAINS: tuple[str, ...] = ("power", "magnitude", "log_power")


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


def to_crossfade_domain(magnitude: Tensor, domain: str, gain: float) -> Tensor:
    """Magnitude -> the values cross-faded in `domain` (`gain`: the model's input gain)."""
    if domain == "power":
        return magnitude.square()
    if domain == "magnitude":
        return magnitude
    return torch.log1p((gain * magnitude).square())


def from_crossfade_domain(values: Tensor, domain: str, gain: float) -> Tensor:
    """The inverse of :func:`to_crossfade_domain`, clamped to a valid magnitude."""
    if domain == "power":
        return values.clamp(min=0.0).sqrt()
    if domain == "magnitude":
        return values.clamp(min=0.0)
    return torch.expm1(values).clamp(min=0.0).sqrt() / gain


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


PHASE_INITS = ("vocoder", "random")
"""Initial phases :func:`griffin_lim_blocks` takes (see :func:`orchestrion.audio.phase.griffin_lim`)."""


def check_phase_init(init: str) -> None:
    """Raise ConfigError unless `init` is one of :data:`PHASE_INITS`."""
    if init not in PHASE_INITS:
        raise ConfigError(f"phase_init must be one of {', '.join(PHASE_INITS)}, got {init!r}")


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
    init: str = "random",
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
    init : str
        Initial phase of each block, ``"random"`` or ``"vocoder"`` (see
        :func:`orchestrion.audio.phase.griffin_lim`); a block after the first starts its
        shared frames from the phase reconstructed so far either way.

    Returns
    -------
    np.ndarray, float32, (length,)
    """
    check_phase_init(init)
    n_frames = magnitude.shape[-1]
    if n_frames <= block_frames or overlap_frames < 4:
        wave = griffin_lim(
            magnitude, n_fft, hop_length, n_iter, init=init, length=length, generator=generator
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
        if init == "vocoder":
            phase = vocoder_phase(block, n_fft, hop_length)
        else:
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
    with single_threaded(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="orgen") as pool:
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


def window_batches(plan: WindowPlan, batch: int) -> Iterator[range]:
    """The plan's window indices in runs of `batch` (one generator call each)."""
    for k in range(0, plan.count, batch):
        yield range(k, min(k + batch, plan.count))


__all__ = [
    "CROSSFADE_DOMAINS",
    "PHASE_INITS",
    "CrossfadeDomain",
    "WindowPlan",
    "check_phase_init",
    "coherent_crossfade",
    "from_crossfade_domain",
    "griffin_lim_blocks",
    "in_worker_threads",
    "to_crossfade_domain",
    "window_batches",
]
