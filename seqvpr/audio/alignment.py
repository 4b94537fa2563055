"""Score-to-performance alignments as piecewise-linear functions.

An alignment phi maps a position in the score (seconds of the score rendered at its
nominal tempo) to a time in the performance recording (seconds). Following Thickstun et
al. (2020) it is piecewise linear between changepoints and constant beyond its first and
last changepoint. Ground truth, predicted warps (GDTW knots) and DTW read-outs all take
this form, so one type serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Alignment"]


@dataclass(frozen=True)
class Alignment:
    """A monotone piecewise-linear map from score seconds to performance seconds.

    Attributes:
        score_s: changepoints in score time, shape (K,), strictly increasing, K >= 2.
        performance_s: performance time at each changepoint, shape (K,), non-decreasing.

    Raises:
        ValueError: on shapes, non-finite values, score times that do not increase or
            performance times that decrease.
    """

    score_s: np.ndarray
    performance_s: np.ndarray

    def __post_init__(self) -> None:
        score = np.asarray(self.score_s, dtype=np.float64)
        performance = np.asarray(self.performance_s, dtype=np.float64)
        if score.ndim != 1 or score.shape != performance.shape or len(score) < 2:
            raise ValueError(
                f"an alignment needs score_s and performance_s of the same shape (K,), K >= 2; "
                f"got {score.shape} and {performance.shape}"
            )
        if not (np.isfinite(score).all() and np.isfinite(performance).all()):
            raise ValueError("alignment changepoints must be finite")
        if (np.diff(score) <= 0).any():
            index = int(np.flatnonzero(np.diff(score) <= 0)[0])
            raise ValueError(f"score_s must increase strictly: score_s[{index + 1}] = {score[index + 1]} "
                             f"after {score[index]}")
        if (np.diff(performance) < -1e-9).any():
            index = int(np.flatnonzero(np.diff(performance) < -1e-9)[0])
            raise ValueError(f"performance_s must not decrease: performance_s[{index + 1}] = "
                             f"{performance[index + 1]} after {performance[index]}")
        object.__setattr__(self, "score_s", score)
        object.__setattr__(self, "performance_s", performance)

    def __call__(self, score_s: np.ndarray | float) -> np.ndarray:
        """Performance time at the given score times (linear between changepoints)."""
        return np.interp(score_s, self.score_s, self.performance_s)

    def inverse(self, performance_s: np.ndarray | float) -> np.ndarray:
        """Score time at the given performance times (the first one, where phi is flat)."""
        return np.interp(performance_s, self.performance_s, self.score_s)

    @property
    def start(self) -> float:
        return float(self.score_s[0])

    @property
    def end(self) -> float:
        return float(self.score_s[-1])

    def restrict(self, start: float, end: float) -> Alignment:
        """The same map on [start, end] only, with changepoints at both ends."""
        if not end > start:
            raise ValueError(f"restrict needs end > start, got [{start}, {end}]")
        inside = (self.score_s > start) & (self.score_s < end)
        score = np.concatenate([[start], self.score_s[inside], [end]])
        return Alignment(score, self(score))
