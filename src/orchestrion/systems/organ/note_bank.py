"""A note-bank output prior for orGAN: each (instrument slot, key)'s own log-power over note age.

A sampler such as FluidSynth plays one recording per key range, so a note's spectrogram is a
fixed function of its instrument, key, velocity and the time since its onset: the sample's
vibrato, the balance and wobble of its partials, its noise and its aliasing included. A
model that knows only where each partial lies (the harmonic prior,
:mod:`~orchestrion.systems.organ.harmonic_output`) draws a note's stationary spectrum at best.
On held-out pieces, the exact stationary spectrum of every note under its true loudness
envelope scores MS-SSIM 0.85 on the protocol's dB image. The mean log-power of each
(instrument, key) over the first 1.5 s of its notes, estimated from the training stems with
power floored at -100 dB, scores 0.93 with no network at all (the render-cpu history;
`benchmarks/render_ceiling.py`). The estimate here floors power at ``bank_floor_db``.

With ``output_prior="bank"``, every sounding note of slot s and key p at age a (frames since
its onset, the last stored age for older notes) adds

``P(f, t) = exp(B_k(a, f) + c_s ln(velocity / 127) + g_s(f, t))``,   k = the key's entry,

where ``g_s`` is the generator's log-gain image of the slot (as for the harmonic prior; 0
renders the bank as stored) and ``c_s`` is a learned per-slot velocity slope (it starts at
4, power going as velocity to the fourth). The spectrogram is then
``S = S_free + ln(1 + P exp(-S_free))``, as in the harmonic prior. Each entry is stored as
its mean spectrum plus `rank` (spectrum, course over age) pairs,
``B_k(a, f) = m_k(f) + sum_r U_k(f, r) V_k(a, r)``. All of it is learned from its estimate on.
A key the training data never played reads the nearest key of its slot that it did, shifted
along frequency by their pitch ratio.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import track
from torch import Tensor, nn

from orchestrion.audio.spectral import Stft
from orchestrion.errors import ConfigError
from orchestrion.systems.organ.encoding import N_PITCHES, note_ages, slots_playing
from orchestrion.systems.organ.harmonic_output import gain_channels

MAX_LOG_POWER = 30.0
"""Log-powers are clamped here before ``exp`` (far above any real bin)."""
VELOCITY_SLOPE = 4.0
"""Initial velocity slope: power as (velocity / 127) ** 4, FluidSynth's default curve, near enough."""


@dataclass(frozen=True)
class BankEstimate:
    """A note bank estimated from stems: the stored keys and their factors (float32)."""

    keys: list[tuple[int, int]]
    """(slot, pitch) of each entry, sorted."""
    mean: Tensor
    """(K, F): each entry's mean log-power spectrum."""
    spectra: Tensor
    """(K, F, rank)."""
    courses: Tensor
    """(K, A, rank)."""
    notes: Tensor
    """(K,) how many notes each entry was estimated from."""


def estimate_note_bank(pieces: Sequence, config, progress: bool = False) -> BankEstimate:
    """Mean log-power over note age of every (slot, key) in `pieces` (``PieceTensors``),
    factored to ``config.bank_rank``. Each part's stem is one instrument playing one note at
    a time (a URMP part), so each sounding cell of its roll is one note's."""
    frames = config.bank_frames
    stft = Stft(config.n_fft, config.hop_length)
    floor = 10.0 ** (config.bank_floor_db / 10.0)
    sums: dict[tuple[int, int], Tensor] = defaultdict(lambda: torch.zeros(config.n_bins, frames, dtype=torch.float64))
    counts: dict[tuple[int, int], Tensor] = defaultdict(lambda: torch.zeros(frames, dtype=torch.float64))
    notes: dict[tuple[int, int], int] = defaultdict(int)
    for piece in track(pieces, description="estimating the note bank", disable=not progress):
        spectra = stft(torch.from_numpy(piece.stems) * config.input_gain)
        power = spectra.real.square() + spectra.imag.square()
        log_power = torch.log(power.clamp(min=floor)).to(torch.float64)  # (parts, F, T)
        for k, slot in enumerate(piece.slots):
            roll = torch.from_numpy(piece.rolls[k].astype(np.float32))
            onsets = torch.from_numpy(piece.onsets[k])
            ages = note_ages(roll, onsets)
            n_frames = min(roll.shape[-1], log_power.shape[-1])
            pitch, frame = ((roll[:, :n_frames] > 0) & (ages[:, :n_frames] < frames)).nonzero(as_tuple=True)
            for p in pitch.unique().tolist():
                at = frame[pitch == p]
                age = ages[p, at].long()
                level = log_power[k][:, at] - VELOCITY_SLOPE * torch.log(roll[p, at].double())
                sums[slot, p].index_add_(1, age, level)
                counts[slot, p].index_add_(0, age, torch.ones_like(age, dtype=torch.float64))
                notes[slot, p] += int((onsets[p, at] > 0).sum())
    if not sums:
        raise ConfigError("the note bank has nothing to learn from: no training part plays a note")
    keys = sorted(sums)
    table = torch.stack([_held(sums[key], counts[key]) for key in keys])  # (K, F, A)
    mean, spectra, courses = factor_table(table, config.bank_rank)
    return BankEstimate(keys, mean, spectra, courses, torch.tensor([notes[key] for key in keys]))


