"""Grow a trained instrument classifier into a wider one that answers exactly as it did.

A run continued (``--init-from``) with a larger ``classifier_width`` keeps what the
classifier learned instead of starting it fresh. Every weight is copied into the leading
slice of its wider counterpart. The new channels read the old ones through fresh random
weights. Every weight that reads a new channel starts at zero: the next convolution's,
the residual blocks', and the linear layer's columns for those channels. So the wider
classifier gives the same logits at first, and the new channels learn from the first step
(their outgoing weights get a gradient because their activations are not zero).
"""

from __future__ import annotations

import torch

from orchestrion.systems.organ.discriminator import CLASSIFIER_WEIGHTS
from orchestrion.systems.organ.gan import OrganModel

LINEAR_WEIGHTS = ("discriminator.classifier.weight",)
"""Linear layers that read the pooled features, flattened as (channel, frequency row)."""


def grow_classifier(state: dict[str, torch.Tensor], model: OrganModel) -> dict[str, torch.Tensor]:
    """`state` with each classifier weight narrower than `model`'s grown to `model`'s shape.

    Weights of the same shape, and every weight outside the classifier, are returned as
    they are; a weight wider than `model`'s in any dimension is left for loading to refuse.
    """
    own = model.state_dict()
    rows = model.discriminator.classifier_rows if model.discriminator is not None else 1
    grown = dict(state)
    for name, old in state.items():
        new = own.get(name)
        if not name.startswith(CLASSIFIER_WEIGHTS) or new is None or new.shape == old.shape:
            continue
        if new.dim() != old.dim() or any(o > n for o, n in zip(old.shape, new.shape, strict=True)):
            continue
        if name in LINEAR_WEIGHTS:
            grown[name] = _grown_linear(old, new, rows)
        else:
            grown[name] = _grown_tensor(old, new)
    return grown


def _grown_tensor(old: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """`fresh` with `old` in its leading slice; for a convolution's weight (out, in, kh, kw)
    the columns of the new input channels are zero."""
    out = fresh.detach().clone()
    out[tuple(slice(0, size) for size in old.shape)] = old
    if out.dim() == 4:
        out[:, old.shape[1]:] = 0
    return out


def _grown_linear(old: torch.Tensor, fresh: torch.Tensor, rows: int) -> torch.Tensor:
    """A linear layer (classes, channels x rows) over pooled features: the old channels'
    columns copied, the new channels' columns zero."""
    out = torch.zeros(fresh.shape[0], fresh.shape[1] // rows, rows, dtype=old.dtype)
    out[:, :old.shape[1] // rows] = old.reshape(old.shape[0], -1, rows)
    return out.reshape(fresh.shape)
