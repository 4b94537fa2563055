"""Offline replay: a recorded source fed frame by frame through the streaming localizer.

A source is a sequence of :class:`Frame` (stamp, image or descriptor, optional ground
truth and odometry) from a prepared traverse folder (:func:`traverse_frames`) or a bag
(:func:`seqvpr.localization.bags.bag_frames`). :func:`replay` runs the same
:class:`~seqvpr.localization.StreamingLocalizer` a robot runs, :func:`summarize` scores
it, :func:`write_replay` writes ``estimates.csv``, ``summary.json``, ``summary.md`` and the
plots.

Scores (fixed = a frame whose estimate has a position):

- ``accuracy``: share of fixed frames within 2/3/5/10 m of the truth;
- ``availability``: share of frames with a fix;
- ``wrong_fix_rate``: share of fixed frames more than ``wrong_m`` (10 m) off;
- ``time_to_first_fix_s``: stamp of the first fix minus the first frame's;
- ``recovery_s``: per kidnap (a jump of the truth by more than ``kidnap_m`` between two
  frames), the time from the jump to the next correct fix; ``null`` if none came.

Each is given over all frames and over keyframes only (fresh alignments; frames in
between carry the last fix forward).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqvpr.io import atomic_path
from seqvpr.localization.streaming import Estimate, Status, StreamingLocalizer

__all__ = ["Frame", "ReplayResult", "traverse_frames", "replay", "summarize", "write_replay", "THRESHOLDS_M"]

THRESHOLDS_M = (2.0, 3.0, 5.0, 10.0)
CSV_COLUMNS = (
    "stamp_s", "status", "is_keyframe", "easting_m", "northing_m", "utm_zone", "heading_rad", "latitude_deg",
    "longitude_deg", "cov_ee_m2", "cov_en_m2", "cov_nn_m2", "confidence", "traverse", "reference_time_s",
    "latency_s", "true_easting_m", "true_northing_m", "error_m",
)


@dataclass(frozen=True)
class Frame:
    """One recorded camera frame.

    Attributes:
        stamp_s: capture time, seconds.
        image: HxWx3 uint8 RGB array, or None (then ``descriptor``), or a loader
            (a zero-argument callable returning the array) so that images load lazily.
        descriptor: the frame's descriptor, shape (D,), or None.
        truth: true (easting, northing) in the map's UTM zone, metres, or None.
        odometry: passed through to ``update``.
    """

    stamp_s: float
    image: Any = None
    descriptor: np.ndarray | None = None
    truth: tuple[float, float] | None = None
    odometry: Any = None


@dataclass(frozen=True)
class ReplayResult:
    """Estimates of a replay, one per frame, with the truths and the localizer's counters.

    Attributes:
        estimates: (F,) estimates.
        truths: (F, 2) true (easting, northing), NaN where unknown.
        counters: the localizer's counters after the run.
    """

    estimates: list[Estimate]
    truths: np.ndarray
    counters: dict[str, int]

    @property
    def errors_m(self) -> np.ndarray:
        """Distance of each estimate from the truth, shape (F,), NaN without fix or truth."""
        positions = np.array([[e.easting, e.northing] for e in self.estimates]).reshape(-1, 2)
        return np.hypot(*(positions - self.truths).T)


def traverse_frames(traverse: Any, descriptors: np.ndarray | None = None,
                    odometry_scale: float | None = None) -> Iterator[Frame]:
    """Frames of a prepared traverse, with its poses as the truth.

    Args:
        traverse: a :class:`seqvpr.data.traverse.Traverse`.
        descriptors: precomputed descriptors (N, D) of its images; None loads the images.
        odometry_scale: None gives no odometry; a number gives each frame the distance
            travelled along the traverse's poses (``path_length_m``) times it as odometry:
            odometry derived from the ground truth, what a wheel odometry reading
            ``odometry_scale`` times the true distance would report.
    """
    from seqvpr.data.images import read_rgb

    travelled = None if odometry_scale is None else odometry_scale * traverse.path_length_m
    for i in range(len(traverse)):
        truth = (float(traverse.positions[i, 0]), float(traverse.positions[i, 1]))
        odometry = None if travelled is None else float(travelled[i])
        if descriptors is not None:
            yield Frame(float(traverse.times_s[i]), descriptor=descriptors[i], truth=truth, odometry=odometry)
        else:
            path = traverse.image_path(i)
            yield Frame(float(traverse.times_s[i]), image=lambda path=path: read_rgb(path), truth=truth,
                        odometry=odometry)


def replay(localizer: StreamingLocalizer, frames: Iterable[Frame], *, progress: bool = False,
           total: int | None = None) -> ReplayResult:
    """Feed frames through ``localizer.update`` in order; images load only for keyframes' sake lazily."""
    from tqdm import tqdm

    estimates, truths = [], []
    for frame in tqdm(frames, total=total, unit="frame", desc="localize", disable=not progress):
        image = frame.image
        if callable(image):
            image = _load_or_corrupt(image)
        estimates.append(localizer.update(frame.stamp_s, image=image, descriptor=frame.descriptor,
                                          odometry=frame.odometry))
        truths.append(frame.truth if frame.truth is not None else (math.nan, math.nan))
    return ReplayResult(estimates, np.asarray(truths, dtype=np.float64).reshape(-1, 2), localizer.counters)


