"""Adversarial losses for patch discriminators and the class-weighted multi-hot BCE.

* :class:`AdversarialLoss` — the GAN objective on a discriminator's raw output (a patch
  map of logits or a single logit per example): ``"bce"`` is the original GAN's
  cross-entropy (Goodfellow et al., 2014) as used by pix2pix and orGAN, written with
  logits for numerical stability; ``"lsgan"`` is the least-squares GAN (Mao et al.,
  2017), targets 1 for real and 0 for fake.
* :class:`WeightedMultiHotBCE` — binary cross-entropy per class on multi-hot labels,
  each class weighted by ``w_i = (1 / n_i) * (n_total / n_classes)`` (orGAN's eq. 4.25)
  so rare instruments count as much as common ones.

All losses average over every element (batch, patches, classes), so their scale does not
depend on the patch-map size or the batch size.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.errors import ConfigError

GanLossKind = Literal["bce", "lsgan"]


class AdversarialLoss(nn.Module):
    """GAN loss on raw discriminator outputs (logits for ``"bce"``, scores for ``"lsgan"``).

    Parameters
    ----------
    kind : {"bce", "lsgan"}
        ``"bce"``: sigmoid cross-entropy against targets 1 (real) / 0 (fake).
        ``"lsgan"``: mean squared error against the same targets.

    Shapes
    ------
    Every argument is a discriminator output of any shape, e.g. a patch map
    (B, 1, P, Q); the result is a scalar.
    """

    def __init__(self, kind: GanLossKind = "bce") -> None:
        super().__init__()
        if kind not in ("bce", "lsgan"):
            raise ConfigError(f"GAN loss must be 'bce' or 'lsgan', got {kind!r}")
        self.kind = kind

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"

    def _against(self, output: Tensor, target: float) -> Tensor:
        targets = torch.full_like(output, target)
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(output, targets)
        return F.mse_loss(output, targets)

    def real(self, output: Tensor) -> Tensor:
        """Loss for outputs that should say "real" (target 1)."""
        return self._against(output, 1.0)

    def fake(self, output: Tensor) -> Tensor:
        """Loss for outputs that should say "fake" (target 0)."""
        return self._against(output, 0.0)

    def generator(self, fake_output: Tensor) -> Tensor:
        """The generator's loss: the discriminator should call its fakes real."""
        return self.real(fake_output)

    def discriminator(self, real_output: Tensor, fake_output: Tensor) -> Tensor:
        """The discriminator's loss: real as real plus fake as fake (a sum, as in orGAN).

        orGAN (like pix2pix) halves this in the discriminator's total objective; that
        factor is a weight of the caller, not part of this loss.
        """
        return self.real(real_output) + self.fake(fake_output)


def class_weights_from_counts(
    counts: Tensor, n_total: int | float, unseen_weight: float = 1.0
) -> Tensor:
    """Class weights ``w_i = (1 / n_i) * (n_total / n_classes)`` (orGAN eq. 4.25).

    Parameters
    ----------
    counts : Tensor, (n_classes,)
        ``n_i``: the number of training examples in which class i is present.
    n_total : int or float
        The number of training examples (each may hold several classes).
    unseen_weight : float
        Weight of a class that never occurs (``n_i = 0``, e.g. a spare instrument
        slot), where the formula divides by zero. Default 1.0: it still learns to say
        "absent", with the weight of a class of average frequency.

    Returns
    -------
    Tensor, float32, (n_classes,)
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ConfigError(
            "class counts must be a 1-D list with one count per class, "
            f"got shape {tuple(counts.shape)}"
        )
    if bool((counts < 0).any()):
        raise ConfigError(f"class counts cannot be negative, got {counts.tolist()}")
    if not n_total > 0:
        raise ConfigError(f"the total number of examples must be positive, got {n_total!r}")
    n_classes = counts.numel()
    formula = (float(n_total) / n_classes) / counts.clamp(min=1.0)
    weights = torch.where(counts > 0, formula, torch.full_like(counts, unseen_weight))
    return weights.to(torch.float32)


def class_weights_from_labels(labels: Tensor, unseen_weight: float = 1.0) -> Tensor:
    """Class weights from a whole training set's multi-hot labels, (N, n_classes) -> (n_classes,).

    ``n_i`` is the number of rows where class i is present (> 0.5), ``n_total = N``.
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 2 or labels.shape[0] == 0:
        raise ConfigError(
            "labels must be a non-empty (examples, classes) array of 0/1, "
            f"got shape {tuple(labels.shape)}"
        )
    counts = (labels > 0.5).sum(dim=0)
    return class_weights_from_counts(counts, labels.shape[0], unseen_weight)


class WeightedMultiHotBCE(nn.Module):
    """Binary cross-entropy per class on multi-hot labels, each class weighted.

    ``loss = mean_{b, i} w_i * BCE(sigmoid(logit_{b,i}), y_{b,i})``: the class weight
    multiplies both the present and the absent term (orGAN eq. 4.25).

    Parameters
    ----------
    class_weights : Tensor (n_classes,), optional
        Per-class weights, e.g. from :func:`class_weights_from_labels`; default all 1.
        Kept as a buffer (saved with the model, moved with ``.to``); replace with
        :meth:`set_class_weights`.
    n_classes : int
        Number of classes when `class_weights` is not given. Default 16.
    reduction : {"mean", "none"}
        ``"none"`` returns the weighted loss per example, (B,) (mean over classes).

    Shapes
    ------
    forward(logits, labels): logits (B, n_classes), labels (B, n_classes) in [0, 1]
    -> () or (B,)
    """

    class_weights: Tensor

    def __init__(
        self,
        class_weights: Tensor | None = None,
        n_classes: int = 16,
        reduction: Literal["mean", "none"] = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        self.reduction = reduction
        if class_weights is None:
            weights = torch.ones(n_classes)
        else:
            weights = torch.as_tensor(class_weights, dtype=torch.float32)
        if weights.dim() != 1 or bool((weights < 0).any()):
            raise ConfigError(
                f"class weights must be a 1-D list of non-negative numbers, got {weights.tolist()}"
            )
        self.register_buffer("class_weights", weights.clone())

    def set_class_weights(self, class_weights: Tensor) -> None:
        """Replace the per-class weights (same number of classes)."""
        current = self.class_weights
        weights = torch.as_tensor(class_weights, dtype=current.dtype, device=current.device)
        if weights.shape != current.shape:
            raise ConfigError(
                f"expected {current.numel()} class weights, got shape {tuple(weights.shape)}"
            )
        self.class_weights.copy_(weights)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Weighted BCE of logits (B, n_classes) against multi-hot labels (B, n_classes)."""
        if logits.shape != labels.shape or logits.shape[-1] != self.class_weights.numel():
            raise ConfigError(
                f"classifier logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                f"must both be (batch, {self.class_weights.numel()})"
            )
        targets = labels.to(logits.dtype)
        per_class = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        weighted = (per_class * self.class_weights.to(logits.dtype)).mean(dim=-1)
        return weighted.mean() if self.reduction == "mean" else weighted
