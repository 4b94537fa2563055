"""Confidence and covariance of a fix, and their calibration on validation traverses.

**Confidence.** After aligning the query to every candidate window, let c1 be the lowest
cost and c2 the lowest cost of a window whose newest frame lies more than ``distinct_m``
from the best one's. The margin ``1 - c1 / c2`` is 0 when another place explains the query
as well, and approaches 1 when nothing else comes close. The streak n is the number of
consecutive keyframes whose best window agreed with the motion since the previous one
(:func:`seqvpr.localization.streaming.extend_streak`). A :class:`Calibration` maps both to
the probability that the fix is within ``correct_m`` of the truth:

- a gate: keyframes whose streak reaches ``streak_gate`` (chosen on validation among
  :data:`STREAK_GATES` by the likelihood of the fit; 0 = the margin alone) are scored
  ``1 + margin``, the others ``margin``: the gated keyframes form their own margin scale
  above the others, so a long streak alone need not be enough (its confidence is what the
  validation fixes with that streak and margin achieved);
- a monotone (isotonic, pool-adjacent-violators) fit of "fix correct" against the score,
  each pooled block shrunk towards the overall share correct by ``prior_strength``
  pseudo-samples (a handful of lucky fixes must not claim certainty), read off by linear
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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seqvpr.config import config_from_dict, config_to_dict
from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path

__all__ = ["CHI2_95", "Calibration", "fit_calibration", "load_calibration", "save_calibration", "isotonic_fit",
           "publish_threshold", "STREAK_GATES", "CALIBRATED_SETTINGS", "calibrated_settings", "settings_mismatch"]

CHI2_95 = 5.991464547107979  # chi-square quantile, 2 degrees of freedom, p = 0.95
STREAK_GATES = (0, 3, 5, 8)  # candidate streak gates fit_calibration chooses from
CALIBRATION_FILE = "calibration.yaml"
# Localizer settings that shape the margins and streaks a calibration is fitted to (the
# threshold, device and reset rules do not).
CALIBRATED_SETTINGS = (
    "query_period_s", "query_spacing_m", "query_length", "min_query_length", "top_k", "max_windows",
    "max_speed_ratio", "window_slack_s", "cluster_gap_s", "distinct_m", "global_every", "tracking_slack_s",
    "consistency_m", "speed_ratios", "lam", "grid_size", "refinements", "centring_keyframes", "min_newest_similarity",
    "still_similarity",
)


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
        streak_gate: keyframes with at least this streak score ``1 + margin``, the others
            ``margin``; 0 ignores the streak. The knots are knots of that score.
        publish_threshold: the confidence from which fixes are published when the
            localizer's ``confidence_threshold`` is null: the lowest confidence at which the
            validation fixes were at most ``max_wrong_rate`` wrong (1.0 = none qualified).
        max_wrong_rate: the wrong-fix rate ``publish_threshold`` was chosen for.
        settings: the localizer settings (:data:`CALIBRATED_SETTINGS`) the validation
            keyframes were aligned with; empty for the built-in default or an older file.
    """

    margin_knots: tuple[float, ...] = (0.0, 0.4)
    confidence_knots: tuple[float, ...] = (0.0, 1.0)
    bin_edges: tuple[float, ...] = (0.0, 1.0)
    sigma_along_m: tuple[float, ...] = (4.0,)
    sigma_cross_m: tuple[float, ...] = (2.0,)
    correct_m: float = 10.0
    fixes: int = 0
    streak_gate: int = 0
    publish_threshold: float = 0.5
    max_wrong_rate: float = 0.01
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.margin_knots) != len(self.confidence_knots) or not self.margin_knots:
            raise SeqvprError("calibration: margin_knots and confidence_knots must be non-empty and of equal length")
        if len(self.bin_edges) != len(self.sigma_along_m) + 1 or len(self.sigma_cross_m) != len(self.sigma_along_m):
            raise SeqvprError("calibration: need len(bin_edges) == len(sigma_along_m) + 1 == len(sigma_cross_m) + 1")
        if min(self.sigma_along_m + self.sigma_cross_m) <= 0:
            raise SeqvprError("calibration: standard deviations must be positive")
        if self.streak_gate < 0:
            raise SeqvprError(f"calibration: streak_gate must be >= 0, got {self.streak_gate!r}")
        if not 0.0 <= self.publish_threshold <= 1.0:
            raise SeqvprError(f"calibration: publish_threshold must be in [0, 1], got {self.publish_threshold!r}")

    def score(self, margin: float | np.ndarray, streak: int | np.ndarray = 0) -> float | np.ndarray:
        """The score the knots are placed on: ``margin``, plus 1 when the streak reaches the gate."""
        return margin + ((np.asarray(streak) >= self.streak_gate) if self.streak_gate > 0 else 0.0)

    def confidence(self, margin: float, streak: int = 0) -> float:
        """Probability in [0, 1] that a fix with this margin and streak is correct."""
        score = self.score(margin, streak)
        return float(np.clip(np.interp(score, self.margin_knots, self.confidence_knots), 0.0, 1.0))

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
    threshold: float | None = None,
    streaks: np.ndarray | None = None,
    streak_gates: tuple[int, ...] = STREAK_GATES,
    correct_m: float = 10.0,
    max_wrong_rate: float = 0.01,
    min_published: int = 10,
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
        streaks: streak of consistent keyframes of each attempt, shape (F,); None fits
            the margin alone.
        streak_gates: the candidate gates; the one whose isotonic fit gives the validation
            attempts the highest likelihood is kept.
        threshold: confidence threshold at which fixes are published; None: the fitted
            ``publish_threshold``. The covariance is fitted on the correct fixes (within
            ``correct_m``) at or above it, or on the ``min_per_bin`` most confident
            correct attempts when fewer reach it.
        correct_m: a fix within this distance counts as correct.
        max_wrong_rate: ``publish_threshold`` is the lowest confidence at which at most
            this share of the attempts at or above it are wrong ...
        min_published: ... and at least this many attempts reach it (else 1.0).
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
    best = None
    for gate in (streak_gates if streaks is not None else (0,)):
        candidate = Calibration((0.0,), (0.0,), streak_gate=int(gate))
        scores = candidate.score(margins, streaks if streaks is not None else 0)
        knots, values = isotonic_fit(scores, correct.astype(float), prior_strength)
        candidate = Calibration(tuple(knots.tolist()), tuple(values.tolist()), correct_m=correct_m,
                                streak_gate=int(gate))
        confidence = np.clip(np.interp(scores, knots, values), 0.0, 1.0)
        clipped = np.clip(confidence, 1e-6, 1 - 1e-6)
        likelihood = float(np.sum(np.where(correct, np.log(clipped), np.log1p(-clipped))))
        if best is None or likelihood > best[0] + 1e-9:
            best = (likelihood, candidate, confidence)
    _, calibration, confidence = best
    publish = publish_threshold(confidence, correct, max_wrong_rate, min_published)
    threshold = publish if threshold is None else threshold
    # The covariance describes a correct fix (the confidence says how likely that is): it is
    # fitted on published fixes within correct_m, or, when fewer than min_per_bin of those
    # exist, on the min_per_bin most confident correct attempts (the ones most like those
    # published: less confident fixes spread further).
    published = (confidence >= threshold) & correct
    if published.sum() < min_per_bin:
        if correct.sum() < 10:
            raise SeqvprError(f"calibration: only {int(correct.sum())} attempts within {correct_m} m; need at least 10")
        ranked = np.flatnonzero(correct)[np.argsort(-confidence[correct], kind="stable")]
        published = np.zeros_like(correct)
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
        streak_gate=calibration.streak_gate,
        publish_threshold=publish,
        max_wrong_rate=max_wrong_rate,
    )


