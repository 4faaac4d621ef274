"""Pictures people would rather look at than read: spectrograms, learned partial lobes,
error budgets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from orchestrion.files import atomic_output

if TYPE_CHECKING:
    from orchestrion.metrics.budget import ErrorBudget


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write a matplotlib figure as a PNG (atomically: temp file, then rename) and close it."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)
    return Path(path)


def save_spectrogram_png(
    path: str | Path,
    spectrogram_db: np.ndarray,
    sample_rate: int,
    hop_length: int,
    title: str = "",
    floor_db: float = -80.0,
) -> Path:
    """Save a (freq, frames) dB spectrogram as a PNG with time (s) and frequency (Hz) axes."""
    plt = pyplot()
    spec = np.maximum(np.asarray(spectrogram_db, dtype=np.float32), floor_db)
    n_frames = spec.shape[1]
    duration_s = n_frames * hop_length / sample_rate
    fig, ax = plt.subplots(figsize=(min(16, 4 + duration_s / 2), 4.5), dpi=100)
    image = ax.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                      extent=(0.0, duration_s, 0.0, sample_rate / 2), vmin=floor_db, vmax=0.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, label="dB (re. peak)")
    fig.tight_layout()
    return save_figure(fig, path)


def save_lobe_corrections_png(
    path: str | Path,
    corrections_db: dict[str, np.ndarray],
    reach: np.ndarray,
    sample_rate: int,
    limit_db: float | None = None,
) -> Path:
    """One panel per instrument: its learned partial-lobe corrections (dB) by key and frequency.

    `corrections_db` maps a name to a (128 keys, bins) array; only cells where `reach`
    (same shape) is true are drawn, and each panel shows the keys that have a correction.
    The colours span +-`limit_db` (default: the 99th percentile of |correction|, at least 1 dB).
    """
    plt = pyplot()
    names = list(corrections_db)
    if not names:
        raise ValueError("no instrument to draw")
    if limit_db is None:
        drawn = np.concatenate([np.abs(values[reach]) for values in corrections_db.values()])
        limit_db = max(1.0, float(np.percentile(drawn, 99)))
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), dpi=100,
                             squeeze=False, constrained_layout=True)
    image = None
    for axis, name in zip(axes.flat, names):
        values = np.where(reach, corrections_db[name], np.nan)
        keys = np.flatnonzero(np.nan_to_num(np.abs(values)).max(axis=1) > 0)
        low, high = (int(keys.min()), int(keys.max()) + 1) if len(keys) else (0, values.shape[0])
        image = axis.imshow(values[low:high], origin="lower", aspect="auto", cmap="coolwarm",
                            vmin=-limit_db, vmax=limit_db, interpolation="nearest",
                            extent=(0.0, sample_rate / 2, low - 0.5, high - 0.5))
        axis.set_title(name)
        axis.set_xlabel("frequency (Hz)")
        axis.set_ylabel("MIDI key")
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    fig.colorbar(image, ax=axes, label="learned correction (dB)")
    return save_figure(fig, path)


def save_error_budget_png(path: str | Path, budget: ErrorBudget, title: str = "") -> Path:
    """Horizontal bars: the MS-SSIM gained by restoring each region, one colour per group."""
    plt = pyplot()
    regions = list(budget.regions)
    if not regions:
        raise ValueError("the error budget has no regions to draw")
    groups = list(dict.fromkeys(region.group for region in regions))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(regions) + 1.5), dpi=100, constrained_layout=True)
    positions = np.arange(len(regions))[::-1]
    ax.barh(positions, [region.restored - budget.ms_ssim for region in regions],
            color=[colours(groups.index(region.group)) for region in regions])
    ax.set_yticks(positions, [f"{region.group}: {region.name} ({region.share:.0%})" for region in regions])
    ax.set_xlabel(f"MS-SSIM gained by restoring the region (render: {budget.ms_ssim:.4f})")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