def bank_table(mean: Tensor, spectra: Tensor, courses: Tensor) -> Tensor:
    """The full log-power table (K, F, A) of factors (K, F), (K, F, r), (K, A, r), float64."""
    return mean.double()[:, :, None] + torch.einsum("kfr,kar->kfa", spectra.double(), courses.double())


def factor_table(table: Tensor, rank: int) -> tuple[Tensor, Tensor, Tensor]:
    """A table (K, F, A) as each entry's mean over age plus its first `rank` singular pairs
    (float32; pairs beyond the table's own rank are zero)."""
    mean = table.mean(dim=2, keepdim=True)
    u, s, vt = torch.linalg.svd(table - mean, full_matrices=False)
    r = min(rank, s.shape[1])
    spectra = table.new_zeros(table.shape[0], table.shape[1], rank)
    courses = table.new_zeros(table.shape[0], table.shape[2], rank)
    spectra[:, :, :r] = u[:, :, :r] * s[:, None, :r]
    courses[:, :, :r] = vt[:, :r].transpose(1, 2)
    return mean[:, :, 0].float(), spectra.float(), courses.float()


def shift_along_frequency(rows: Tensor, ratio: Tensor, beyond: float | None = None) -> Tensor:
    """Rows (N, F) moved along frequency by `ratio` (N,), or one ratio (1,) for every row:
    bin f reads bin ``f / ratio``,
    linearly interpolated. A bin that reads past the last one reads the last one, or
    `beyond` when given."""
    n_bins = rows.shape[1]
    position = (torch.arange(n_bins, dtype=rows.dtype, device=rows.device)[None] / ratio[:, None]).expand_as(rows)
    low = position.floor().clamp(max=n_bins - 2).long()
    weight = (position - low).clamp(max=1.0)
    shifted = rows.gather(1, low) * (1 - weight) + rows.gather(1, low + 1) * weight
    if beyond is not None:
        shifted = shifted.masked_fill(position > n_bins - 1, beyond)
    return shifted


def _held(sums: Tensor, counts: Tensor) -> Tensor:
    """Mean over the notes seen at each age; an age no note reached holds the last one seen."""
    seen = counts > 0
    index = torch.where(seen, torch.arange(len(counts)), 0).cummax(dim=0).values
    first = int(seen.nonzero()[0])
    index[:first] = first  # before the first age seen: the first
    return sums[:, index] / counts[index]


