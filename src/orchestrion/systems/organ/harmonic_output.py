"""A harmonic output prior for orGAN: the notes' partials drawn at their exact STFT bins.

The free U-Net output must learn to put energy exactly on each partial of each note and
nowhere between them, pixel by pixel. With ``output_prior="harmonic"`` the generator
also gives one *log-gain image per instrument slot*, and the spectrogram adds, for every
sounding note of that slot, all its harmonics below Nyquist drawn with the shape a
stationary sinusoid has in the STFT (the Hann window's main lobe and first side lobes),
scaled by the slot's gain at each bin:

``P_harm(f, t) = sum_s exp(a_s(f, t)) * T_s(f, t)``,
``T_s(f, t) = sum_p [roll_s(p, t) > 0] * lobes(p, f)``,

``S = ln(1 + P_free + P_harm) = S_free + ln(1 + P_harm * exp(-S_free))``,

where ``S_free = ln(1 + P_free)`` is the usual output. The U-Net then only has to say
how loud each slot's partials are around each bin (a smooth spectral envelope over time),
not where the partials lie; the pitch sets that, as the harmonic output did for SING
(``systems/sing/harmonic.py``).

Learned lobes (``learned_partials``)
------------------------------------
A sampler plays one recording per few keys of each instrument, so a partial's level
relative to its neighbours, and the width of its peak (a vibrato smears the k-th partial
over k times the pitch swing), change with the instrument and the key in ways a
convolution over the spectrogram sees only indirectly. With ``learned=True`` every slot
has its own pitch -> bin matrix, ``lobes(p, f) * exp(D_s(p, f))``, where the correction
``D`` (one number per slot, pitch and bin) starts at 0, the analytic lobes, and is
learned only within the lobes' reach: between partials the matrix stays 0, so the
untrained gains there can never leak in, and a model continued from one without learned
lobes renders exactly as before at its first step. Only the cells within reach (half of
the matrix) are stored: ``lobe_corrections`` is (slots, cells), the cells in row-major
order of the (128, F) matrix (:attr:`HarmonicOutput.reach`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from orchestrion.errors import ConfigError
from orchestrion.nn.pitch import pitch_to_hz
from orchestrion.systems.organ.encoding import N_PITCHES, played_pitches, slots_playing

LOBE_REACH_BINS = 4.0
"""Bins either side of a partial that its lobe reaches (the Hann side lobes there are < -50 dB)."""
MAX_LOG_GAIN = 30.0
"""Log-gains are clamped here before ``exp`` (a power of 1e13, far above any real bin)."""


def hann_lobe_power(offset_bins: np.ndarray) -> np.ndarray:
    """Power of a Hann-windowed sinusoid at `offset_bins` from its frequency, 1 at offset 0.

    The Hann window's transform is ``sinc(d) / (1 - d^2)`` (d in bins), 1/2 at |d| = 1.
    """
    d = np.asarray(offset_bins, dtype=np.float64)
    near_one = np.isclose(np.abs(d), 1.0)
    safe = np.where(near_one, 0.0, d)
    amplitude = np.where(near_one, 0.5, np.sinc(safe) / (1.0 - safe**2))
    return amplitude**2


def partial_lobe_templates(
    sample_rate: int, n_fft: int, reach_bins: float = LOBE_REACH_BINS, n_pitches: int = N_PITCHES
) -> Tensor:
    """Pitch -> STFT-bin matrix (n_pitches, n_fft // 2 + 1): every harmonic below Nyquist, as lobes.

    Row p sums, for each harmonic k f0(p) at least `reach_bins` below the Nyquist bin,
    :func:`hann_lobe_power` over the bins within `reach_bins` of it (peak 1 per partial).
    """
    if not reach_bins > 0:
        raise ConfigError(f"a partial's lobe must reach at least part of a bin, got {reach_bins!r}")
    n_bins = n_fft // 2 + 1
    bins = np.arange(n_bins, dtype=np.float64)
    f0 = pitch_to_hz(torch.arange(n_pitches)).numpy()
    templates = np.zeros((n_pitches, n_bins))
    for p in range(n_pitches):
        positions = f0[p] * np.arange(1, int(sample_rate / 2 / f0[p]) + 1) * n_fft / sample_rate
        positions = positions[positions <= n_bins - 1 - reach_bins]
        offsets = bins[None, :] - positions[:, None]
        lobes = np.where(np.abs(offsets) <= reach_bins, hann_lobe_power(offsets), 0.0)
        templates[p] = lobes.sum(axis=0)
    return torch.from_numpy(templates).to(torch.float32)


def gain_channels(
    free: Tensor, log_gains: Tensor, roll: Tensor, gain_slots: Tensor | None, slots: Tensor, what: str
) -> Tensor:
    """Check an output prior's inputs and give the gain image each of `slots` reads.

    Shapes: free (B, 1, F, T), log_gains (B, K, F, T), roll (B, S, 128, T), slots (N,) ->
    (N,); gain image k belongs to slot ``gain_slots[k]`` (default: K = S, one per slot in
    order). Raises ConfigError if a slot in `slots` has none.
    """
    n_gains = roll.shape[1] if gain_slots is None else len(gain_slots)
    expected = (roll.shape[0], n_gains, free.shape[-2], roll.shape[-1])
    if free.dim() != 4 or tuple(log_gains.shape) != expected:
        raise ConfigError(
            f"the {what} needs one gain image per slot, {expected}; "
            f"got {tuple(log_gains.shape)} beside a spectrogram of {tuple(free.shape)}"
        )
    if gain_slots is None:
        return slots
    channel_of_slot = torch.full((roll.shape[1],), -1, dtype=torch.long, device=roll.device)
    channel_of_slot[gain_slots] = torch.arange(n_gains, device=roll.device)
    channels = channel_of_slot[slots]
    if bool((channels < 0).any()):
        raise ConfigError("a slot that sounds has no gain image among gain_slots")
    return channels


class HarmonicOutput(nn.Module):
    """Adds each slot's gain-scaled partial lobes to the free log-power output (module notes).

    Parameters
    ----------
    sample_rate, n_fft : int
        The spectrogram's rate (Hz) and STFT size.

    Shapes
    ------
    forward(free, log_gains, roll[, gain_slots]): (B, 1, F, T), (B, K, F, T), (B, S, 128, T)
    [, (K,)] -> (B, 1, F, T); gain image k belongs to slot ``gain_slots[k]`` (default: K = S,
    one per slot in order).
    """

    lobes: Tensor
    reach: Tensor
    """Flat indices of the (128, F) cells within a lobe's reach (where `lobes` > 0)."""
    lobes_within_reach: Tensor
    """`lobes` at those cells."""

    def __init__(self, sample_rate: int, n_fft: int, n_slots: int = 16, learned: bool = False) -> None:
        super().__init__()
        lobes = partial_lobe_templates(sample_rate, n_fft)
        self.register_buffer("lobes", lobes, persistent=False)
        reach = torch.flatten(lobes).nonzero().flatten()
        self.register_buffer("reach", reach, persistent=False)
        self.register_buffer("lobes_within_reach", torch.flatten(lobes)[reach], persistent=False)
        self.lobe_corrections: nn.Parameter | None = None
        if learned:  # D_s(p, f) of the module notes within reach, 0 = the analytic lobes
            self.lobe_corrections = nn.Parameter(lobes.new_zeros(n_slots, len(self.reach)))

    def on_grid(self, cells: Tensor) -> Tensor:
        """Values of the cells within reach, (rows, cells), on the full grid (rows, 128, F), 0
        elsewhere: e.g. the learned corrections, or their gradient."""
        grid = cells.new_zeros(cells.shape[0], self.lobes.numel()).index_copy(1, self.reach, cells)
        return grid.view(cells.shape[0], *self.lobes.shape)

    def slot_lobes(self, slots: Tensor) -> Tensor:
        """Each given slot's learned pitch -> bin matrix, (N,) -> (N, 128, F)."""
        if self.lobe_corrections is None:
            raise ConfigError("this harmonic output has no learned lobes; the analytic ones are `lobes`")
        corrections = torch.exp(self.lobe_corrections[slots].clamp(max=MAX_LOG_GAIN))
        return self.on_grid(self.lobes_within_reach * corrections)

    def templates(self, roll: Tensor, slots: Tensor | None = None) -> Tensor:
        """Sounding partials on the frequency grid, (..., 128, T) -> (..., F, T).

        With learned lobes the roll is (N, 128, T) and row n is drawn with the lobes of slot
        ``slots[n]``; the analytic lobes are the same for every slot.
        """
        played = played_pitches(roll.amax(dim=-1))  # the others would add exact zeros
        active = (roll[..., played, :] > 0).to(self.lobes.dtype)
        if self.lobe_corrections is None:
            return torch.matmul(self.lobes[played].t(), active)
        if slots is None:
            raise ConfigError("learned lobes differ per slot: give the slot of each roll row")
        return torch.bmm(self.slot_lobes(slots)[:, played].transpose(1, 2), active)

    def forward(
        self, free: Tensor, log_gains: Tensor, roll: Tensor, gain_slots: Tensor | None = None
    ) -> Tensor:
        if free.shape[-2] != self.lobes.shape[1]:
            raise ConfigError(f"the harmonic output draws {self.lobes.shape[1]} bins, not {free.shape[-2]}")
        # only the (item, slot) pairs that play a note: a chunk sounds a few of the 16 slots
        items, slots = slots_playing(roll).nonzero(as_tuple=True)
        channels = gain_channels(free, log_gains, roll, gain_slots, slots, "harmonic output")
        partials = self.templates(roll[items, slots], slots)
        gains = torch.exp(log_gains[items, channels].clamp(max=MAX_LOG_GAIN))
        power = free.new_zeros(free.shape[0], *free.shape[-2:]).index_add(0, items, partials * gains)
        return free + torch.log1p(power.unsqueeze(1) * torch.exp(-free))


__all__ = ["HarmonicOutput", "gain_channels", "hann_lobe_power", "partial_lobe_templates"]
