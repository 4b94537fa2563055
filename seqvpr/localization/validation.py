"""Keyframe attempts on traverses with known poses: calibration data and the oracle comparison.

:func:`keyframe_attempts` replays traverses (descriptors given) through a localizer and
records, per keyframe, the margin, the streak, the best window's position (published or not), the
truth and the status. :func:`calibrate` fits a :class:`Calibration` on such attempts and
reports its reliability; :func:`reliability` scores a calibration on held-out attempts.
:func:`oracle_errors` aligns the same keyframe windows to the *true* reference stretch
(the offline paper protocol's oracle window), the yardstick the streaming fixes are
compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from seqvpr.localization.calibration import CHI2_95, Calibration, calibrated_settings, fit_calibration
from seqvpr.localization.config import LocalizerConfig
from seqvpr.localization.map import Map
from seqvpr.localization.streaming import Status, StreamingLocalizer

__all__ = ["Attempts", "keyframe_attempts", "calibrate", "calibrate_map", "confidences", "reliability",
           "oracle_errors"]


@dataclass(frozen=True)
class Attempts:
    """Per keyframe with an alignment (K of them).

    Attributes:
        traverse: query traverse name per attempt (K,).
        stamps: keyframe stamps (K,).
        margins: 1 - c1/c2 (K,).
        streaks: consecutive consistent keyframes (K,).
        positions: best window's position (K, 2); published or not.
        headings: reference heading there (K,).
        truths: true positions (K, 2).
        published: whether the fix was published (K,).
        covariances: published covariance, NaN when not published (K, 2, 2).
        confidences: confidence (K,).
        vetoed: the fix was withheld whatever the calibration says (its confidence is 0):
            its newest keyframe did not resemble the reference where the hypothesis put it,
            or the query held standing time (K,).
        query_times: the keyframe times of each attempt's query (K lists).
    """

    traverse: np.ndarray
    stamps: np.ndarray
    margins: np.ndarray
    streaks: np.ndarray
    positions: np.ndarray
    headings: np.ndarray
    truths: np.ndarray
    published: np.ndarray
    covariances: np.ndarray
    confidences: np.ndarray
    vetoed: np.ndarray
    query_times: list

    @property
    def errors_m(self) -> np.ndarray:
        return np.hypot(*(self.positions - self.truths).T)

    def select(self, keep: np.ndarray) -> Attempts:
        """The attempts where the boolean mask ``keep`` (K,) is true."""
        fields = {name: getattr(self, name)[keep] for name in _ARRAY_FIELDS}
        return Attempts(**fields, query_times=[t for t, k in zip(self.query_times, keep) if k])

    @staticmethod
    def concatenate(parts: Sequence[Attempts]) -> Attempts:
        """One :class:`Attempts` holding all of ``parts``."""
        fields = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAY_FIELDS}
        return Attempts(**fields, query_times=[t for p in parts for t in p.query_times])

    def along_cross(self) -> tuple[np.ndarray, np.ndarray]:
        """Truth minus estimate along and across the estimate's heading, metres."""
        delta = self.truths - self.positions
        cosine, sine = np.cos(self.headings), np.sin(self.headings)
        return delta[:, 0] * cosine + delta[:, 1] * sine, -delta[:, 0] * sine + delta[:, 1] * cosine


_ARRAY_FIELDS = ("traverse", "stamps", "margins", "streaks", "positions", "headings", "truths", "published",
                 "covariances", "confidences", "vetoed")


