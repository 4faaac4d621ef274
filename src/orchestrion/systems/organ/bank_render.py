"""The note bank alone: a bank render model's output prior with the generator's part removed.

A render model with ``output_prior="bank"`` adds each sounding note's stored log-power
(its slot, key, velocity and age since the onset) to the generator's free spectrogram,
scaled by the generator's gain images (:mod:`~orchestrion.systems.organ.note_bank`). With
the free spectrogram at silence and every gain at 0 dB, what is left is the bank as
stored: a baseline with no network at all, rendered through the same phase recovery.
"""

from __future__ import annotations

import torch
from torch import Tensor

from orchestrion.errors import ConfigError

SILENT_LOG_POWER = 0.0
"""The free spectrogram the bank is added to: silence in the orGAN target, ln(1 + |X|^2) = 0."""


def bank_only_log_power(network, roll: Tensor, onsets: Tensor | None = None,
                        ages: Tensor | None = None) -> Tensor:
    """Log-power (B, 1, n_bins, T) of a roll (B, S, 128, T) drawn by the note bank alone.

    Raises
    ------
    ConfigError
        If the network has no note bank.
    """
    bank = network.note_bank
    if bank is None:
        raise ConfigError("this render model has no note bank (its output prior is not 'bank')")
    batch, n_slots, _, n_frames = roll.shape
    free = torch.full((batch, 1, network.config.n_bins, n_frames), SILENT_LOG_POWER, dtype=roll.dtype)
    gains = torch.zeros(batch, n_slots, network.config.n_bins, n_frames, dtype=roll.dtype)
    return bank(free, gains, roll, network.note_ages_of(roll, onsets, ages))