class NoteBank(nn.Module):
    """Adds each sounding note's stored log-power over its age to the free output (module notes).

    Parameters
    ----------
    n_slots, n_bins : int
        Instrument slots and spectrogram bins.
    n_keys, frames, rank : int
        Stored entries, note ages per entry, factor pairs per entry.

    Shapes
    ------
    forward(free, log_gains, roll, ages[, gain_slots]): (B, 1, F, T), (B, K, F, T),
    (B, S, 128, T), (B, S, 128, T) [, (K,)] -> (B, 1, F, T).
    """

    entry: Tensor
    """(S, 128) long: the entry each (slot, key) reads, -1 if its slot has none."""
    entry_pitch: Tensor
    """(S, 128) long: the key that entry was estimated on (its own key when stored)."""

    def __init__(self, n_slots: int, n_bins: int, n_keys: int, frames: int, rank: int) -> None:
        super().__init__()
        if n_keys < 1:
            raise ConfigError("a note bank needs at least one key: train the model to estimate it")
        self.frames = int(frames)
        self.register_buffer("entry", torch.full((n_slots, N_PITCHES), -1, dtype=torch.long))
        self.register_buffer("entry_pitch", torch.full((n_slots, N_PITCHES), -1, dtype=torch.long))
        self.mean = nn.Parameter(torch.zeros(n_keys, n_bins))
        self.spectra = nn.Parameter(torch.zeros(n_keys, n_bins, rank))
        self.courses = nn.Parameter(torch.zeros(n_keys, frames, rank))
        self.velocity_slope = nn.Parameter(torch.full((n_slots,), VELOCITY_SLOPE))

    @torch.no_grad()
    def load_estimate(self, estimate: BankEstimate) -> None:
        """Take an estimate's entries and map every key of a slot to its nearest stored key."""
        if estimate.mean.shape != self.mean.shape or estimate.courses.shape != self.courses.shape \
                or estimate.spectra.shape != self.spectra.shape:
            raise ConfigError(f"a note bank of {tuple(estimate.mean.shape)} entries does not fit one of "
                              f"{tuple(self.mean.shape)}")
        self.mean.copy_(estimate.mean)
        self.spectra.copy_(estimate.spectra)
        self.courses.copy_(estimate.courses)
        self.entry.fill_(-1)
        self.entry_pitch.fill_(-1)
        pitches = torch.arange(N_PITCHES)
        for slot in sorted({s for s, _ in estimate.keys}):
            stored = torch.tensor([i for i, (s, _) in enumerate(estimate.keys) if s == slot])
            stored_pitch = torch.tensor([estimate.keys[i][1] for i in stored.tolist()])
            nearest = (pitches[:, None] - stored_pitch[None]).abs().argmin(dim=1)
            self.entry[slot] = stored[nearest]
            self.entry_pitch[slot] = stored_pitch[nearest]

    def stored_keys(self) -> int:
        """How many (slot, key) pairs read their own entry."""
        return int((self.entry_pitch == torch.arange(N_PITCHES)).sum())

    @torch.no_grad()
    def refloor(self, before: BankEstimate, after: BankEstimate) -> None:
        """Move the bank by what another estimate floor changes: its table plus
        ``after - before`` (estimates of the same keys from the same data at the old and the
        new ``bank_floor_db``), refactored to its rank. What training learned above both
        floors stays; the cells the old floor held get the new floor's estimate."""
        if before.keys != after.keys or len(before.keys) != self.mean.shape[0]:
            raise ConfigError(f"the note bank stores {self.mean.shape[0]} keys, but the data gives "
                              f"{len(after.keys)}: re-flooring needs the data it was estimated on")
        table = bank_table(self.mean, self.spectra, self.courses)
        table += bank_table(after.mean, after.spectra, after.courses)
        table -= bank_table(before.mean, before.spectra, before.courses)
        for parameter, value in zip((self.mean, self.spectra, self.courses),
                                    factor_table(table, self.spectra.shape[2]), strict=True):
            parameter.copy_(value)

    def log_power(self, slots: Tensor, pitches: Tensor, ages: Tensor) -> Tensor:
        """Stored log-power of notes (slot, pitch, age in frames), (M,) each -> (M, F); a key
        read from another key's entry is shifted along frequency by their pitch ratio."""
        entries = self.entry[slots, pitches]
        age = ages.clamp(min=0, max=self.frames - 1).long()
        spectra = self.mean[entries] + torch.einsum("mfr,mr->mf", self.spectra[entries], self.courses[entries, age])
        source = self.entry_pitch[slots, pitches]
        moved = (source != pitches).nonzero().flatten()
        if moved.numel():
            ratio = torch.pow(2.0, (pitches[moved] - source[moved]).to(spectra.dtype) / 12.0)
            spectra = spectra.index_copy(0, moved, shift_along_frequency(spectra[moved], ratio))
        return spectra

    def forward(
        self, free: Tensor, log_gains: Tensor, roll: Tensor, ages: Tensor, gain_slots: Tensor | None = None
    ) -> Tensor:
        if free.shape[-2] != self.mean.shape[1]:
            raise ConfigError(f"the note bank draws {self.mean.shape[1]} bins, not {free.shape[-2]}")
        if ages.shape != roll.shape:
            raise ConfigError(f"note ages {tuple(ages.shape)} and pianoroll {tuple(roll.shape)} differ")
        items, slots = slots_playing(roll).nonzero(as_tuple=True)
        pair_channels = gain_channels(free, log_gains, roll, gain_slots, slots, "note bank")
        lanes = roll[items, slots]  # (N, 128, T): only the (item, slot) pairs that play
        lane, pitch, frame = (lanes > 0).nonzero(as_tuple=True)
        stored = self.entry[slots[lane], pitch] >= 0  # a slot the bank never learned adds nothing
        lane, pitch, frame = lane[stored], pitch[stored], frame[stored]
        item, slot, channel = items[lane], slots[lane], pair_channels[lane]
        level = self.log_power(slot, pitch, ages[item, slot, pitch, frame])
        level = level + (self.velocity_slope[slot] * torch.log(lanes[lane, pitch, frame]))[:, None]
        level = level + log_gains[item, channel, :, frame]
        power = torch.exp(level.clamp(max=MAX_LOG_POWER))  # (M, F)
        n_frames = roll.shape[-1]
        total = power.new_zeros(roll.shape[0] * n_frames, power.shape[1])
        total = total.index_add(0, item * n_frames + frame, power)
        total = total.view(roll.shape[0], n_frames, -1).transpose(1, 2).unsqueeze(1)
        return free + torch.log1p(total * torch.exp(-free))


__all__ = ["BankEstimate", "NoteBank", "bank_table", "estimate_note_bank", "factor_table", "shift_along_frequency"]