def keyframe_attempts(
    reference_map: Map,
    traverses: Sequence[Any],
    descriptors: Sequence[np.ndarray],
    config: LocalizerConfig | None = None,
    calibration: Calibration | None = None,
    odometry_scale: float | None = None,
) -> Attempts:
    """Replay traverses (with their descriptors) and record every keyframe alignment.

    ``odometry_scale``: None replays without odometry; a number passes each frame's
    travelled distance (the traverse's path length) times it as odometry, e.g. 1.02 for a
    wheel odometry that reads 2 % long.
    """
    rows: list[tuple] = []
    for traverse, values in zip(traverses, descriptors):
        localizer = StreamingLocalizer(reference_map, config, calibration=calibration)
        travelled = traverse.path_length_m * (odometry_scale or 0.0)
        for stamp, value, truth, metres in zip(traverse.times_s, values, traverse.positions, travelled):
            estimate = localizer.update(float(stamp), descriptor=value,
                                        odometry=None if odometry_scale is None else float(metres))
            if not estimate.is_keyframe or not estimate.traverse:
                continue
            number = [t.name for t in reference_map.traverses].index(estimate.traverse)
            position, heading = reference_map.pose_at(number, estimate.reference_time_s)
            times = [keyframe.stamp_s for keyframe in localizer._keyframes]
            rows.append((traverse.name, stamp, localizer.last_margin, localizer.last_streak, position, heading, truth,
                         estimate.status is Status.TRACKING, estimate.covariance, estimate.confidence,
                         localizer.last_vetoed, times))
    columns = list(zip(*rows)) if rows else [[]] * 12
    return Attempts(np.array(columns[0], dtype=object), np.array(columns[1], dtype=float),
                    np.array(columns[2], dtype=float), np.array(columns[3], dtype=int),
                    np.array(columns[4], dtype=float).reshape(-1, 2),
                    np.array(columns[5], dtype=float), np.array(columns[6], dtype=float).reshape(-1, 2),
                    np.array(columns[7], dtype=bool), np.array(columns[8], dtype=float).reshape(-1, 2, 2),
                    np.array(columns[9], dtype=float), np.array(columns[10], dtype=bool), list(columns[11]))


def calibrate(attempts: Attempts, threshold: float | None = None, correct_m: float = 10.0) -> Calibration:
    """Fit confidence and covariance to validation attempts (threshold None: the fitted one).

    Vetoed attempts (never published, whatever their confidence) are left out of the fit.
    """
    attempts = attempts.select(~attempts.vetoed)
    along, cross = attempts.along_cross()
    return fit_calibration(attempts.margins, along, cross, threshold=threshold, streaks=attempts.streaks,
                           correct_m=correct_m)


def confidences(attempts: Attempts, calibration: Calibration) -> np.ndarray:
    """Each attempt's confidence under ``calibration`` (0 where the fix was vetoed), shape (K,)."""
    confidence = np.array([calibration.confidence(m, n) for m, n in zip(attempts.margins, attempts.streaks)])
    return np.where(attempts.vetoed, 0.0, confidence) if len(confidence) else confidence


def reliability(attempts: Attempts, calibration: Calibration, threshold: float | None = None,
                bins: int = 5) -> dict[str, Any]:
    """How well ``calibration`` describes ``attempts``.

    Returns a dict: the threshold (None: the calibration's ``publish_threshold``); the
    attempts and how many were vetoed; per confidence bin the mean predicted confidence
    (0 for vetoed ones), the observed share of correct fixes and the count; the share of
    published fixes (confidence >= threshold, not vetoed) whose true position
    lies inside the 95 % ellipse, over all of them and over the correct ones; the
    wrong-fix rate among them.
    """
    threshold = calibration.publish_threshold if threshold is None else threshold
    confidence = confidences(attempts, calibration)
    correct = attempts.errors_m <= calibration.correct_m
    edges = np.linspace(0, 1, bins + 1)
    table = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence >= low) & ((confidence < high) | (high == 1.0))
        if inside.any():
            table.append({"low": float(low), "high": float(high), "count": int(inside.sum()),
                          "predicted": float(confidence[inside].mean()), "observed": float(correct[inside].mean())})
    published = (confidence >= threshold) & ~attempts.vetoed
    inside_ellipse = []
    for i in np.flatnonzero(published):
        covariance = calibration.covariance(confidence[i], attempts.headings[i])
        delta = attempts.truths[i] - attempts.positions[i]
        inside_ellipse.append(float(delta @ np.linalg.solve(covariance, delta)) <= CHI2_95)
    inside_correct = [inside for inside, ok in zip(inside_ellipse, correct[published]) if ok]
    return {
        "threshold": float(threshold),
        "attempts": int(len(confidence)),
        "vetoed": int(attempts.vetoed.sum()),
        "published": int(published.sum()),
        "bins": table,
        "coverage_95": float(np.mean(inside_ellipse)) if inside_ellipse else None,
        "coverage_95_correct": float(np.mean(inside_correct)) if inside_correct else None,
        "wrong_fix_rate": float((~correct[published]).mean()) if published.any() else None,
    }


