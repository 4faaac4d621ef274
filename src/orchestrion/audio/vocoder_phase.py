"""A phase estimate from an STFT magnitude alone, for starting Griffin-Lim.

Phase-vocoder integration with identity phase locking (Laroche and Dolson, "Improved
phase vocoder time-scale modification of audio", IEEE TSAP 1999), read as a phase
retrieval initialiser:

* each frame's magnitude is cut into peak regions: a bin on a rising slope belongs to the
  next peak above it, any other bin to the last peak below it;
* a peak's frequency is refined by a parabola through the log magnitudes of the peak and
  its two neighbours (in bins, within half a bin);
* every bin's phase advances, frame by frame, by its region's peak frequency times the hop
  (trapezoid rule between frames): a steady partial keeps a coherent phase track;
* a bin takes the running phase of its peak bin plus ``pi`` per bin of distance, the phase
  pattern of a sinusoid's main lobe under a window centred in the frame (the DFT's origin
  is the frame's first sample, half a frame before the window's centre).

On the render model's spectrograms this start needs far fewer Griffin-Lim iterations
than a random phase: on 8 validation pieces, 12 or 16 iterations from it measured better
on MR-STFT (1.145 against 1.160) and level on MS-SSIM with 32 from a random phase (on 4
of them, even 64 from a random phase, 1.139, trailed 12 from this one, 1.132;
``benchmarks/phase_start.py``). With the true magnitude of a
FluidSynth render, 8 iterations from it converge as far as 32 from a random phase.

Frames are processed in runs of ``RUN_FRAMES`` so a run's work stays in cache; the running
phase is carried from run to run (kept within one turn, so float32 stays exact enough).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from orchestrion.errors import ConfigError
from orchestrion.torch_threads import single_threaded

__all__ = ["vocoder_phase", "vocoder_phase_frames"]

RUN_FRAMES = 128
"""Frames per run (a few hundred KB of working data)."""
_TINY = 1e-12
"""Added to the magnitude before the log of the peak parabola."""


@torch.no_grad()
def vocoder_phase(magnitude: Tensor, n_fft: int, hop_length: int) -> Tensor:
    """Phases, radians, for a magnitude shaped (..., n_fft // 2 + 1 bins, frames), same shape."""
    magnitude = torch.as_tensor(magnitude)
    if magnitude.ndim < 2 or magnitude.shape[-2] != n_fft // 2 + 1:
        raise ConfigError(
            f"magnitude must be shaped (..., {n_fft // 2 + 1} frequency bins for n_fft "
            f"{n_fft}, frames), got shape {tuple(magnitude.shape)}"
        )
    lead, n_bins, n_frames = magnitude.shape[:-2], magnitude.shape[-2], magnitude.shape[-1]
    frames = magnitude.reshape(-1, n_bins, n_frames).transpose(1, 2).contiguous()
    phase = vocoder_phase_frames(frames, n_fft, hop_length)
    return phase.transpose(1, 2).reshape(*lead, n_bins, n_frames)


@torch.no_grad()
def vocoder_phase_frames(frames: Tensor, n_fft: int, hop_length: int) -> Tensor:
    """:func:`vocoder_phase` for magnitudes laid out (items, frames, bins), contiguous."""
    with single_threaded():  # small ops: torch's thread pool would cost more than it gives
        return _integrate(frames, n_fft, hop_length)


def _integrate(frames: Tensor, n_fft: int, hop_length: int) -> Tensor:
    items, n_frames, n_bins = frames.shape
    phase = torch.empty_like(frames)
    bins = torch.arange(n_bins, device=frames.device)
    radians_per_bin = 2.0 * math.pi * hop_length / n_fft  # phase advance per hop per bin of frequency
    for item in range(items):
        running = torch.zeros(n_bins, dtype=frames.dtype, device=frames.device)
        previous: Tensor | None = None  # peak frequencies of the frame before the run
        for first in range(0, n_frames, RUN_FRAMES):
            run = frames[item, first : first + RUN_FRAMES]
            peak_bin = _peak_bins(run, bins)
            frequency = _peak_frequency(run, peak_bin)
            # trapezoid rule between frames, on frequencies (before wrapping the phase)
            advance = torch.empty_like(frequency)
            torch.add(frequency[1:], frequency[:-1], out=advance[1:])
            advance[0] = 0.0 if previous is None else frequency[0] + previous
            previous = frequency[-1].clone()
            advance.mul_(0.5 * radians_per_bin).remainder_(2.0 * math.pi)
            track = advance.cumsum_(0).add_(running)
            running = track[-1].remainder(2.0 * math.pi)
            offsets = (bins - peak_bin).to(frames.dtype).mul_(math.pi)
            torch.add(torch.gather(track, 1, peak_bin), offsets, out=phase[item, first : first + RUN_FRAMES])
    return phase


def _peak_bins(run: Tensor, bins: Tensor) -> Tensor:
    """For each (frame, bin) of `run` (frames, bins), the bin of the peak of its region."""
    n_bins = run.shape[-1]
    rising = torch.zeros(run.shape, dtype=torch.bool, device=run.device)
    torch.gt(run[:, 1:], run[:, :-1], out=rising[:, :-1])  # the next bin is higher
    is_peak = torch.ones_like(rising)
    torch.ge(run[:, 1:], run[:, :-1], out=is_peak[:, 1:])  # not below the previous bin
    is_peak[:, :-1] &= run[:, :-1] > run[:, 1:]  # and strictly above the next
    last_peak = torch.where(is_peak, bins, 0).cummax(1).values
    next_peak = torch.where(is_peak, bins, n_bins - 1).flip(1).cummin(1).values.flip(1)
    return torch.where(rising, next_peak, last_peak)


def _peak_frequency(run: Tensor, peak_bin: Tensor) -> Tensor:
    """Frequency, in bins, of each (frame, bin)'s peak: a parabola through its log magnitudes."""
    level = torch.log(run + _TINY)
    offset = torch.zeros_like(level)
    below, centre, above = level[:, :-2], level[:, 1:-1], level[:, 2:]
    curvature = (below - 2.0 * centre + above).clamp_(max=-1e-6)  # < 0 at a peak
    torch.div(below - above, curvature, out=offset[:, 1:-1])
    offset.mul_(0.5).clamp_(-0.5, 0.5)
    return torch.gather(offset, 1, peak_bin).add_(peak_bin)
