"""Tiny scores and spectrograms shared by the instrument classifier's tests (pitch hint, voices)."""

from __future__ import annotations

import torch

FRAMES = 24


def score_roll(slots: tuple[int, ...], pitches: tuple[int, ...], frames: tuple[slice, ...] | None = None) -> torch.Tensor:
    """(1, 16, 128, FRAMES): slot slots[i] plays pitch pitches[i] at 0.8 over frames[i] (default 4..19)."""
    roll = torch.zeros(1, 16, 128, FRAMES)
    for i, (slot, pitch) in enumerate(zip(slots, pitches, strict=True)):
        roll[0, slot, pitch, frames[i] if frames else slice(4, 20)] = 0.8
    return roll


def noise_spectrogram(seed: int = 0) -> torch.Tensor:
    """(1, 1, 513, FRAMES) log-power of sparse random power (a few loud bins)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.log1p(torch.rand(1, 1, 513, FRAMES, generator=generator) ** 4 * 1e3)
