"""Energy correction of a decoded spectrogram (the morph system, SYSTEMS.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from orchestrion.errors import ConfigError

__all__ = ["energy_correction"]


def energy_correction(
    output_mag: Tensor, reference_mag: Tensor | Sequence[Tensor], eps: float = 1e-8
) -> Tensor:
    """Rescale each frame of `output_mag` so its summed magnitude matches the reference's.

    ``corrected[..., f, t] = output[..., f, t] * R[t] / (O[t] + eps)`` with
    ``R[t] = sum_f ref[..., f, t]`` and ``O[t] = sum_f output[..., f, t]`` (SYSTEMS.md
    section 3, the morph system's energy correction).

    Parameters
    ----------
    output_mag : decoded magnitude spectrogram, (..., freq, frames), non-negative.
    reference_mag : magnitude whose per-frame energy (sum of magnitudes) the output should
        have, broadcastable to `output_mag`. For a plain reconstruction this is the input
        sound; for a morph between A and B it is the mean of both inputs, which can be
        passed as a sequence ``(mag_a, mag_b)`` and is then averaged here.
    eps : added to the output's frame sums so silent frames stay silent instead of NaN.

    Returns
    -------
    Tensor shaped like `output_mag` (differentiable in both inputs).
    """
    output_mag = torch.as_tensor(output_mag)
    if isinstance(reference_mag, (list, tuple)):
        if not reference_mag:
            raise ConfigError("energy_correction needs at least one reference spectrogram")
        references = [torch.as_tensor(r) for r in reference_mag]
        shapes = {tuple(r.shape) for r in references}
        if len(shapes) != 1:
            raise ConfigError(f"reference spectrograms must share one shape, got {sorted(shapes)}")
        reference = torch.stack(references).mean(dim=0)
    else:
        reference = torch.as_tensor(reference_mag)
    if output_mag.is_complex() or reference.is_complex():
        raise ConfigError("energy_correction takes magnitudes; pass spec.abs()")
    if output_mag.ndim < 2 or reference.ndim < 2:
        raise ConfigError("energy_correction expects (..., freq, frames) spectrograms")
    if output_mag.shape[-1] != reference.shape[-1]:
        raise ConfigError(
            f"output has {output_mag.shape[-1]} frames but the reference has {reference.shape[-1]}"
        )
    if not eps > 0:
        raise ConfigError(f"eps must be positive, got {eps}")
    reference_energy = reference.sum(dim=-2, keepdim=True)
    output_energy = output_mag.sum(dim=-2, keepdim=True)
    try:
        return output_mag * (reference_energy / (output_energy + eps))
    except RuntimeError as exc:
        raise ConfigError(
            f"reference {tuple(reference.shape)} does not broadcast to output "
            f"{tuple(output_mag.shape)}"
        ) from exc
