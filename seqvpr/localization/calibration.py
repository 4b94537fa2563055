"""Confidence and covariance of a fix, and their calibration on validation traverses.

**Confidence.** After aligning the query to every candidate window, let c1 be the lowest
cost and c2 the lowest cost of a window whose newest frame lies more than ``distinct_m``
from the best one's. The margin ``1 - c1 / c2`` is 0 when another place explains the query
as well, and approaches 1 when nothing else comes close. A :class:`Calibration` maps the
margin to the probability that the fix is within ``correct_m`` of the truth: a monotone
(isotonic, pool-adjacent-violators) fit of "fix correct" against the margin on validation
fixes, each pooled block shrunk towards the overall share correct by 10 pseudo-samples (a
handful of lucky high-margin fixes must not claim certainty), read off by linear
interpolation between its knots.

**Covariance.** Position errors of a sequence fix are mostly along the track (where along
the street the query sits), less across it. The covariance is
``R(heading) diag(sigma_along^2, sigma_cross^2) R(heading)^T``, with the two deviations
fitted per confidence bin on correct validation fixes (within ``correct_m``; the confidence
accounts for the others) and scaled so that the 95 % ellipse (Mahalanobis distance^2 <=
5.991, the chi-square 2-dof 95 % quantile) holds the true position in 95 % of them. Over
all published fixes the ellipse then holds 95 % x (1 - wrong-fix rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from seqvpr.config import config_from_dict, config_to_dict
from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path

__all__ = ["CHI2_95", "Calibration", "fit_calibration", "load_calibration", "save_calibration", "isotonic_fit"]

CHI2_95 = 5.991464547107979  # chi-square quantile, 2 degrees of freedom, p = 0.95
CALIBRATION_FILE = "calibration.yaml"


@dataclass(frozen=True)
class Calibration:
    """Margin -> confidence, and confidence -> covariance.

    Attributes:
        margin_knots: increasing margins, shape (K,).
        confidence_knots: confidence at each knot, non-decreasing, in [0, 1].
        bin_edges: confidence bin edges (B + 1,), first 0, last 1 (inclusive).
        sigma_along_m: along-track standard deviation per bin (B,), metres.
        sigma_cross_m: cross-track standard deviation per bin (B,), metres.
        correct_m: the error a "correct" fix stays within.
        fixes: validation fixes the fit used (0 for the built-in default).
    """

    margin_knots: tuple[float, ...] = (0.0, 0.3)
    confidence_knots: tuple[float, ...] = (0.0, 1.0)
    bin_edges: tuple[float, ...] = (0.0, 1.0)
    sigma_along_m: tuple[float, ...] = (4.0,)
    sigma_cross_m: tuple[float, ...] = (2.0,)
    correct_m: float = 10.0
    fixes: int = 0

    def __post_init__(self) -> None:
        if len(self.margin_knots) != len(self.confidence_knots) or not self.margin_knots:
            raise SeqvprError("calibration: margin_knots and confidence_knots must be non-empty and of equal length")
        if len(self.bin_edges) != len(self.sigma_along_m) + 1 or len(self.sigma_cross_m) != len(self.sigma_along_m):
            raise SeqvprError("calibration: need len(bin_edges) == len(sigma_along_m) + 1 == len(sigma_cross_m) + 1")
        if min(self.sigma_along_m + self.sigma_cross_m) <= 0:
            raise SeqvprError("calibration: standard deviations must be positive")

    def confidence(self, margin: float) -> float:
        """Probability in [0, 1] that a fix with this margin is correct."""
        return float(np.clip(np.interp(margin, self.margin_knots, self.confidence_knots), 0.0, 1.0))

    def covariance(self, confidence: float, heading_rad: float) -> np.ndarray:
        """2x2 position covariance (m^2) in (easting, northing) for a fix."""
        edges = np.asarray(self.bin_edges[1:-1])
        index = int(np.searchsorted(edges, confidence, side="right"))
        along, cross = self.sigma_along_m[index], self.sigma_cross_m[index]
        cosine, sine = np.cos(heading_rad), np.sin(heading_rad)
        rotation = np.array([[cosine, -sine], [sine, cosine]])
        return rotation @ np.diag([along**2, cross**2]) @ rotation.T


def isotonic_fit(x: np.ndarray, y: np.ndarray, prior_strength: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of y on x (pool adjacent violators).

    Args:
        x, y: samples, shape (n,).
        prior_strength: with s > 0, each pooled block's mean is shrunk towards the overall
            mean as if s more samples at the overall mean were in it, (sum + s mean) /
            (count + s), so that a few lucky samples at the top do not reach 1; the result
            is made non-decreasing again by a running maximum from the bottom.

    Returns:
        knots (mean x of each pooled block) and the fitted value of each block.
    """
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    blocks: list[list[float]] = []  # [sum y, count, sum x]
    for xi, yi in zip(xs, ys):
        blocks.append([yi, 1.0, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            y_sum, count, x_sum = blocks.pop()
            blocks[-1][0] += y_sum
            blocks[-1][1] += count
            blocks[-1][2] += x_sum
    knots = np.array([b[2] / b[1] for b in blocks])
    mean = float(ys.mean())
    values = np.array([(b[0] + prior_strength * mean) / (b[1] + prior_strength) for b in blocks])
    return knots, np.maximum.accumulate(values)


def fit_calibration(
    margins: np.ndarray,
    errors_along_m: np.ndarray,
    errors_cross_m: np.ndarray,
    *,
    threshold: float,
    correct_m: float = 10.0,
    bins: int = 3,
    min_per_bin: int = 30,
    prior_strength: float = 10.0,
) -> Calibration:
    """Fit a :class:`Calibration` to validation fixes.

    Args:
        margins: margin of every attempted fix, shape (F,).
        errors_along_m: signed along-track error of each fix (truth - estimate, in the
            frame of the estimated heading), shape (F,).
        errors_cross_m: signed cross-track error, shape (F,).
        threshold: confidence threshold at which fixes are published; the covariance is
            fitted on the correct fixes (within ``correct_m``) at or above it, or on the
            ``min_per_bin`` most confident correct attempts when fewer reach it.
        correct_m: a fix within this distance counts as correct.
        bins: confidence bins of the covariance (fewer when there are few fixes).
        min_per_bin: smallest number of published fixes per bin.
        prior_strength: pseudo-samples at the overall share correct added to every block
            of the isotonic fit (see :func:`isotonic_fit`).

    Raises:
        SeqvprError: fewer than 10 attempts, or fewer than ``min_per_bin``.
    """
    margins = np.asarray(margins, float)
    along, cross = np.asarray(errors_along_m, float), np.asarray(errors_cross_m, float)
    if len(margins) < max(10, min_per_bin):
        raise SeqvprError(f"calibration needs at least {max(10, min_per_bin)} attempted fixes, got {len(margins)}")
    correct = np.hypot(along, cross) <= correct_m
    knots, values = isotonic_fit(margins, correct.astype(float), prior_strength)
    calibration = Calibration(tuple(knots.tolist()), tuple(values.tolist()), correct_m=correct_m)
    confidence = np.array([calibration.confidence(m) for m in margins])
    # The covariance describes a correct fix (the confidence says how likely that is): it is
    # fitted on published fixes within correct_m, or, when fewer than min_per_bin of those
    # exist, on the min_per_bin most confident correct attempts.
    published = (confidence >= threshold) & correct
    if published.sum() < min_per_bin:
        ranked = np.flatnonzero(correct)[np.argsort(-confidence[correct], kind="stable")]
        if len(ranked) < 10:
            raise SeqvprError(f"calibration: only {len(ranked)} attempts within {correct_m} m; need at least 10")
        published = np.zeros(len(margins), dtype=bool)
        published[ranked[:min_per_bin]] = True
    count = int(published.sum())
    bins = max(1, min(bins, count // min_per_bin))
    quantiles = np.quantile(confidence[published], np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(np.concatenate([[0.0], quantiles, [1.0]]))
    which = np.clip(np.searchsorted(edges[1:-1], confidence[published], side="right"), 0, len(edges) - 2)
    sigma_along, sigma_cross = [], []
    for b in range(len(edges) - 1):
        a, c = along[published][which == b], cross[published][which == b]
        # Robust scales (median absolute value / 0.6745 ~ sigma of a normal), then one factor
        # so that the bin's 95 % ellipse holds exactly 95 % of its fixes.
        scale_a = max(np.median(np.abs(a)) / 0.6745, 0.05)
        scale_c = max(np.median(np.abs(c)) / 0.6745, 0.05)
        distance_sq = (a / scale_a) ** 2 + (c / scale_c) ** 2
        factor = np.sqrt(np.quantile(distance_sq, 0.95) / CHI2_95)
        sigma_along.append(float(scale_a * factor))
        sigma_cross.append(float(scale_c * factor))
    return Calibration(
        margin_knots=calibration.margin_knots,
        confidence_knots=calibration.confidence_knots,
        bin_edges=tuple(float(e) for e in edges),
        sigma_along_m=tuple(sigma_along),
        sigma_cross_m=tuple(sigma_cross),
        correct_m=correct_m,
        fixes=len(margins),
    )


def save_calibration(calibration: Calibration, map_dir: str | Path) -> Path:
    """Write ``<map>/calibration.yaml``."""
    path = Path(map_dir) / CALIBRATION_FILE
    with atomic_path(path) as temporary:
        temporary.write_text(yaml.safe_dump(config_to_dict(calibration), sort_keys=False), encoding="utf-8")
    return path


def load_calibration(map_dir: str | Path) -> Calibration | None:
    """``<map>/calibration.yaml`` if the map has one, else None."""
    path = Path(map_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    mapping = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    mapping = {key: tuple(value) if isinstance(value, list) else value for key, value in mapping.items()}
    return config_from_dict(Calibration, mapping, str(path))
