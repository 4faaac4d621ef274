"""Where a render's MS-SSIM is lost: the protocol's MS-SSIM with one region of the
candidate's dB image replaced by the reference's.

MS-SSIM does not add up over pixels, so a render's deficit ``1 - MS-SSIM`` cannot be split
exactly. This module asks the counterfactual instead: had the render been right in this
region (and as it is elsewhere), what would it score? The rise over the actual score is
the region's *gain*. Regions come in groups that each cover every cell once:

* ``level``: by the reference's level, dB re its peak (below -60, -60 to -40, -40 to -20,
  above -20). Cells quieter than -80 dB are in the lowest band.
* ``band``: by frequency (0-0.5, 0.5-1, 1-2, 2-4, 4-8 kHz).
* ``partials``: cells on a partial of the reference (a maximum along frequency within
  ±2 bins and above -48 dB) against the rest.
* ``time`` (with note onsets given): the frames from just before each note's start to
  96 ms after it, against the rest.

Gains within a group need not sum to the deficit; a large gain says the region holds
much of what the render gets wrong, in the protocol's own terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from torch import Tensor

from orchestrion.errors import ConfigError
from orchestrion.metrics.audio import (
    DB_IMAGE_HOP_LENGTH,
    DB_IMAGE_N_FFT,
    DB_IMAGE_RANGE_DB,
    PROTOCOL_SAMPLE_RATE,
    protocol_pair,
)
from orchestrion.metrics.spectrogram import spectrogram_ms_ssim

LEVEL_EDGES_DB = (-60.0, -40.0, -20.0)
"""Edges of the level regions, dB re the reference's peak."""
BAND_EDGES_HZ = (500.0, 1000.0, 2000.0, 4000.0)
"""Edges of the frequency regions, Hz (the last region runs to 8 kHz)."""
PARTIAL_FLOOR_DB = -48.0
"""A cell counts as on a partial only above this level (dB re the reference's peak)."""
PARTIAL_HALF_WIDTH_BINS = 2
"""A partial's cell is a maximum of the reference along frequency within this many bins."""
ONSET_SPAN_S = 0.096
"""How long after each note's start its frames count as its onset."""
_BATCH = 4
"""Restored images scored per MS-SSIM call (bounds the memory of long pieces)."""


@dataclass(frozen=True)
class BudgetRegion:
    """One region of the dB image: its group, name, share of cells, MS-SSIM when restored."""

    group: str
    name: str
    share: float
    restored: float


@dataclass(frozen=True)
class ErrorBudget:
    """A render's MS-SSIM and, per region, the MS-SSIM with that region restored."""

    ms_ssim: float
    regions: tuple[BudgetRegion, ...]

    def gain(self, name: str) -> float:
        """MS-SSIM gained by restoring the region called `name`."""
        for region in self.regions:
            if region.name == name:
                return region.restored - self.ms_ssim
        raise KeyError(name)

    def format(self) -> str:
        """A table: group, region, share of cells, MS-SSIM restored, gain."""
        width = max(len(region.name) for region in self.regions)
        lines = [
            (f"MS-SSIM {self.ms_ssim:.4f}; with one region of the render's dB image replaced "
             "by the reference's:"),
            f"  {'group':9}{'region'.ljust(width)}  {'cells':>6}  {'MS-SSIM':>8}  {'gain':>7}",
        ]
        for region in self.regions:
            lines.append(
                f"  {region.group:9}{region.name.ljust(width)}  {region.share:6.1%}  "
                f"{region.restored:8.4f}  {region.restored - self.ms_ssim:+7.4f}"
            )
        return "\n".join(lines)


def mean_budget(budgets: Sequence[ErrorBudget]) -> ErrorBudget:
    """The mean over pieces, region by region (the pieces must have the same regions)."""
    if not budgets:
        raise ConfigError("no error budgets to average")
    names = [(region.group, region.name) for region in budgets[0].regions]
    if any([(r.group, r.name) for r in budget.regions] != names for budget in budgets):
        raise ConfigError("error budgets with different regions cannot be averaged")
    regions = tuple(
        BudgetRegion(
            group,
            name,
            float(np.mean([budget.regions[i].share for budget in budgets])),
            float(np.mean([budget.regions[i].restored for budget in budgets])),
        )
        for i, (group, name) in enumerate(names)
    )
    return ErrorBudget(float(np.mean([budget.ms_ssim for budget in budgets])), regions)


def _level_regions(reference: Tensor) -> list[tuple[str, str, Tensor]]:
    level_db = (reference - 1.0) * DB_IMAGE_RANGE_DB
    edges = [-np.inf, *LEVEL_EDGES_DB, np.inf]
    names = [f"below {LEVEL_EDGES_DB[0]:.0f} dB"]
    names += [f"{lo:.0f} to {hi:.0f} dB" for lo, hi in pairwise(LEVEL_EDGES_DB)]
    names += [f"above {LEVEL_EDGES_DB[-1]:.0f} dB"]
    return [
        ("level", name, (level_db >= lo) & (level_db < hi))
        for name, (lo, hi) in zip(names, pairwise(edges), strict=True)
    ]


