"""Multi-scale structural similarity (MS-SSIM), differentiable, for training losses and metrics.

MS-SSIM (Wang, Simoncelli & Bovik, "Multiscale structural similarity for image quality
assessment", 2003) compares two images at 5 scales: contrast x structure at every scale,
luminance only at the coarsest, each raised to a fixed weight, multiplied. This module is
the project's one implementation: the render system's training loss and the evaluation
metric both use it.

Conventions (chosen to agree with the common reference, ``pytorch_msssim.ms_ssim``, to
within 1e-4 wherever that reference accepts the input):

* Gaussian window of 11 taps, sigma 1.5, applied separably with 'valid' convolution
  (no padding), so each scale's statistics come only from real pixels.
* ``C1 = (K1 * data_range) ** 2``, ``C2 = (K2 * data_range) ** 2`` with K1 = 0.01,
  K2 = 0.03; weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
* Between scales a 2 x 2 average pool; an odd axis is zero-padded by one on both sides
  first (padded zeros counted), as in the reference.
* Negative contrast-structure or SSIM terms are clipped to 0 before the weights are
  applied, so the result lies in [0, 1]. Their gradient there is 0, never NaN.
  (:class:`MSSSIMLoss` clips at a small positive floor instead; see there.)
* Per image the result is averaged over channels: shape (B,).

Small images (the documented fallback)
--------------------------------------
The reference refuses images whose shorter side is 160 pixels or less, because after the
4 downsamplings the 11-tap window no longer fits. Spectrogram chunks are often that short
along time (2 s at hop 256 is 126 frames), so here, at any scale where an axis is shorter
than the window, the window *along that axis* is cut to the longest odd length that fits
(centred, the same Gaussian samples, renormalised to sum 1). An axis of length 1 gets a
1-tap window (no averaging along it). All 5 scales and their weights are kept, so the
value stays comparable across sizes, and on images large enough for the full window
nothing changes. Any image of at least 1 x 1 pixels is accepted.

Examples
--------
>>> x = torch.rand(2, 1, 192, 192)
>>> MSSSIM(data_range=1.0)(x, x).item()
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.errors import ConfigError

MSSSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents of Wang et al. (2003), finest scale first."""

Reduction = Literal["mean", "none"]

_CLIP_EPS = 1e-12
"""Terms at or below this are treated as 0 (x ** w has an infinite slope at 0)."""


