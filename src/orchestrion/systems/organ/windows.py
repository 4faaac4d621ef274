"""orGAN inference over time: generator windows and their cross-fade, and the worker threads
that run them (step 3 of ``infer.render_score``).

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

Window length (a decision, measured twice). With early render-cpu weights, on 8 validation
pieces (MS-SSIM / MR-STFT / LSD), 2 s windows overlapping by 0.5 s 0.7357 / 1.2347 /
7.70 dB, 4 s 0.7349 / 1.2331 / 7.72 dB, 8 s 0.7349 / 1.2337 / 7.72 dB: no better, so the
training chunk stayed the default. With later weights that had note-age features, the
same 8 pieces: 2 s 0.7722 / 1.1699 / 7.33 dB, 4 s 0.7750 / 1.1638 / 7.30, 8 s 0.7760 /
1.1617 / 7.27, 16 s 0.7768 / 1.1605 / 7.26; but on the next 16 validation pieces 2 s
0.7762 / 1.1784 / 7.38 against 8 s 0.7753 / 1.1839 / 7.37, so over all 24 the two are
level (8 s +0.0006 MS-SSIM, +0.001 MR-STFT). The test pieces, read afterwards, lean the
other way (8 pieces: 2 s 0.8041 / 1.1411 / 6.67, 8 s 0.8000 / 1.1575 / 6.69; 7 of the 8
pieces lower, 041 by 0.014). The differences are small either way and the validation
pieces, where the choice is made, call it level; speed decides: 8 s windows take about
25-28 % less generator time (fewer frames computed twice, fewer and larger calls), so 8 s
is the default. A window's memory grows with its length; ``window_s`` takes any length.
A 0.25 s overlap measured 0.7325 / 1.2376 / 7.73 dB against 0.5 s's 0.7357 (the early weights).

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

Phase reconstruction in blocks and the coherent cross-fade that joins them live in the audio
core (:mod:`orchestrion.audio.blocks`).
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
    "CrossfadeDomain",
    "WindowPlan",
    "from_crossfade_domain",
    "in_worker_threads",
    "to_crossfade_domain",
    "window_batches",
]