def _load_or_corrupt(loader: Any) -> Any:
    """The loaded image; an unreadable one is passed on as an empty array (counted as corrupt)."""
    try:
        return loader()
    except (OSError, ValueError):
        return np.zeros((0, 0, 3), np.uint8)


def summarize(result: ReplayResult, *, wrong_m: float = 10.0, kidnap_m: float = 50.0) -> dict[str, Any]:
    """Scores of a replay (see the module docstring), as plain JSON-able values."""
    estimates = result.estimates
    stamps = np.array([e.stamp_s for e in estimates])
    keyframe = np.array([e.is_keyframe for e in estimates], dtype=bool)
    errors = result.errors_m
    fixed = np.array([e.has_fix for e in estimates], dtype=bool)
    summary: dict[str, Any] = {"frames": len(estimates), "keyframes": int(keyframe.sum())}
    for name, subset in (("all_frames", np.ones(len(estimates), bool)), ("keyframes", keyframe)):
        judged = subset & fixed & np.isfinite(errors)
        count = int(judged.sum())
        summary[name] = {
            "frames": int(subset.sum()),
            "fixes": int((subset & fixed).sum()),
            "availability": _share(int((subset & fixed).sum()), int(subset.sum())),
            "accuracy": {f"{t:g}m": _share(int((errors[judged] <= t).sum()), count) for t in THRESHOLDS_M},
            "wrong_fix_rate": _share(int((errors[judged] > wrong_m).sum()), count),
            "median_error_m": float(np.median(errors[judged])) if count else None,
        }
    first_fix = np.flatnonzero(fixed)
    summary["time_to_first_fix_s"] = float(stamps[first_fix[0]] - stamps[0]) if first_fix.size else None
    summary["recovery_s"] = _recoveries(stamps, result.truths, errors, fixed, wrong_m, kidnap_m)
    latencies = np.array([e.latency_s for e in estimates])[keyframe]
    summary["keyframe_latency_ms"] = (
        {"p50": float(np.percentile(latencies, 50) * 1e3), "p99": float(np.percentile(latencies, 99) * 1e3)}
        if latencies.size else None
    )
    summary["statuses"] = {s.value: int(sum(e.status is s for e in estimates)) for s in Status}
    summary["counters"] = dict(result.counters)
    summary["wrong_m"], summary["kidnap_m"] = wrong_m, kidnap_m
    return summary


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _recoveries(stamps, truths, errors, fixed, wrong_m, kidnap_m) -> list[float | None]:
    jumps = np.flatnonzero(np.hypot(*np.diff(truths, axis=0).T) > kidnap_m) + 1
    recoveries: list[float | None] = []
    for jump in jumps:
        correct = np.flatnonzero(fixed[jump:] & (errors[jump:] <= wrong_m))
        recoveries.append(float(stamps[jump + correct[0]] - stamps[jump]) if correct.size else None)
    return recoveries