def gaussian_window(
    size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Normalised 1-D Gaussian window, shape (size,), centred on tap ``size // 2``."""
    if int(size) != size or size < 1 or size % 2 == 0:
        raise ConfigError(
            f"the MS-SSIM window size must be a positive odd number of pixels, got {size!r}"
        )
    if not sigma > 0:
        raise ConfigError(f"the MS-SSIM window's sigma must be positive, got {sigma!r}")
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    window = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return (window / window.sum()).to(dtype)


def _fitted_window(window: Tensor, length: int) -> Tensor:
    """`window` (W,) cut to the longest centred odd length <= `length`, renormalised."""
    size = window.shape[0]
    if length >= size:
        return window
    keep = length if length % 2 == 1 else length - 1
    start = size // 2 - keep // 2
    cut = window[start : start + keep]
    return cut / cut.sum()


def _positive_power(value: Tensor, exponent: float, floor: float = 0.0) -> Tensor:
    """``max(value, floor) ** exponent``; floor 0 gives a zero (not NaN) gradient at value <= 0."""
    if floor > 0:
        return value.clamp(min=floor) ** exponent
    positive = value > _CLIP_EPS
    safe = torch.where(positive, value, torch.ones_like(value))
    return torch.where(positive, safe**exponent, torch.zeros_like(value))


class MSSSIM(nn.Module):
    """MS-SSIM between two batches of images, in [0, 1] (1 = identical).

    Parameters
    ----------
    data_range : float
        Span of the pixel values (1.0 for images in [0, 1], 255 for 8-bit).
    reduction : {"mean", "none"}
        ``"mean"``: one scalar over the batch; ``"none"``: one value per image, (B,).
    window_size : int
        Taps of the Gaussian window (odd). Default 11.
    sigma : float
        Standard deviation of the window, pixels. Default 1.5.
    k1, k2 : float
        Stabilising constants. Defaults 0.01 and 0.03.
    weights : sequence of float
        Exponent per scale, finest first; their number is the number of scales.
    term_floor : float
        Each scale's term is clipped to at least this before its exponent. 0 (the
        metric's default) is the standard clip at 0: one non-positive term makes the
        product, and every gradient, 0. :class:`MSSSIMLoss` uses a small positive floor
        so a badly matching scale does not switch off the gradient of the others.

    Shapes
    ------
    forward(x, y): x, y (B, C, H, W), same shape -> () or (B,)
    """

    window: Tensor

    def __init__(
        self,
        data_range: float = 1.0,
        reduction: Reduction = "mean",
        window_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        weights: Sequence[float] = MSSSIM_WEIGHTS,
        term_floor: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= term_floor < 1.0:
            raise ConfigError(f"MS-SSIM term_floor must be in [0, 1), got {term_floor!r}")
        self.term_floor = float(term_floor)
        if not data_range > 0:
            raise ConfigError(
                f"MS-SSIM data_range must be positive (the pixel value span), got {data_range!r}"
            )
        if reduction not in ("mean", "none"):
            raise ConfigError(f"MS-SSIM reduction must be 'mean' or 'none', got {reduction!r}")
        if len(weights) < 1 or any(not w >= 0 for w in weights):
            raise ConfigError(
                f"MS-SSIM needs at least one non-negative scale weight, got {tuple(weights)!r}"
            )
        self.data_range = float(data_range)
        self.reduction = reduction
        self.c1 = (k1 * self.data_range) ** 2
        self.c2 = (k2 * self.data_range) ** 2
        self.weights = tuple(float(w) for w in weights)
        self.register_buffer("window", gaussian_window(window_size, sigma), persistent=False)

    def extra_repr(self) -> str:
        scales, window = len(self.weights), self.window.shape[0]
        return f"data_range={self.data_range}, scales={scales}, window={window}"

    def _blur(self, stack: Tensor) -> Tensor:
        """Separable 'valid' Gaussian blur of every channel of (1, N, H, W), window fitted per axis.

        A grouped (depthwise) convolution in channels-last layout: on CPU it is several
        times faster than a batch of single-channel convolutions, forward and backward.
        """
        window = self.window.to(dtype=stack.dtype)
        n_maps, height, width = stack.shape[1:]
        rows = _fitted_window(window, height)
        cols = _fitted_window(window, width)
        stack = stack.contiguous(memory_format=torch.channels_last)
        stack = F.conv2d(stack, rows.view(1, 1, -1, 1).expand(n_maps, 1, -1, 1), groups=n_maps)
        return F.conv2d(stack, cols.view(1, 1, 1, -1).expand(n_maps, 1, 1, -1), groups=n_maps)

    def _scale_terms(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(ssim, contrast-structure), each (B, C), of one scale; x, y (B, C, H, W)."""
        batch, channels, height, width = x.shape
        stack = torch.cat([x, y, x * x, y * y, x * y], dim=0)
        stack = stack.reshape(1, 5 * batch * channels, height, width)
        blurred = self._blur(stack).contiguous()
        mu_x, mu_y, xx, yy, xy = blurred.reshape(5, batch, channels, *blurred.shape[-2:])
        mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
        var_x, var_y, cov_xy = xx - mu_xx, yy - mu_yy, xy - mu_xy
        contrast_structure = (2.0 * cov_xy + self.c2) / (var_x + var_y + self.c2)
        luminance = (2.0 * mu_xy + self.c1) / (mu_xx + mu_yy + self.c1)
        ssim = (luminance * contrast_structure).flatten(2).mean(-1)
        return ssim, contrast_structure.flatten(2).mean(-1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """MS-SSIM of x against y, both (B, C, H, W); () for "mean", (B,) for "none"."""
        if x.dim() != 4 or x.shape != y.shape:
            raise ConfigError(
                "MS-SSIM compares two image batches of the same shape (B, C, H, W); "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if min(x.shape[-2:]) < 1:
            raise ConfigError(
                f"MS-SSIM needs images of at least 1 x 1 pixels, got {tuple(x.shape[-2:])}"
            )
        terms: list[Tensor] = []
        for scale, weight in enumerate(self.weights):
            ssim, contrast_structure = self._scale_terms(x, y)
            if scale == len(self.weights) - 1:
                terms.append(_positive_power(ssim, weight, self.term_floor))
            else:
                terms.append(_positive_power(contrast_structure, weight, self.term_floor))
                padding = (x.shape[-2] % 2, x.shape[-1] % 2)
                x = F.avg_pool2d(x, kernel_size=2, padding=padding)
                y = F.avg_pool2d(y, kernel_size=2, padding=padding)
        per_image = torch.stack(terms, dim=0).prod(dim=0).mean(dim=1)
        return per_image.mean() if self.reduction == "mean" else per_image


class MSSSIMLoss(MSSSIM):
    """``1 - MS-SSIM``: 0 for identical images. Same parameters and shapes as :class:`MSSSIM`.

    As a training loss it clips each scale's term at ``term_floor = 1e-4`` instead of 0:
    with the metric's clip at 0, one scale that does not match at all (a negative
    contrast-structure term, common early in training at the coarsest scale) zeroes the
    whole product and with it every gradient. The value differs from ``1 - MSSSIM`` only
    when some term is below the floor.
    """

    def __init__(
        self,
        data_range: float = 1.0,
        reduction: Reduction = "mean",
        window_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        weights: Sequence[float] = MSSSIM_WEIGHTS,
        term_floor: float = 1e-4,
    ) -> None:
        super().__init__(data_range, reduction, window_size, sigma, k1, k2, weights, term_floor)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """1 - MS-SSIM(x, y); x, y (B, C, H, W) -> () or (B,)."""
        return 1.0 - super().forward(x, y)


def ms_ssim(x: Tensor, y: Tensor, data_range: float = 1.0, reduction: Reduction = "mean") -> Tensor:
    """Functional MS-SSIM with the standard settings; x, y (B, C, H, W) -> () or (B,)."""
    return MSSSIM(data_range=data_range, reduction=reduction).to(x.device)(x, y)
