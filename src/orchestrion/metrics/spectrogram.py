"""Spectrogram-image metrics and the seed's Table 6.3 row.

Table 6.3 of the seed scores a render model on held-out chunks by six figures: MS-SSIM,
SWD and L1 between real and generated spectrogram images, and the AUC, micro and macro
accuracy of the instrument classifier fed the generated ones. :func:`table63_row`
computes all six from the images and the classifier's outputs; :class:`Table63Row`
prints them as the seed's table does.

Images are compared as given: pass what the seed compares, dB images in [0, 1] (see
:func:`orchestrion.metrics.audio.db_image`), shaped (B, 1, freq, frames), real and fake
paired by index.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from orchestrion.errors import ConfigError, NonFiniteAudioError
from orchestrion.metrics.classifier import instrument_classifier_scores
from orchestrion.metrics.swd import sliced_wasserstein_distance
from orchestrion.nn.msssim import MSSSIM, MSSSIM_WEIGHTS

__all__ = [
    "MS_SSIM_GRID",
    "Table63Row",
    "crop_to_scale_grid",
    "spectrogram_ms_ssim",
    "spectrogram_l1",
    "table63_row",
]

MS_SSIM_GRID = 2 ** (len(MSSSIM_WEIGHTS) - 1)
"""16: MS-SSIM halves an image 4 times, so sides that are multiples of 16 stay even."""


def _as_images(images: Tensor | np.ndarray, what: str) -> Tensor:
    tensor = torch.as_tensor(images.detach() if isinstance(images, Tensor) else np.asarray(images))
    if tensor.ndim != 4 or min(tensor.shape) < 1:
        raise ConfigError(
            f"{what} must be a non-empty batch of images shaped (B, C, H, W), "
            f"got shape {tuple(tensor.shape)}"
        )
    tensor = tensor.to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteAudioError(f"{what} hold NaN or infinite values")
    return tensor


def _paired(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    real = _as_images(real, "the real spectrograms")
    fake = _as_images(fake, "the fake spectrograms")
    if real.shape != fake.shape:
        raise ConfigError(
            "real and fake spectrograms must be paired batches of one shape (B, C, H, W), got "
            f"{tuple(real.shape)} and {tuple(fake.shape)}"
        )
    return real, fake


def crop_to_scale_grid(images: Tensor) -> Tensor:
    """Crop the last two axes to multiples of 16 (axes shorter than 16 are kept whole).

    MS-SSIM implementations disagree on odd sizes between scales: the render protocol's
    reference script (``compare_audio.py``) drops the last row, TensorFlow repeats it,
    pytorch_msssim and :class:`~orchestrion.nn.msssim.MSSSIM` zero-pad both sides (which
    shifts the pooling grid by one pixel). A spectrogram of n_fft // 2 + 1 bins is always
    odd. On sides that are multiples of 16 all of them agree, so the metrics crop first:
    the top (Nyquist) bin and at most 15 trailing frames go. On the chorale this moves
    MS-SSIM to the reference script's value to 1e-4 (uncropped it differs by up to 0.016).

    Parameters
    ----------
    images : Tensor, shape (..., H, W)

    Returns
    -------
    Tensor, shape (..., H', W'), a view: H' = H - H % 16 if H >= 16 else H; likewise W'.
    """
    height, width = images.shape[-2:]
    keep_height = height - height % MS_SSIM_GRID if height >= MS_SSIM_GRID else height
    keep_width = width - width % MS_SSIM_GRID if width >= MS_SSIM_GRID else width
    return images[..., :keep_height, :keep_width]


_MS_SSIM_CACHE: dict[float, MSSSIM] = {}


@torch.inference_mode()
def spectrogram_ms_ssim(
    real: Tensor | np.ndarray, fake: Tensor | np.ndarray, data_range: float = 1.0
) -> Tensor:
    """MS-SSIM of paired spectrogram images, after :func:`crop_to_scale_grid`.

    5 scales, Gaussian 11 / sigma 1.5, K1 0.01, K2 0.03, the seed's weights
    (:class:`orchestrion.nn.msssim.MSSSIM`), computed in float32.

    Parameters
    ----------
    real, fake : array or tensor, shape (B, C, H, W)
        Paired images, e.g. dB images in [0, 1].
    data_range : float
        Span of the pixel values (1.0 for images in [0, 1]).

    Returns
    -------
    Tensor, shape (B,): one value in [0, 1] per pair (mean over channels).
    """
    real, fake = _paired(real, fake)
    if not data_range > 0:
        raise ConfigError(f"MS-SSIM data_range must be positive, got {data_range!r}")
    data_range = float(data_range)
    if data_range not in _MS_SSIM_CACHE:
        _MS_SSIM_CACHE[data_range] = MSSSIM(data_range=data_range, reduction="none")
    metric = _MS_SSIM_CACHE[data_range]
    return metric(crop_to_scale_grid(real), crop_to_scale_grid(fake))


def spectrogram_l1(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> float:
    """Mean absolute difference over all pixels of paired images (the seed's L1 / MAE).

    Parameters
    ----------
    real, fake : array or tensor, shape (B, C, H, W)
        Paired images of one shape, in the images' units (e.g. [0, 1] dB images).

    Returns
    -------
    float, in the images' units; 0 for identical images.
    """
    real, fake = _paired(real, fake)
    return float((real.double() - fake.double()).abs().mean())


@dataclass(frozen=True)
class Table63Row:
    """One row of the seed's Table 6.3.

    Attributes
    ----------
    ms_ssim : float
        Mean MS-SSIM between real and fake images, [0, 1], higher is better.
    swd : float
        Sliced Wasserstein distance (mean over pyramid levels), lower is better.
    l1 : float
        Mean absolute pixel difference, lower is better.
    auc : float
        Instrument classifier's mean per-class ROC AUC on the fakes, higher is better.
    micro_acc : float
        Fraction of (sample, instrument) decisions right.
    macro_acc : float
        Fraction of samples with all 16 instrument decisions right.
    """

    ms_ssim: float
    swd: float
    l1: float
    auc: float
    micro_acc: float
    macro_acc: float

    COLUMNS: ClassVar[tuple[str, ...]] = ("MS-SSIM", "SWD", "L1", "AUC", "microACC", "macroACC")
    """Column headers, as in the seed."""

    def format(self, label: str = "", header: bool = True, digits: int = 4) -> str:
        """The row as aligned text, optionally under a header line.

        Parameters
        ----------
        label : str
            Name of the model (first column); an empty label leaves the column out.
        header : bool
            Put the column names on a line above the figures.
        digits : int
            Decimals per figure.

        Returns
        -------
        str, e.g.::

            model            MS-SSIM       SWD        L1       AUC  microACC  macroACC
            multi-inst-190    0.8730    0.2370    0.0490    0.9960    0.8940    0.9470
        """
        width = max(max(len(name) for name in self.COLUMNS), digits + 3)
        values = [
            "nan".rjust(width) if math.isnan(value) else f"{value:{width}.{digits}f}"
            for value in astuple(self)
        ]
        names = [name.rjust(width) for name in self.COLUMNS]
        label_width = max(len(label), len("model"))
        if label:
            names.insert(0, "model".ljust(label_width))
            values.insert(0, label.ljust(label_width))
        lines = ["  ".join(names)] if header else []
        lines.append("  ".join(values))
        return "\n".join(lines)



def table63_row(
    real_specs: Tensor | np.ndarray,
    fake_specs: Tensor | np.ndarray,
    probabilities: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    data_range: float = 1.0,
    threshold: float = 0.5,
    swd_patches_per_image: int = 128,
    swd_projections: int = 512,
    seed: int = 0,
) -> Table63Row:
    """Compute the six Table 6.3 figures of one model.

    Parameters
    ----------
    real_specs, fake_specs : array or tensor, shape (B, C, H, W)
        Real and generated spectrogram images, paired by index (e.g. dB images in [0, 1]).
    probabilities : array or tensor, shape (N, 16)
        The instrument classifier's sigmoid outputs on the fakes (N is usually B).
    labels : array or tensor, shape (N, 16)
        The instruments each sample's score asks for, multi-hot.
    data_range : float
        Pixel value span for MS-SSIM (1.0 for [0, 1] images).
    threshold : float
        Classifier decision threshold (probability strictly above it = present).
    swd_patches_per_image, swd_projections, seed : int
        SWD settings (see :func:`orchestrion.metrics.swd.sliced_wasserstein_distance`).

    Returns
    -------
    Table63Row
    """
    real, fake = _paired(real_specs, fake_specs)
    classifier = instrument_classifier_scores(probabilities, labels, threshold=threshold)
    swd = sliced_wasserstein_distance(
        real,
        fake,
        patches_per_image=swd_patches_per_image,
        n_projections=swd_projections,
        seed=seed,
    )
    return Table63Row(
        ms_ssim=float(spectrogram_ms_ssim(real, fake, data_range).mean()),
        swd=swd.mean,
        l1=spectrogram_l1(real, fake),
        auc=classifier.auc,
        micro_acc=classifier.micro_accuracy,
        macro_acc=classifier.macro_accuracy,
    )