def write_replay(out: str | Path, result: ReplayResult, summary: dict[str, Any], *, title: str = "") -> None:
    """Write ``estimates.csv``, ``summary.json``, ``summary.md``, ``trajectory.png``, ``error_over_time.png``."""
    from seqvpr.localization.plots import plot_error_over_time, plot_trajectory

    out = Path(out)
    with atomic_path(out / "estimates.csv") as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for estimate, truth, error in zip(result.estimates, result.truths, result.errors_m):
            writer.writerow(_row(estimate, truth, error))
    with atomic_path(out / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with atomic_path(out / "summary.md") as temporary:
        temporary.write_text(summary_markdown(summary, title), encoding="utf-8")
    plot_trajectory(out / "trajectory.png", result, title)
    plot_error_over_time(out / "error_over_time.png", result, title)


def _row(estimate: Estimate, truth: np.ndarray, error: float) -> list[str]:
    def number(value: float, digits: int) -> str:
        return "" if not math.isfinite(value) else f"{value:.{digits}f}"

    covariance = estimate.covariance
    zone = f"{estimate.utm_zone}{estimate.utm_letter}" if estimate.utm_zone else ""
    return [
        f"{estimate.stamp_s:.6f}", estimate.status.value, int(estimate.is_keyframe),
        number(estimate.easting, 4), number(estimate.northing, 4), zone, number(estimate.heading_rad, 6),
        number(estimate.latitude, 8), number(estimate.longitude, 8), number(covariance[0, 0], 4),
        number(covariance[0, 1], 4), number(covariance[1, 1], 4), f"{estimate.confidence:.4f}",
        estimate.traverse, number(estimate.reference_time_s, 6), f"{estimate.latency_s:.6f}",
        number(truth[0], 4), number(truth[1], 4), number(error, 3),
    ]


def summary_markdown(summary: dict[str, Any], title: str = "") -> str:
    """The summary as a Markdown table (one row for all frames, one for keyframes)."""
    def percent(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f}"

    lines = [f"# {title or 'Localization replay'}", "",
             "| frames | count | fixes | availability % | " + " | ".join(f"≤{t:g} m %" for t in THRESHOLDS_M)
             + f" | wrong fixes (>{summary['wrong_m']:g} m) % | median error m |",
             "|---|---|---|---|" + "---|" * len(THRESHOLDS_M) + "---|---|"]
    for name in ("all_frames", "keyframes"):
        part = summary[name]
        median = "–" if part["median_error_m"] is None else f"{part['median_error_m']:.2f}"
        lines.append(f"| {name.replace('_', ' ')} | {part['frames']} | {part['fixes']} | "
                     f"{percent(part['availability'])} | "
                     + " | ".join(percent(part["accuracy"][f"{t:g}m"]) for t in THRESHOLDS_M)
                     + f" | {percent(part['wrong_fix_rate'])} | {median} |")
    first = summary["time_to_first_fix_s"]
    lines += ["", f"- time to first fix: {'never' if first is None else f'{first:.1f} s'}"]
    if summary["recovery_s"]:
        recoveries = ", ".join("never" if r is None else f"{r:.1f} s" for r in summary["recovery_s"])
        lines.append(f"- recovery after kidnap(s): {recoveries}")
    if summary["keyframe_latency_ms"]:
        latency = summary["keyframe_latency_ms"]
        lines.append(f"- keyframe latency: p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms")
    odometry = summary.get("odometry")
    if odometry:
        lines.append(f"- odometry: {odometry['source']} (scale {odometry['scale']:g}), keyframes every "
                     f"{odometry['query_spacing_m']:g} m; {odometry['frames_with_odometry']} of "
                     f"{summary['frames']} frames had odometry")
    elif "odometry" in summary:
        lines.append("- odometry: none (keyframes on time)")
    lines.append("- counters: " + ", ".join(f"{k} {v}" for k, v in summary["counters"].items()))
    return "\n".join(lines) + "\n"
