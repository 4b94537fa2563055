"""Localization metrics: per-sequence max and mean error, accuracy at distance thresholds.

A sequence's error is the largest (``max``) or average (``mean``, an ATE) Euclidean
distance between predicted and true query positions over its frames. Accuracy at a
threshold is the fraction of sequences whose error is below it (the paper's Tables 2, 5, 6
report max-error accuracy at 2/3/5/10 m).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["PAPER_THRESHOLDS_M", "FULL_THRESHOLDS_M", "SequenceErrors", "sequence_errors", "accuracy"]

PAPER_THRESHOLDS_M = (2.0, 3.0, 5.0, 10.0)
FULL_THRESHOLDS_M = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 15.0, 20.0)


@dataclass(frozen=True)
class SequenceErrors:
    """Errors of B sequences in metres.

    Attributes:
        frame: per-frame distance, shape (B, n); NaN on padding.
        max: largest frame error per sequence, shape (B,).
        mean: mean frame error per sequence, shape (B,).
    """

    frame: Tensor
    max: Tensor
    mean: Tensor


def sequence_errors(predicted: Tensor, truth: Tensor, lengths: Tensor | None = None) -> SequenceErrors:
    """Distances between predicted and true positions, reduced per sequence.

    Args:
        predicted: predicted positions, shape (B, n, 2) (or any trailing dimension).
        truth: true positions, same shape.
        lengths: valid frames per sequence, shape (B,); default all n.

    Raises:
        ValueError: if shapes differ.
    """
    if predicted.shape != truth.shape or predicted.dim() != 3:
        raise ValueError(f"predicted and truth must both be (B, n, 2), got {tuple(predicted.shape)} and {tuple(truth.shape)}")
    frame = (predicted - truth).norm(dim=-1)
    if lengths is None:
        lengths = torch.full(frame.shape[:1], frame.shape[1], device=frame.device)
    valid = torch.arange(frame.shape[1], device=frame.device)[None] < lengths[:, None]
    return SequenceErrors(
        frame=frame.masked_fill(~valid, float("nan")),
        max=frame.masked_fill(~valid, float("-inf")).max(dim=1).values,
        mean=(frame * valid).sum(dim=1) / valid.sum(dim=1),
    )


def accuracy(errors: Tensor | np.ndarray, thresholds_m: Sequence[float] = PAPER_THRESHOLDS_M) -> dict[float, float]:
    """Fraction of sequences with error strictly below each threshold (as a percentage)."""
    errors = np.asarray(torch.as_tensor(errors).detach().cpu(), dtype=np.float64)
    if errors.size == 0:
        raise ValueError("accuracy of an empty set of sequences is undefined")
    return {float(t): 100.0 * float((errors < t).mean()) for t in thresholds_m}