def oracle_errors(reference_map: Map, traverse: Any, values: np.ndarray, query_times: Sequence[np.ndarray],
                  config: LocalizerConfig | None = None, slack_s: float = 3.0) -> np.ndarray:
    """Error of the newest keyframe when each query is aligned to its true reference stretch.

    For each query (keyframe times within ``traverse``), the true reference times of its
    first and last keyframe are found by projecting their true positions onto the first
    map traverse's track; the window is that stretch plus ``slack_s`` each side. One GDTW
    per query (batched), like Base (G) with an oracle window.
    """
    from seqvpr.data.pairs import project_onto_polyline
    from seqvpr.localization.proposal import Window, align_windows

    config = config or LocalizerConfig()
    rows = reference_map.rows_of(0)
    track, track_times = np.asarray(reference_map.positions[rows]), np.asarray(reference_map.times[rows])
    errors = []
    for times in query_times:
        times = np.asarray(times)
        index = np.searchsorted(traverse.times_s, times)
        truth = traverse.positions[index]
        true_times, _, _ = project_onto_polyline(truth[[0, -1]], track, track_times)
        window = Window(0, float(true_times[0] - slack_s), float(true_times[1] + slack_s))
        query = values[index] / np.linalg.norm(values[index], axis=1, keepdims=True)
        alignment = align_windows(reference_map, [window], times, query, config)
        position, _ = reference_map.pose_at(0, alignment.end_times[0])
        errors.append(float(np.hypot(*(position - truth[-1]))))
    return np.array(errors)


def calibrate_map(
    map_dir: Any,
    traverse_dirs: Sequence[Any],
    model: Any,
    config: LocalizerConfig | None = None,
    *,
    correct_m: float = 10.0,
) -> tuple[Calibration, dict[str, Any]]:
    """Calibrate a map on validation traverses; writes ``calibration.yaml``,
    ``calibration_report.json`` and ``reliability.png`` into the map folder.

    Args:
        map_dir: the map folder.
        traverse_dirs: validation traverse folders (not the map's own traverses).
        model: the map's encoder checkpoint.
        config: localizer settings (the threshold the fixes are published at). With
            ``query_spacing_m`` set, the traverses are replayed with their travelled
            distance as odometry, so the calibration describes the localizer on distance.
        correct_m: a fix within this distance counts as correct.

    Returns:
        The calibration and the reliability report on the validation attempts.
    """
    import json
    from pathlib import Path

    from seqvpr.data.traverse import read_traverse
    from seqvpr.errors import SeqvprError
    from seqvpr.extraction import encode_images
    from seqvpr.io import atomic_path
    from seqvpr.localization.calibration import save_calibration
    from seqvpr.localization.plots import plot_reliability

    config = config or LocalizerConfig()
    localizer = StreamingLocalizer.from_map(map_dir, config, model=model)
    traverses = [read_traverse(directory) for directory in traverse_dirs]
    names = {t.name for t in localizer.map.traverses}
    for traverse in traverses:
        if traverse.name in names:
            raise SeqvprError(f"calibrate: {traverse.name} is in the map; calibrate on other traverses")
    descriptors = []
    for traverse in traverses:
        values, kept, bad = encode_images(localizer.encoder, [traverse.image_path(i) for i in range(len(traverse))],
                                          device=config.device)
        if bad:
            raise SeqvprError(f"calibrate: unreadable image(s) in {traverse.name}, e.g. {bad[0]}")
        descriptors.append(values)
    # Keyframes spaced by odometry: the validation traverses' own travelled distance is the odometry.
    odometry_scale = 1.0 if config.query_spacing_m is not None else None
    attempts = keyframe_attempts(localizer.map, traverses, descriptors, config, Calibration(), odometry_scale)
    calibration = replace(calibrate(attempts, config.confidence_threshold, correct_m),
                          settings=calibrated_settings(config))
    report = reliability(attempts, calibration, config.confidence_threshold)
    report["traverses"] = [t.name for t in traverses]
    save_calibration(calibration, map_dir)
    with atomic_path(Path(map_dir) / "calibration_report.json") as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_reliability(Path(map_dir) / "reliability.png", report, "validation")
    return calibration, report
