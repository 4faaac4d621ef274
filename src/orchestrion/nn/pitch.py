"""MIDI pitch to frequency, in torch: shared by the systems that place partials at a pitch."""

from __future__ import annotations

import torch
from torch import Tensor

A4_HZ = 440.0


def pitch_to_hz(pitch: Tensor | float) -> Tensor:
    """Equal-tempered frequency in Hz (float64) of MIDI pitch(es), A4 (69) = 440 Hz."""
    return A4_HZ * 2.0 ** ((torch.as_tensor(pitch, dtype=torch.float64) - 69.0) / 12.0)
