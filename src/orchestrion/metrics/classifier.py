"""Scores of the multi-hot instrument classifier (the seed's Table 6.3, Sec. 4.7).

The render model's discriminator carries an auxiliary classifier with one independent
sigmoid per instrument slot (16 slots). Fed the generated spectrograms, its outputs are
scored against the instruments the score actually asks for:

* **AUC** -- area under the ROC curve per class, by the rank (Mann-Whitney U) formula
  ``(R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with ``R_pos`` the sum of the
  positives' ranks among all N probabilities of that class; tied probabilities share
  their mean rank, so a tie between a positive and a negative counts one half. It equals
  the area under the ROC curve with ties drawn as diagonal segments. The reported AUC
  is the unweighted mean ("macro") over the classes that have both positives and
  negatives (an AUC is undefined otherwise); NaN if no class has both.
* **micro accuracy** -- the fraction of all N x 16 (sample, class) decisions that are
  right, a decision being ``probability > threshold`` (0.5; strictly greater, as
  Keras' ``binary_accuracy``).
* **macro accuracy** -- the seed's definition: the fraction of samples whose 16
  decisions are *all* right (every instrument present recognised, no absent one
  claimed).

The macro accuracy is also given by the number of instruments a sample holds
(``macro_by_count``): a mix of four is much harder to name in full than a solo, and the
mixture of counts differs between sets of chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from orchestrion.errors import ConfigError

__all__ = [
    "ClassifierScores",
    "binary_auc",
    "instrument_classifier_scores",
]


def _as_matrix(values: Tensor | np.ndarray, what: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ConfigError(
            f"{what} must be a non-empty matrix shaped (samples, classes), got shape {matrix.shape}"
        )
    return matrix


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values` (N,), ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start index of each run of equal values, and each run's end (exclusive).
    run_starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    run_ends = np.r_[run_starts[1:], len(values)]
    mean_rank_of_run = (run_starts + 1 + run_ends) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank_of_run, run_ends - run_starts)
    return ranks


def binary_auc(scores: np.ndarray | Tensor, labels: np.ndarray | Tensor) -> float:
    """Area under the ROC curve of one binary problem, ties counted one half.

    Parameters
    ----------
    scores : array, shape (N,)
        Higher means "more likely positive" (probabilities, logits, anything ordered).
    labels : array, shape (N,)
        1 (positive) or 0 (negative); both must occur.

    Returns
    -------
    float in [0, 1]: the probability that a random positive scores above a random
    negative (plus half the probability of a tie).
    """
    if isinstance(scores, Tensor):
        scores = scores.detach().cpu().numpy()
    if isinstance(labels, Tensor):
        labels = labels.detach().cpu().numpy()
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ConfigError(
            f"AUC needs scores and labels of one shape (N,), got {scores.shape} and {labels.shape}"
        )
    positive = labels == 1
    n_positive = int(positive.sum())
    n_negative = int((labels == 0).sum())
    if n_positive + n_negative != len(labels):
        raise ConfigError("AUC labels must be 0 or 1")
    if n_positive == 0 or n_negative == 0:
        raise ConfigError(
            f"AUC is undefined without both classes: {n_positive} positives, {n_negative} negatives"
        )
    if not np.isfinite(scores).all():
        raise ConfigError("AUC scores hold NaN or infinite values")
    positive_rank_sum = float(_midranks(scores)[positive].sum())
    u_statistic = positive_rank_sum - n_positive * (n_positive + 1) / 2.0
    return u_statistic / (n_positive * n_negative)


@dataclass(frozen=True)
class ClassifierScores:
    """Instrument classifier figures (see the module docstring).

    Attributes
    ----------
    auc : float
        Mean AUC over the classes with both positives and negatives (NaN if none).
    micro_accuracy : float
        Fraction of (sample, class) decisions that are right.
    macro_accuracy : float
        Fraction of samples with every class decided right.
    per_class_auc : dict
        AUC of each class that has one, keyed by class index (or name, if given).
    n_samples : int
        N, the number of samples scored.
    macro_by_count : dict
        Number of instruments present -> (macro accuracy over those samples, how many).
    """

    auc: float
    micro_accuracy: float
    macro_accuracy: float
    per_class_auc: dict[int | str, float]
    n_samples: int
    macro_by_count: dict[int, tuple[float, int]] = field(default_factory=dict)

    def format_macro_by_count(self) -> str:
        """E.g. ``1: 0.996 (34)  2: 0.802 (51)``: instruments present, macro accuracy, samples."""
        return "  ".join(
            f"{count}: {accuracy:.3f} ({n})" for count, (accuracy, n) in self.macro_by_count.items()
        )


def instrument_classifier_scores(
    probabilities: np.ndarray | Tensor,
    labels: np.ndarray | Tensor,
    threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
) -> ClassifierScores:
    """AUC, micro and macro accuracy of multi-hot predictions.

    Parameters
    ----------
    probabilities : array or tensor, shape (N, K)
        Sigmoid outputs in [0, 1], one column per instrument slot (K = 16 for the render
        model).
    labels : array or tensor, shape (N, K)
        Multi-hot truth: 1 where the instrument plays in the sample, else 0.
    threshold : float
        A class is predicted present when its probability is strictly above this.
    class_names : sequence of str, optional
        K names to key `per_class_auc` with (default: the class indices 0 .. K-1).

    Returns
    -------
    ClassifierScores

    Raises
    ------
    ConfigError
        Empty or mismatched shapes, probabilities outside [0, 1] or not finite,
        labels other than 0/1, a threshold outside (0, 1), or the wrong number of names.
    """
    probs = _as_matrix(probabilities, "the classifier probabilities")
    truth = _as_matrix(labels, "the instrument labels")
    if probs.shape != truth.shape:
        raise ConfigError(
            f"probabilities {probs.shape} and labels {truth.shape} must have one shape "
            "(samples, classes)"
        )
    if not np.isfinite(probs).all() or probs.min() < 0.0 or probs.max() > 1.0:
        raise ConfigError(
            "classifier outputs must be probabilities in [0, 1] (apply the sigmoid to logits first)"
        )
    if not np.isin(truth, (0.0, 1.0)).all():
        raise ConfigError("instrument labels must be multi-hot: 0 or 1 in every entry")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"the decision threshold must lie in (0, 1), got {threshold!r}")
    n_samples, n_classes = probs.shape
    if class_names is not None and len(class_names) != n_classes:
        raise ConfigError(f"{len(class_names)} class names given for {n_classes} classes")
    keys: Sequence[int | str] = list(range(n_classes)) if class_names is None else list(class_names)

    truth_bool = truth == 1.0
    right = (probs > threshold) == truth_bool
    per_class_auc: dict[int | str, float] = {}
    for index, key in enumerate(keys):
        n_positive = int(truth_bool[:, index].sum())
        if 0 < n_positive < n_samples:
            per_class_auc[key] = binary_auc(probs[:, index], truth[:, index])
    auc = float(np.mean(list(per_class_auc.values()))) if per_class_auc else float("nan")
    all_right = right.all(axis=1)
    counts = truth_bool.sum(axis=1)
    macro_by_count = {
        int(count): (float(all_right[counts == count].mean()), int((counts == count).sum()))
        for count in np.unique(counts)
    }
    return ClassifierScores(
        auc=auc,
        micro_accuracy=float(right.mean()),
        macro_accuracy=float(all_right.mean()),
        per_class_auc=per_class_auc,
        n_samples=int(n_samples),
        macro_by_count=macro_by_count,
    )