def publish_threshold(confidence: np.ndarray, correct: np.ndarray, max_wrong_rate: float, min_published: int) -> float:
    """The lowest confidence c such that at most ``max_wrong_rate`` of the attempts with
    confidence >= c are wrong and at least ``min_published`` of them reach c; 1.0 if none.

    Args:
        confidence: confidence of each attempt, shape (F,).
        correct: whether each attempt was correct, shape (F,).
        max_wrong_rate: the largest acceptable share of wrong fixes.
        min_published: the fewest attempts the threshold must leave published.
    """
    order = np.argsort(-np.asarray(confidence), kind="stable")
    ranked, wrong = np.asarray(confidence)[order], np.cumsum(~np.asarray(correct, bool)[order])
    count = np.arange(1, len(ranked) + 1)
    # Only cut between distinct confidences: everything at the threshold is published.
    last_of_level = np.append(ranked[1:] < ranked[:-1], True)
    good = last_of_level & (wrong <= max_wrong_rate * count) & (count >= min_published)
    return float(ranked[np.flatnonzero(good)[-1]]) if good.any() else 1.0


def calibrated_settings(config: Any) -> dict[str, Any]:
    """The settings of ``config`` (a LocalizerConfig) that a calibration depends on, as YAML values."""
    values = config_to_dict(config)
    return {name: values[name] for name in CALIBRATED_SETTINGS}


def settings_mismatch(calibration: Calibration, config: Any) -> list[str]:
    """``name: calibrated -> used`` for every calibrated setting ``config`` changes (none when
    the calibration does not record its settings)."""
    if not calibration.settings:
        return []
    used = calibrated_settings(config)
    return [f"{name}: {calibration.settings[name]!r} -> {used[name]!r}" for name in CALIBRATED_SETTINGS
            if name in calibration.settings and calibration.settings[name] != used[name]]


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