def _band_regions(reference: Tensor) -> list[tuple[str, str, Tensor]]:
    hz_per_bin = PROTOCOL_SAMPLE_RATE / DB_IMAGE_N_FFT
    bin_hz = torch.arange(reference.shape[0], dtype=torch.float64)[:, None] * hz_per_bin
    edges = [0.0, *BAND_EDGES_HZ, np.inf]
    regions = []
    for lo, hi in pairwise(edges):
        top = PROTOCOL_SAMPLE_RATE / 2 if hi == np.inf else hi
        name = f"{lo / 1000:g}-{top / 1000:g} kHz"
        regions.append(("band", name, ((bin_hz >= lo) & (bin_hz < hi)).expand_as(reference)))
    return regions


def _partial_regions(reference: Tensor) -> list[tuple[str, str, Tensor]]:
    size = 2 * PARTIAL_HALF_WIDTH_BINS + 1
    along_frequency = reference.T[None]  # (1, frames, bins): pool over bins
    local_max = torch.nn.functional.max_pool1d(
        along_frequency, size, stride=1, padding=PARTIAL_HALF_WIDTH_BINS
    )[0].T
    floor = 1.0 + PARTIAL_FLOOR_DB / DB_IMAGE_RANGE_DB
    on_partial = (reference >= local_max) & (reference > floor)
    return [("partials", "on partials", on_partial), ("partials", "between partials", ~on_partial)]


def _time_regions(reference: Tensor, onsets_s: Sequence[float]) -> list[tuple[str, str, Tensor]]:
    n_frames = reference.shape[1]
    frame_rate = PROTOCOL_SAMPLE_RATE / DB_IMAGE_HOP_LENGTH
    span = max(1, round(ONSET_SPAN_S * frame_rate)) + 1
    onset_frames = torch.zeros(n_frames, dtype=torch.bool)
    for start in onsets_s:
        first = max(0, math.floor(float(start) * frame_rate) - 1)  # the centred frame before it too
        if first < n_frames:
            onset_frames[first : first + span] = True
    mask = onset_frames[None].expand_as(reference)
    return [("time", f"first {ONSET_SPAN_S * 1000:.0f} ms of notes", mask), ("time", "rest", ~mask)]


@torch.inference_mode()
def image_error_budget(
    reference: Tensor, candidate: Tensor, onsets_s: Sequence[float] | None = None
) -> ErrorBudget:
    """Error budget of two protocol dB images (float (bins, frames) in [0, 1], see module).

    `onsets_s`, note start times in seconds, adds the ``time`` group.
    """
    if reference.ndim != 2 or reference.shape != candidate.shape:
        raise ConfigError(
            "the error budget needs two dB images of one shape (bins, frames), got "
            f"{tuple(reference.shape)} and {tuple(candidate.shape)}"
        )
    regions = _level_regions(reference) + _band_regions(reference) + _partial_regions(reference)
    if onsets_s is not None:
        regions += _time_regions(reference, onsets_s)
    real = reference[None, None].float()
    scores = [float(spectrogram_ms_ssim(real, candidate[None, None].float())[0])]
    for start in range(0, len(regions), _BATCH):
        fakes = torch.stack(
            [torch.where(mask, reference, candidate) for _, _, mask in regions[start : start + _BATCH]]
        )[:, None].float()
        scores += spectrogram_ms_ssim(real.expand_as(fakes), fakes).tolist()
    return ErrorBudget(
        scores[0],
        tuple(
            BudgetRegion(group, name, float(mask.double().mean()), score)
            for (group, name, mask), score in zip(regions, scores[1:], strict=True)
        ),
    )


def error_budget(
    reference: Tensor | np.ndarray,
    candidate: Tensor | np.ndarray,
    sample_rate: int,
    candidate_sample_rate: int | None = None,
    onsets_s: Sequence[float] | None = None,
) -> ErrorBudget:
    """Error budget of a candidate render against its reference, on the protocol's images.

    The audio is prepared as :func:`~orchestrion.metrics.audio.compare_audio` prepares it
    (mono, 16 kHz, trimmed, RMS matched), so `ErrorBudget.ms_ssim` is its MS-SSIM.
    """
    pair = protocol_pair(reference, candidate, sample_rate, candidate_sample_rate)
    return image_error_budget(*pair.images, onsets_s=onsets_s)


__all__ = [
    "BudgetRegion",
    "ErrorBudget",
    "error_budget",
    "image_error_budget",
    "mean_budget",
]
