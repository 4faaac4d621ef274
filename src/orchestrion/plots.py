"""Pictures people would rather look at than read: spectrograms (more plots join later)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrion.files import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_spectrogram_png(
    path: str | Path,
    spectrogram_db: np.ndarray,
    sample_rate: int,
    hop_length: int,
    title: str = "",
    floor_db: float = -80.0,
) -> Path:
    """Save a (freq, frames) dB spectrogram as a PNG with time (s) and frequency (Hz) axes."""
    plt = _pyplot()
    spec = np.maximum(np.asarray(spectrogram_db, dtype=np.float32), floor_db)
    n_bins, n_frames = spec.shape
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
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
