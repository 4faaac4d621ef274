"""Sliced Wasserstein distance (SWD) between two sets of images, ProGAN style.

The seed's SWD column (Table 6.3) follows Karras et al., "Progressive Growing of GANs
for Improved Quality, Stability, and Variation" (ICLR 2018), Sec. 5 / App. D, which
compares the distributions of local patches of real and generated images at several
scales:

1. **Laplacian pyramid** (Burt & Adelson 1983) of every image: the Gaussian pyramid is
   built with the 5 x 5 binomial kernel ``outer(b, b)``, ``b = (1, 4, 6, 4, 1) / 16``,
   mirror ("reflect") padding, then every second row and column (a level of size n
   becomes ceil(n / 2)). Level i of the Laplacian pyramid is Gaussian level i minus
   Gaussian level i + 1 expanded back (zeros inserted, the same kernel x 4, cropped);
   the last level is the coarsest Gaussian level itself. Levels are added while the
   next one's shorter side stays >= `min_size` (16): a 1024 x 1024 image gives 7 levels
   (1024 ... 16), a 513 x 376 dB image 5 (513 x 376 ... 33 x 24).
2. **Descriptors**: from every image and level, `patches_per_image` (128) patches of
   `patch_size` x `patch_size` (7 x 7) pixels at uniformly random positions (each set
   and each level drawn independently), flattened to vectors of ``C * 49`` values.
3. **Normalisation**: each set's descriptors at a level are standardised per channel
   with that set's own mean and standard deviation over all its descriptors and
   pixels. The SWD therefore ignores a global offset or gain of a level's values; it
   measures the shape of the patch distribution.
4. **SWD per level**: `n_projections` (512 = ProGAN's 4 repeats x 128) random
   directions, uniform on the unit sphere; both sets are projected on every direction,
   the projections sorted, and the SWD is the mean absolute difference of the sorted
   projections over descriptors and directions (the 1-D Wasserstein-1 distance
   averaged over directions, as in ProGAN's code; the seed's Definition 50 writes the
   squared form, its numbers come from this procedure).
5. Reported per level (finest first) and as the mean over levels.

Values are unscaled (ProGAN's tables print them x 10^3). Lower is better; two sets of
the same images give a small positive value from the random sampling alone (the noise
floor), shrinking with more patches. Everything random is drawn from a
``torch.Generator`` seeded with `seed`, so results are reproducible.

The seed zero-pads its 1025 x 935 spectrograms to 1024 x 1024 (dropping the top bin);
here any image size works, so pass the images as they are (e.g. the dB images of
:func:`orchestrion.metrics.audio.db_image`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from orchestrion.errors import ConfigError, NonFiniteAudioError

__all__ = [
    "SwdResult",
    "expand_pyramid_level",
    "laplacian_pyramid",
    "sliced_wasserstein",
    "sliced_wasserstein_distance",
]

_BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def _binomial_kernel(dtype: torch.dtype, gain: float = 1.0) -> Tensor:
    """The 1-D 5-tap binomial kernel (sums to `gain`), shape (5,)."""
    kernel = torch.tensor(_BINOMIAL_5, dtype=dtype)
    return kernel * (gain / kernel.sum())


def _separable_blur(images: Tensor, gain: float = 1.0) -> Tensor:
    """Blur (B, C, H, W) per channel with outer(b, b) * gain**2, mirror padding, same size."""
    channels = images.shape[1]
    kernel = _binomial_kernel(images.dtype, gain)
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)


def _pyramid_down(images: Tensor) -> Tensor:
    """Gaussian pyramid step: blur, keep even rows/columns; (H, W) -> (ceil(H/2), ceil(W/2))."""
    return _separable_blur(images)[..., ::2, ::2]


def expand_pyramid_level(images: Tensor, size: tuple[int, int]) -> Tensor:
    """The pyramid's expand step: insert zeros, blur with the kernel x 4, crop to `size`.

    Parameters
    ----------
    images : Tensor, shape (B, C, h, w)
        A pyramid level.
    size : (int, int)
        (H, W) of the next finer level, at most (2h, 2w).

    Returns
    -------
    Tensor, shape (B, C, H, W). Level i of :func:`laplacian_pyramid` plus the expanded
    (rebuilt) level i + 1 gives back Gaussian level i, down to the input image.
    """
    batch, channels, height, width = images.shape
    upsampled = images.new_zeros(batch, channels, 2 * height, 2 * width)
    upsampled[..., ::2, ::2] = images
    return _separable_blur(upsampled, gain=2.0)[..., : size[0], : size[1]]


def _check_images(images: Tensor, what: str) -> Tensor:
    images = torch.as_tensor(images)
    if images.ndim != 4 or min(images.shape) < 1:
        raise ConfigError(
            f"{what} must be a non-empty batch of images shaped (B, C, H, W), "
            f"got shape {tuple(images.shape)}"
        )
    images = images.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(images).all()):
        raise NonFiniteAudioError(f"{what} hold NaN or infinite values")
    return images


def laplacian_pyramid(images: Tensor, min_size: int = 16) -> list[Tensor]:
    """Laplacian pyramid of a batch of images, finest level first.

    Parameters
    ----------
    images : Tensor, shape (B, C, H, W)
        Any real values (e.g. dB images in [0, 1]); H and W at least 3.
    min_size : int
        Levels are added while the next level's shorter side is at least this many
        pixels (default 16, ProGAN's coarsest resolution).

    Returns
    -------
    list of Tensor, float64
        Level i has shape (B, C, H_i, W_i) with H_0 = H and H_{i+1} = ceil(H_i / 2).
        Adding every level back up (coarsest first, expanding each time) gives the input.
    """
    images = _check_images(images, "the images")
    if not isinstance(min_size, int) or min_size < 3:
        raise ConfigError(
            f"the pyramid's min_size must be an integer of at least 3 pixels, got {min_size!r}"
        )
    if min(images.shape[-2:]) < 3:
        raise ConfigError(
            "a Laplacian pyramid needs images of at least 3 x 3 pixels, "
            f"got {tuple(images.shape[-2:])}"
        )
    gaussian = [images]
    while min((side + 1) // 2 for side in gaussian[-1].shape[-2:]) >= min_size:
        gaussian.append(_pyramid_down(gaussian[-1]))
    levels = [
        fine - expand_pyramid_level(coarse, (fine.shape[-2], fine.shape[-1]))
        for fine, coarse in zip(gaussian[:-1], gaussian[1:])
    ]
    levels.append(gaussian[-1])
    return levels


def _sample_descriptors(
    level: Tensor, patches_per_image: int, patch_size: int, generator: torch.Generator
) -> Tensor:
    """Random patches of one pyramid level, per-channel standardised: (B * P, C * s * s)."""
    batch, channels, height, width = level.shape
    shape = (batch, patches_per_image, 1, 1)
    top = torch.randint(0, height - patch_size + 1, shape, generator=generator)
    left = torch.randint(0, width - patch_size + 1, shape, generator=generator)
    offsets = torch.arange(patch_size)
    rows = top + offsets.view(1, 1, -1, 1)
    cols = left + offsets.view(1, 1, 1, -1)
    image_index = torch.arange(batch).view(-1, 1, 1, 1)
    # (B, H, W, C)[b, rows, cols] -> (B, P, s, s, C)
    patches = level.permute(0, 2, 3, 1)[image_index, rows, cols]
    patches = patches.reshape(-1, patch_size, patch_size, channels)
    mean = patches.mean(dim=(0, 1, 2), keepdim=True)
    std = patches.std(dim=(0, 1, 2), keepdim=True, correction=0)
    patches = (patches - mean) / std.clamp(min=1e-12)
    return patches.reshape(patches.shape[0], -1)


def sliced_wasserstein(
    points_a: Tensor,
    points_b: Tensor,
    n_projections: int = 512,
    generator: torch.Generator | None = None,
) -> float:
    """Sliced Wasserstein-1 distance between two equally large point sets.

    ``mean over directions theta of mean_i |sort(A theta)_i - sort(B theta)_i|`` with
    `n_projections` directions drawn uniformly on the unit sphere.

    Parameters
    ----------
    points_a, points_b : Tensor, shape (N, D)
        Two sets of N points in D dimensions (same N and D).
    n_projections : int
        Number of random directions (default 512).
    generator : torch.Generator, optional
        Source of the directions (default: a generator seeded with 0).

    Returns
    -------
    float
        In the points' units; 0 for identical sets.
    """
    points_a, points_b = torch.as_tensor(points_a), torch.as_tensor(points_b)
    if points_a.ndim != 2 or points_a.shape != points_b.shape or points_a.shape[0] < 1:
        raise ConfigError(
            "the sliced Wasserstein distance compares two non-empty point sets shaped (N, D) "
            f"with the same N and D, got {tuple(points_a.shape)} and {tuple(points_b.shape)}"
        )
    if not isinstance(n_projections, int) or n_projections < 1:
        raise ConfigError(f"n_projections must be a positive integer, got {n_projections!r}")
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    points_a, points_b = points_a.to(torch.float64), points_b.to(torch.float64)
    n_dims = points_a.shape[1]
    directions = torch.randn(n_dims, n_projections, generator=generator, dtype=torch.float64)
    directions = directions / torch.linalg.vector_norm(directions, dim=0, keepdim=True)
    # (directions, N): each sort then runs over contiguous memory.
    projected_a = torch.sort((directions.T @ points_a.T).contiguous(), dim=-1).values
    projected_b = torch.sort((directions.T @ points_b.T).contiguous(), dim=-1).values
    return float((projected_a - projected_b).abs().mean())


@dataclass(frozen=True)
class SwdResult:
    """SWD between two image sets, per Laplacian pyramid level and averaged.

    Attributes
    ----------
    per_level : tuple of float
        SWD at each level, finest first (unscaled).
    level_sizes : tuple of (int, int)
        (height, width) of each level, pixels.
    mean : float
        Mean of `per_level`: the figure reported in Table 6.3.
    """

    per_level: tuple[float, ...]
    level_sizes: tuple[tuple[int, int], ...]
    mean: float

    def format(self) -> str:
        """One line: the mean, then each level as ``HxW:value``."""
        levels = " ".join(
            f"{height}x{width}:{value:.4f}"
            for (height, width), value in zip(self.level_sizes, self.per_level)
        )
        return f"swd={self.mean:.4f} [{levels}]"


@torch.inference_mode()
def sliced_wasserstein_distance(
    real: Tensor,
    fake: Tensor,
    patches_per_image: int = 128,
    patch_size: int = 7,
    n_projections: int = 512,
    min_size: int = 16,
    seed: int = 0,
) -> SwdResult:
    """ProGAN's multi-scale sliced Wasserstein distance between two sets of images.

    See the module docstring for the exact procedure.

    Parameters
    ----------
    real, fake : Tensor, shape (B, C, H, W)
        Two sets of the same shape, e.g. dB spectrogram images (B, 1, freq, frames).
        The shorter side must be at least `patch_size` pixels.
    patches_per_image : int
        Random patches per image and level (ProGAN: 128).
    patch_size : int
        Side of the square patches, pixels (ProGAN: 7).
    n_projections : int
        Random directions per level (ProGAN: 4 x 128 = 512).
    min_size : int
        Shorter side of the coarsest pyramid level, at least (ProGAN: 16); must be
        >= `patch_size`.
    seed : int
        Seed of the patch positions and the directions.

    Returns
    -------
    SwdResult

    Raises
    ------
    ConfigError
        Shapes differ, images smaller than a patch, or a setting out of range.
    """
    real, fake = _check_images(real, "the real images"), _check_images(fake, "the fake images")
    if real.shape != fake.shape:
        raise ConfigError(
            "the SWD compares two image sets of the same shape (B, C, H, W), got "
            f"{tuple(real.shape)} and {tuple(fake.shape)}"
        )
    for name, value in (("patches_per_image", patches_per_image), ("patch_size", patch_size),
                        ("n_projections", n_projections)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"the SWD's {name} must be a positive integer, got {value!r}")
    if not isinstance(min_size, int) or min_size < max(patch_size, 3):
        raise ConfigError(
            f"the SWD's min_size ({min_size!r}) must be an integer of at least the patch size "
            f"({patch_size}) and 3, so every pyramid level holds a whole patch"
        )
    if min(real.shape[-2:]) < patch_size:
        raise ConfigError(
            f"the SWD needs images of at least {patch_size} x {patch_size} pixels (one patch), "
            f"got {tuple(real.shape[-2:])}"
        )
    generator = torch.Generator().manual_seed(int(seed))
    per_level: list[float] = []
    sizes: list[tuple[int, int]] = []
    real_levels, fake_levels = laplacian_pyramid(real, min_size), laplacian_pyramid(fake, min_size)
    for real_level, fake_level in zip(real_levels, fake_levels):
        real_points = _sample_descriptors(real_level, patches_per_image, patch_size, generator)
        fake_points = _sample_descriptors(fake_level, patches_per_image, patch_size, generator)
        per_level.append(sliced_wasserstein(real_points, fake_points, n_projections, generator))
        sizes.append((int(real_level.shape[-2]), int(real_level.shape[-1])))
    mean = sum(per_level) / len(per_level)
    return SwdResult(per_level=tuple(per_level), level_sizes=tuple(sizes), mean=mean)
