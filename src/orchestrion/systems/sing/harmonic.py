"""A harmonic branch for SING's decoder: partials of the requested pitch, amplitudes learned.

SING's decoder must discover from the spectral loss alone where a note's partials lie, so
a pitch it never heard (or heard rarely) comes out a semitone off. This branch takes the
decoder's hidden frames and the note's MIDI pitch, predicts per frame an overall level,
a distribution of it over the first `harmonic_partials` harmonics of f0 = 440 * 2 **
((pitch - 69) / 12) (harmonics at or above 0.95 x Nyquist get none) and a phase for each,
and sums the sinusoids. The phases let the branch match a recorded waveform (stage 1 of
the cpu preset trains on waveform MSE; FluidSynth starts each note at a fixed phase). The decoder's own transposed conv keeps everything else (noise, attack,
inharmonic partials); the two are added. The idea is DDSP's harmonic synthesizer (Engel
et al., "DDSP: Differentiable Digital Signal Processing", ICLR 2020), used here as an
extra path of the SING decoder rather than its replacement.

Frame-to-sample alignment: frame j's amplitudes hold at the centre of the decoder
synthesis layer's window j (same kernel / stride / cropping) and are interpolated linearly
between centres, so the branch's output has exactly the decoder's length and timing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.nn.pitch import pitch_to_hz

NYQUIST_MARGIN = 0.95
"""Harmonics at or above this fraction of the Nyquist frequency are silenced (no aliasing)."""

INITIAL_LEVEL = 1e-3
"""Starting level of a fresh branch's partials (sample units): quiet, but not so quiet that
the log-spectral loss has no gradient."""


class HarmonicBranch(nn.Module):
    """Hidden frames (B, C, L) + pitch (B,) -> (B, (L - 1) * stride - 2 * (kernel - stride) + kernel).

    Parameters
    ----------
    channels : width C of the decoder's hidden frames.
    partials : number of harmonics (f0, 2 f0, ...).
    kernel_size, stride : the decoder synthesis layer's window and hop, in samples.
    sample_rate : audio rate in Hz.
    """

    def __init__(self, channels: int, partials: int, kernel_size: int, stride: int,
                 sample_rate: int) -> None:
        super().__init__()
        self.partials = partials
        self.stride = stride
        self.kernel_size = kernel_size
        self.crop = kernel_size - stride
        self.sample_rate = sample_rate
        # per frame: level, partials logits, partials x (cos, sin) of the phase
        self.controls = nn.Conv1d(channels, 1 + 3 * partials, kernel_size=1)
        nn.init.normal_(self.controls.weight, std=0.01 / math.sqrt(channels))
        nn.init.zeros_(self.controls.bias)
        with torch.no_grad():  # softplus(bias) = INITIAL_LEVEL; phase 0 (cos 1, sin 0)
            self.controls.bias[0] = math.log(math.expm1(INITIAL_LEVEL))
            self.controls.bias[1 + partials : 1 + 2 * partials] = 1.0
        position = torch.arange(stride, dtype=torch.float32) / stride
        self.register_buffer("ramp", torch.stack([1 - position, position]), persistent=False)
        self.register_buffer("harmonics", torch.arange(1, partials + 1, dtype=torch.float32),
                             persistent=False)

    def harmonic_amplitudes(self, hidden: Tensor, pitch: Tensor) -> Tensor:
        """(B, partials, L) per-frame amplitude of each harmonic (zero above the Nyquist margin)."""
        return self._amplitudes(self.controls(hidden), pitch)

    def _amplitudes(self, controls: Tensor, pitch: Tensor) -> Tensor:
        level = F.softplus(controls[:, :1])
        f0 = pitch_to_hz(pitch).to(controls.device, torch.float32)
        audible = (f0.unsqueeze(-1) * self.harmonics < NYQUIST_MARGIN * self.sample_rate / 2).unsqueeze(-1)
        logits = controls[:, 1 : 1 + self.partials].masked_fill(~audible, -1e4)
        return level * torch.softmax(logits, dim=1) * audible

    def quadrature_amplitudes(self, hidden: Tensor, pitch: Tensor) -> Tensor:
        """(B, 2, partials, L): each harmonic's amplitude times (cos, sin) of its phase."""
        controls = self.controls(hidden)
        rotation = controls[:, 1 + self.partials :].unflatten(1, (2, self.partials))
        rotation = rotation * torch.rsqrt(rotation.square().sum(1, keepdim=True) + 1e-8)
        return self._amplitudes(controls, pitch).unsqueeze(1) * rotation

    def forward(self, hidden: Tensor, pitch: Tensor) -> Tensor:
        batch, _, frames = hidden.shape
        hops = frames - 1 + (self.kernel_size - 2 * self.crop) // self.stride  # output length / stride
        first = (self.kernel_size // 2 - self.stride) // self.stride  # the frame centred on sample 0
        amplitudes = self.quadrature_amplitudes(hidden, pitch).flatten(1, 2)  # (B, 2K, L)
        ends = torch.stack([amplitudes[..., first : first + hops],
                            amplitudes[..., first + 1 : first + 1 + hops]], dim=1)
        with torch.no_grad():
            waves = self.sinusoids(pitch.to(hidden.device), hops)
        # (B, hops, 2, 2K) @ (B, hops, 2K, stride): each hop's sum of partials at its start
        # and end amplitudes, then a linear cross-fade between the two across the hop
        mixed = torch.matmul(ends.permute(0, 3, 1, 2), waves)
        return (mixed * self.ramp).sum(dim=2).reshape(batch, hops * self.stride)

    def sinusoids(self, pitch: Tensor, hops: int) -> Tensor:
        """(B, hops, 2 x partials, stride): sin then cos of each harmonic of each note's f0, hop by hop.

        With amplitude a and phase phi, a cos(phi) sin(x) + a sin(phi) cos(x) = a sin(x + phi).
        """
        samples = torch.arange(hops * self.stride, device=pitch.device, dtype=torch.float64)
        f0 = pitch_to_hz(pitch).to(pitch.device)
        cycles = torch.remainder(f0.unsqueeze(-1) * samples / self.sample_rate, 1.0).float()
        angle = 2 * math.pi * torch.remainder(cycles.view(-1, hops, 1, self.stride)
                                              * self.harmonics.view(1, 1, -1, 1), 1.0)
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=2)
