"""Shared convolution building blocks.

* :class:`SameConv2d` — a convolution with TensorFlow-style "SAME" padding: the output
  has ``ceil(size / stride)`` positions per axis for *any* input size (an axis of length
  1 stays 1), the extra padding going to the end when the total is odd.
* :class:`NoiseDropout` — dropout that can stay active in ``eval()`` mode, the noise
  source of pix2pix-style generators that take no latent vector.
* :class:`FrequencyContext` — residual convolutions dilated along frequency that start as
  the identity, so a trained feature map can be given a wider view without changing what
  it computes at first.
* :func:`fold_batch_norm` — a convolution followed by a BatchNorm in eval mode, as one
  convolution (inference only: one pass over the activations fewer).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.errors import ConfigError


def same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one axis for ``ceil(length / stride)`` convolution outputs."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with "SAME" padding computed from the input size at every call.

    Shapes
    ------
    forward(x): (B, C_in, H, W) -> (B, C_out, ceil(H / stride_h), ceil(W / stride_w))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias
        )

    def forward(self, x: Tensor, weight: Tensor | None = None) -> Tensor:
        """`weight` (C_out, C_in', kh, kw) replaces the layer's own for this call, e.g. its
        columns of the input channels that are not all zero, for an `x` of those only."""
        weight = self.weight if weight is None else weight
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top == bottom and left == right:
            return F.conv2d(x, weight, self.bias, self.stride, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, self.bias, self.stride)


class NoiseDropout(nn.Module):
    """Element-wise dropout that, by default, stays on after ``model.eval()``.

    pix2pix and orGAN feed their generator no latent vector: dropout at inference is
    the only source of variation between renderings of the same score. ``eval()``
    therefore does not switch it off; set ``active_at_inference = False`` (or use
    :func:`set_inference_dropout` on a whole model) for deterministic outputs.

    Parameters
    ----------
    p : float
        Probability of zeroing an element, in [0, 1). Survivors are scaled by 1/(1-p).
    active_at_inference : bool
        Keep dropping in eval mode. Default True.
    """

    def __init__(self, p: float = 0.5, active_at_inference: bool = True) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.active_at_inference = bool(active_at_inference)

    def extra_repr(self) -> str:
        return f"p={self.p}, active_at_inference={self.active_at_inference}"

    def forward(self, x: Tensor) -> Tensor:
        """Any shape -> same shape."""
        return F.dropout(x, self.p, training=self.training or self.active_at_inference)


class FrequencyContext(nn.Module):
    """Residual blocks, the i-th dilated 2**i rows along frequency, that start as the identity.

    Each block adds ``1x1(LeakyReLU(conv_(5 x 3), dilated (2**i, 1)(x)))`` to its input, the
    inner convolution a quarter of `channels` wide; the 1x1 convolution starts at zero, so
    the stack changes nothing until it is trained. With `n_blocks` blocks a row sees
    ``1 + 4 * (2**n_blocks - 1)`` rows around it.

    Shapes
    ------
    forward(x): (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int, n_blocks: int, negative_slope: float = 0.2) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ConfigError(f"a frequency context needs 0 or more blocks, got {n_blocks!r}")
        inner = max(1, channels // 4)
        self.blocks = nn.ModuleList()
        for i in range(n_blocks):
            dilation = 2**i
            spread = nn.Conv2d(channels, inner, (5, 3), padding=(2 * dilation, 1), dilation=(dilation, 1))
            mix = nn.Conv2d(inner, channels, 1)
            nn.init.zeros_(mix.weight)
            nn.init.zeros_(mix.bias)
            self.blocks.append(nn.Sequential(spread, nn.LeakyReLU(negative_slope), mix))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


def set_inference_dropout(module: nn.Module, active: bool) -> None:
    """Switch every :class:`NoiseDropout` inside `module` on or off for eval mode."""
    for child in module.modules():
        if isinstance(child, NoiseDropout):
            child.active_at_inference = bool(active)


@torch.no_grad()
def fold_batch_norm(conv: nn.Conv2d | nn.ConvTranspose2d, norm: nn.BatchNorm2d) -> None:
    """Fold `norm`'s running statistics and affine map into `conv`, in place (eval only).

    Afterwards ``conv(x)`` gives what ``norm(conv(x))`` gave in eval mode, so `norm` must
    no longer be applied: each output channel's weights are scaled by
    ``gamma / sqrt(var + eps)`` and it gets the bias ``beta - mean * scale`` (plus the
    scaled old bias).
    """
    if not isinstance(norm, nn.BatchNorm2d) or norm.running_var is None or norm.running_mean is None:
        raise ConfigError("only a BatchNorm2d with running statistics can be folded")
    if conv.groups != 1:
        raise ConfigError("folding a BatchNorm into a grouped convolution is not supported")
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    out_axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    shape = [1] * conv.weight.dim()
    shape[out_axis] = -1
    conv.weight.mul_(scale.reshape(shape).to(conv.weight.dtype))
    bias = shift if conv.bias is None else conv.bias * scale + shift
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
