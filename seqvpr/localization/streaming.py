"""The streaming localizer: camera frames in, geotagged pose estimates out, frame by frame.

Every ``query_period_s`` of camera time (or every ``query_spacing_m`` of odometry) a frame
becomes a keyframe: its descriptor (given, or computed by the encoder), condition-centred
when the map is (the running mean of the query's keyframes subtracted, see
:mod:`seqvpr.localization.map`), joins a ring buffer of the last ``query_length``
keyframes, the query (with odometry and ``query_spacing_m``: aligned on travelled distance
rather than time, see :meth:`StreamingLocalizer._align`). Candidate reference windows are proposed
from the map (:mod:`seqvpr.localization.proposal`), the query is aligned to all of them in
one batched subsequence GDTW (at each of ``speed_ratios``), and the lowest-cost window
gives the hypothesis: the reference pose at the warped time of the newest keyframe.

A wrong window chosen by perceptual aliasing jumps around from keyframe to keyframe; a
correct one agrees with the motion since the previous keyframe. So every keyframe's
hypothesis is checked against the previous one moved on at its aligned speed: within
``consistency_m`` of path it extends the *streak* of consistent keyframes, else the streak
restarts at 0. The confidence (:mod:`seqvpr.localization.calibration`) is the calibrated
probability that the hypothesis is correct given its margin over the best window elsewhere
and its streak; a hypothesis is published as a fix (status TRACKING) when the confidence
reaches ``confidence_threshold`` (and, on a centred map, its newest keyframe resembles the
reference where the hypothesis puts it: ``min_newest_similarity``; with ``still_similarity``,
keyframes that look like the last one are taken for standing and left out of the query's
time axis, and no fix is published while the query holds such a stop). The hypothesis is
tracked whether or not it is published, so the proposals, the margin and the streak do not
depend on the calibration (which is fitted on them). Frames between keyframes get the last
fix carried forward along the reference at the aligned speed (by odometry when the fix was
aligned on distance).

Robustness: a stamp equal to the newest is a duplicate and a stamp slightly behind it is
out of order (both dropped and counted); a jump back of more than ``reset_backward_s``
(a replayed bag restarting) or a gap of more than ``max_keyframe_gap_s`` between keyframes
resets the buffer. Images that are not HxWx3 uint8 arrays are counted and skipped, as are
descriptors with NaN/inf. Memory is bounded by the ring buffer and a fixed-size table of
its keyframes' inner products with the map (:class:`~seqvpr.localization.proposal.KeyframeProducts`).

Pure Python: no ROS; times are float seconds.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import math
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqvpr.data.geo import utm_to_latlon
from seqvpr.errors import SeqvprError
from seqvpr.localization.calibration import Calibration, load_calibration, settings_mismatch
from seqvpr.localization.config import LocalizerConfig
from seqvpr.localization.map import Map, load_map
from seqvpr.localization.proposal import (
    KeyframeProducts,
    Window,
    align_windows,
    decoy_windows,
    global_windows,
    tracking_window,
)

__all__ = ["Status", "Estimate", "StreamingLocalizer", "COUNTERS"]

LOGGER = logging.getLogger(__name__)
# Maps of at least this many dimensions keep each keyframe's inner products between
# alignments (KeyframeProducts). Below it the products are cheap and the cache saved nothing
# measurable (tools/bench/stream.py --sizes 5000 --dim 256), so it is not worth its table.
CACHED_PRODUCTS_MIN_DIM = 1024

COUNTERS = ("received", "keyframes", "fixes", "dropped_out_of_order", "dropped_duplicate", "resets",
            "corrupt_images", "non_finite", "odometry_timeouts", "standing_checks")
_NAN = float("nan")
CENTRING_PRIOR = 5  # keyframes the map's mean weighs as in a query's running mean


class Status(enum.Enum):
    """What the localizer can say: not enough keyframes yet, a published fix, or no fix."""

    INITIALIZING = "INITIALIZING"
    TRACKING = "TRACKING"
    LOST = "LOST"


@dataclass(frozen=True)
class Estimate:
    """The localizer's answer for one frame.

    A fix (finite position) is published exactly when ``status`` is ``TRACKING``.

    Attributes:
        stamp_s: the frame's stamp, seconds.
        status: INITIALIZING, TRACKING or LOST.
        easting, northing: UTM position, metres.
        utm_zone, utm_letter: the UTM zone number and latitude band of the position.
        heading_rad: ENU heading of the reference at the fix.
        latitude, longitude: WGS84 degrees.
        covariance: (2, 2) position covariance in (easting, northing), m^2.
        confidence: probability in [0, 1] that the fix is correct (within the
            calibration's ``correct_m``); 0 without a fix attempt.
        traverse: the matched reference traverse (on a LOST keyframe: the best window's,
            not published as a fix).
        reference_time_s: the matched time on it (likewise).
        latency_s: wall time ``update`` took for this frame.
        is_keyframe: whether this frame was a keyframe (a fresh alignment).
    """

    stamp_s: float
    status: Status
    easting: float = _NAN
    northing: float = _NAN
    utm_zone: int = 0
    utm_letter: str = ""
    heading_rad: float = _NAN
    latitude: float = _NAN
    longitude: float = _NAN
    covariance: np.ndarray = field(default_factory=lambda: np.full((2, 2), _NAN))
    confidence: float = 0.0
    traverse: str = ""
    reference_time_s: float = _NAN
    latency_s: float = 0.0
    is_keyframe: bool = False

    @property
    def has_fix(self) -> bool:
        return self.status is Status.TRACKING


@dataclass
class _Keyframe:
    stamp_s: float
    values: np.ndarray
    rows: np.ndarray | None = None
    distance_m: float | None = None  # odometry travelled, when keyframes follow odometry
    clock_s: float = 0.0  # the moving clock (camera time less the time judged standing)
    serial: int = 0  # keyframes added before this one (its products' key)


@dataclass(frozen=True)
class _Fix:
    traverse: int
    reference_time_s: float
    stamp_s: float  # on the moving clock (the camera time without still_similarity)
    rate: float
    confidence: float
    covariance: np.ndarray
    distance_m: float | None = None  # odometry at the fix, when it was aligned on distance
    path_m: float | None = None  # the reference's path length at reference_time_s, then


@dataclass(frozen=True)
class _Hypothesis:
    """The best window of the last keyframe, published or not, and its streak."""

    traverse: int
    reference_time_s: float
    stamp_s: float  # on the moving clock (the camera time without still_similarity)
    rate: float
    streak: int

    def predicted_time_s(self, stamp_s: float) -> float:
        return self.reference_time_s + self.rate * (stamp_s - self.stamp_s)


def extend_streak(
    previous: _Hypothesis | None, traverse: int, path_m: float, stamp_s: float, path_at: Any, consistency_m: float
) -> int:
    """The streak of a new hypothesis at path position ``path_m`` of ``traverse`` at ``stamp_s``.

    Args:
        previous: the previous keyframe's hypothesis, or None.
        traverse: the new hypothesis' traverse.
        path_m: its path position (metres along the traverse).
        stamp_s: the keyframe's stamp.
        path_at: ``path_at(traverse, reference_time_s) -> metres`` along the traverse.
        consistency_m: the largest disagreement (metres of path) that counts as consistent.

    Returns:
        previous streak + 1 when the new hypothesis lies within ``consistency_m`` of the
        previous one moved on to ``stamp_s``, else 0.
    """
    if previous is None or previous.traverse != traverse:
        return 0
    predicted = path_at(traverse, previous.predicted_time_s(stamp_s))
    return previous.streak + 1 if abs(predicted - path_m) <= consistency_m else 0


class StreamingLocalizer:
    """Localizes a stream of camera frames against a map.

    Args:
        reference_map: the map.
        config: keyframe, proposal and alignment settings.
        encoder: a :class:`seqvpr.vpr.NetVLADEncoder` whose fingerprint is the map's, or
            None (then every ``update`` must pass a descriptor).
        calibration: confidence/covariance calibration; default the map's
            ``calibration.yaml``, else the built-in uncalibrated default.
    """

    def __init__(
        self,
        reference_map: Map,
        config: LocalizerConfig | None = None,
        encoder: Any = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.map = reference_map
        self.config = config or LocalizerConfig()
        self.encoder = encoder
        if encoder is not None:
            encoder.to(self.config.device).eval()
        calibration = calibration or load_calibration(reference_map.root)
        self.calibration = calibration or Calibration()
        if calibration is None and self.config.confidence_threshold is None:
            LOGGER.warning("%s has no calibration: confidences are the built-in guess and fixes are published from "
                           "%.2f, with an unknown share of them wrong; calibrate it on a traverse with poses that "
                           "is not the map's (`seqvpr map calibrate MAP TRAVERSE... --model CKPT`)",
                           reference_map.root, self.calibration.publish_threshold)
        changed = settings_mismatch(self.calibration, self.config)
        if changed:
            warnings.warn(f"the calibration of {reference_map.root} was fitted with other localizer settings "
                          f"({'; '.join(changed)}): its confidences and threshold do not hold for these; "
                          "recalibrate with `seqvpr map calibrate --config` and the settings you localize with",
                          UserWarning, stacklevel=2)
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._keyframes: deque[_Keyframe] = deque(maxlen=self.config.query_length)
        # Short descriptors multiply faster than the cache looks them up.
        self._products = (KeyframeProducts(reference_map.descriptors, self.config.query_length, self.config.device)
                          if reference_map.dim >= CACHED_PRODUCTS_MIN_DIM else None)
        self._last_stamp: float | None = None
        self._odometry_position: np.ndarray | None = None
        self._odometry_distance = 0.0
        self._odometry_seen = False
        self._odometry_stamp = 0.0  # camera stamp of the last odometry reading
        self._keyframe_distance: float | None = None
        # Time-spaced keyframes with still_similarity: the camera time judged standing is
        # left out of the query's time axis (the moving clock, _clock).
        self._check_stamp: float | None = None  # the last keyframe or standing check
        self._last_raw: np.ndarray | None = None  # the last keyframe's descriptor, before centring
        self._standing_s = 0.0
        self._standing_since: float | None = None
        self._status = Status.INITIALIZING
        self._fix: _Fix | None = None
        self._since_global = 0
        self._hypothesis: _Hypothesis | None = None
        self._last_margin = 0.0
        self._last_streak = 0
        self._last_vetoed = False
        self._prior_mean = reference_map.centre_prior if reference_map.centred else None
        self._mean, self._mean_count = self._prior_mean, 0

    @classmethod
    def from_map(
        cls,
        map_dir: str | Path,
        config: LocalizerConfig | None = None,
        model: str | Path | None = None,
        device: str | None = None,
    ) -> StreamingLocalizer:
        """Open a map folder and, optionally, the encoder checkpoint that made it.

        Args:
            map_dir: the map folder.
            config: settings (default :class:`LocalizerConfig`).
            model: encoder checkpoint; None means descriptors are passed to ``update``.
            device: torch device; None keeps ``config.device``.

        Raises:
            SeqvprError: a bad map, or an encoder whose fingerprint is not the map's.
        """
        config = config or LocalizerConfig()
        if device is not None:
            config = dataclasses.replace(config, device=device)
        reference_map = load_map(map_dir)
        encoder = None
        if model is not None:
            from seqvpr.extraction import encoder_fingerprint
            from seqvpr.vpr import load_encoder

            encoder = load_encoder(model)
            fingerprint = encoder_fingerprint(encoder)
            if fingerprint != reference_map.fingerprint:
                raise SeqvprError(
                    f"encoder {model} (fingerprint {fingerprint}) is not the encoder map {map_dir} was "
                    f"built with (fingerprint {reference_map.fingerprint}); descriptors would not compare"
                )
        return cls(reference_map, config, encoder)

    @property
    def counters(self) -> dict[str, int]:
        """Frames received, keyframes, fixes, and what was dropped or reset, by reason."""
        return dict(self._counters)

    @property
    def status(self) -> Status:
        return self._status

    def reset(self) -> None:
        """Forget the query buffer and the track (the map and counters stay)."""
        self._keyframes.clear()  # keyframe serials go on: cached products of these never match again
        self._last_stamp = None
        self._odometry_position = None
        self._odometry_seen = False
        self._keyframe_distance = None
        self._check_stamp, self._last_raw = None, None
        self._standing_s, self._standing_since = 0.0, None
        self._status = Status.INITIALIZING
        self._fix = None
        self._hypothesis = None
        self._since_global = 0
        self._mean, self._mean_count = self._prior_mean, 0

    # -- the frame loop -------------------------------------------------------------
    def update(
        self,
        stamp_s: float,
        image: np.ndarray | None = None,
        descriptor: np.ndarray | None = None,
        odometry: Any = None,
    ) -> Estimate:
        """Process one camera frame.

        Args:
            stamp_s: capture time, seconds.
            image: HxWx3 uint8 RGB array (needs an encoder), or None.
            descriptor: the frame's descriptor, shape (D,), instead of the image.
            odometry: travelled distance (float, metres) or an odometry position
                (x, y[, ...]) in metres; with ``query_spacing_m`` it spaces the keyframes.

        Returns:
            The :class:`Estimate` for this frame.

        Raises:
            SeqvprError: neither image nor descriptor, an image without encoder, or a
                descriptor of the wrong dimension.
        """
        started = time.perf_counter()
        self._counters["received"] += 1
        if image is None and descriptor is None:
            raise SeqvprError("update() needs an image or a descriptor")
        stamp = float(stamp_s)
        if not math.isfinite(stamp):
            self._counters["non_finite"] += 1
            return self._carried(self._last_stamp or 0.0, started)
        if self._last_stamp is not None:
            if stamp == self._last_stamp:
                self._counters["dropped_duplicate"] += 1
                return self._carried(stamp, started)
            if stamp < self._last_stamp:
                if self._last_stamp - stamp <= self.config.reset_backward_s:
                    self._counters["dropped_out_of_order"] += 1
                    return self._carried(stamp, started)
                LOGGER.info("stamp jumped back %.3f s: resetting", self._last_stamp - stamp)
                self._counters["resets"] += 1
                self.reset()
        self._last_stamp = stamp
        self._track_odometry(odometry, stamp)
        if not self._valid(image, descriptor):
            return self._carried(stamp, started)
        if not self._keyframe_due(stamp):
            return self._carried(stamp, started)
        values = self._describe(image, descriptor)
        if values is None:
            return self._carried(stamp, started)
        by_distance = self.config.query_spacing_m is not None and self._odometry_seen
        if not by_distance and self._keyframes and stamp - self._check_stamp > self.config.max_keyframe_gap_s:
            LOGGER.info("%.1f s without keyframes: resetting", stamp - self._check_stamp)
            self._counters["resets"] += 1
            self.reset()
            self._last_stamp = stamp
        if not by_distance and self._standing(values, stamp):
            self._counters["standing_checks"] += 1
            return self._carried(stamp, started)
        raw, values = values, self._centre(values)
        if values is None:
            return self._carried(stamp, started)
        self._check_stamp, self._last_raw = stamp, raw
        self._keyframes.append(_Keyframe(stamp, values, distance_m=self._odometry_distance if by_distance else None,
                                         clock_s=self._clock(stamp), serial=self._counters["keyframes"]))
        self._keyframe_distance = self._odometry_distance
        self._counters["keyframes"] += 1
        return self._localize(stamp, started)

    # -- keyframes ------------------------------------------------------------------
    def _track_odometry(self, odometry: Any, stamp: float) -> None:
        if odometry is None:
            if (self._odometry_seen and self.config.query_spacing_m is not None
                    and stamp - self._odometry_stamp > self.config.odometry_timeout_s):
                LOGGER.warning("no odometry for %.1f s: keyframes follow time until it returns",
                               stamp - self._odometry_stamp)
                self._counters["odometry_timeouts"] += 1
                self._odometry_seen, self._odometry_position = False, None
            return
        reading = np.atleast_1d(np.asarray(odometry, dtype=np.float64))
        if not np.all(np.isfinite(reading)):
            self._counters["non_finite"] += 1
            return
        self._odometry_seen, self._odometry_stamp = True, stamp
        if reading.size == 1:
            self._odometry_distance = float(reading[0])
        else:
            position = reading[:2]
            if self._odometry_position is not None:
                self._odometry_distance += float(np.linalg.norm(position - self._odometry_position))
            self._odometry_position = position

    def _keyframe_due(self, stamp: float) -> bool:
        if not self._keyframes:
            return True
        if self.config.query_spacing_m is not None and self._keyframe_distance is not None and self._odometry_seen:
            return self._odometry_distance - self._keyframe_distance >= self.config.query_spacing_m
        return stamp - self._check_stamp >= self.config.query_period_s - 1e-3

    def _standing(self, raw: np.ndarray, stamp: float) -> bool:
        """Whether a due time keyframe shows the robot standing (``still_similarity``): its
        descriptor resembles the last keyframe's by at least that cosine. Standing time stops
        the moving clock; the first keyframe that differs again restarts it."""
        threshold = self.config.still_similarity
        if threshold is None or self._last_raw is None:
            return False
        if float(raw @ self._last_raw) >= threshold:
            if self._standing_since is None:  # it stopped since the last check: the midpoint
                self._standing_since = 0.5 * (self._check_stamp + stamp)
            self._check_stamp = stamp
            return True
        if self._standing_since is not None:
            self._standing_s += stamp - self._standing_since
            self._standing_since = None
        return False

    def _clock(self, stamp: float) -> float:
        """The moving clock at ``stamp``: camera time less the time judged standing (frozen
        while standing). Without ``still_similarity`` it is the camera time."""
        if self._standing_since is not None:
            stamp = self._standing_since
        return stamp - self._standing_s

    def _valid(self, image: Any, descriptor: Any) -> bool:
        """Every frame's cheap check: a descriptor of the map's size and finite, or an HxWx3 uint8 image."""
        if descriptor is not None:
            values = np.asarray(descriptor)
            if values.size != self.map.dim:
                raise SeqvprError(f"descriptor must have shape ({self.map.dim},) like the map's, got {values.shape}")
            if not np.all(np.isfinite(values)):
                self._counters["non_finite"] += 1
                return False
            return True
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3 and min(image.shape[:2]) >= 2):
            self._counters["corrupt_images"] += 1
            return False
        if self.encoder is None:
            raise SeqvprError("this localizer has no encoder (model=None): pass descriptors to update()")
        return True

    def _describe(self, image: Any, descriptor: Any) -> np.ndarray | None:
        """The unit-norm descriptor of a keyframe (encoding the image), or None if degenerate."""
        if descriptor is not None:
            values = np.asarray(descriptor, dtype=np.float32).reshape(-1)
        else:
            values = self._encode(image)
        norm = float(np.linalg.norm(values))
        if not (math.isfinite(norm) and norm > 0):
            self._counters["non_finite"] += 1
            return None
        return values / norm

    def _centre(self, values: np.ndarray) -> np.ndarray | None:
        """Condition centring of a unit keyframe descriptor (maps built with it; else as is).

        The query's mean m starts at the map's mean and follows the keyframes: with n
        keyframes seen, m <- m + (x - m) / min(n + CENTRING_PRIOR, centring_keyframes),
        so the map's mean weighs as ``CENTRING_PRIOR`` keyframes at first and the mean
        then covers about the last ``centring_keyframes``. Returns (x - m) / ||x - m||, or
        None (counted as non-finite) when nothing is left of x.
        """
        if self._mean is None:
            return values
        self._mean_count += 1
        weight = 1.0 / min(self._mean_count + CENTRING_PRIOR, self.config.centring_keyframes)
        self._mean = self._mean + weight * (values - self._mean)
        centred = values - self._mean
        norm = float(np.linalg.norm(centred))
        if not norm > 1e-6:
            self._counters["non_finite"] += 1
            return None
        return (centred / norm).astype(np.float32)

    def _encode(self, image: np.ndarray) -> np.ndarray:
        import torch

        from seqvpr.vpr import images_to_tensor

        tensor = images_to_tensor([image], self.encoder.config).to(self.config.device)
        with torch.inference_mode():
            return self.encoder(tensor)[0].float().cpu().numpy()

    # -- localization ---------------------------------------------------------------
    def _localize(self, stamp: float, started: float) -> Estimate:
        config = self.config
        if len(self._keyframes) < config.min_query_length:
            self._status, self._fix, self._hypothesis = Status.INITIALIZING, None, None
            return Estimate(stamp, self._status, latency_s=time.perf_counter() - started, is_keyframe=True)
        times = np.array([keyframe.clock_s for keyframe in self._keyframes])
        clock = float(times[-1])
        values = np.stack([keyframe.values for keyframe in self._keyframes])
        travelled = [keyframe.distance_m for keyframe in self._keyframes]
        distances = None if any(d is None for d in travelled) else np.array(travelled)
        previous = self._hypothesis
        self._since_global += 1
        if previous is None or self._since_global >= config.global_every:
            # Only the map's own votes, no window around the previous hypothesis: a wrong
            # hypothesis must win again on its own, or the streak would feed itself.
            self._since_global = 0
            self._search_new_keyframes()
            rows = np.stack([keyframe.rows for keyframe in self._keyframes])
            windows = global_windows(self.map, times, rows, config)
        else:
            windows = [tracking_window(self.map, previous.traverse, previous.predicted_time_s(clock),
                                       times[-1] - times[0], config)]
        if not windows:
            self._hypothesis = None
            return self._no_fix(stamp, started, Status.LOST)
        windows.extend(decoy_windows(self.map, windows[0], config.distinct_m))
        serials = np.array([keyframe.serial for keyframe in self._keyframes])
        costs, end_times, start_times = self._align(windows, times, values, distances, serials)
        window_of = np.tile(np.arange(len(windows)), len(costs) // len(windows))
        ends = self.map.positions_at(np.array([windows[w].traverse for w in window_of]), end_times)
        best = int(np.argmin(costs))
        distinct = np.linalg.norm(ends - ends[best], axis=1) > config.distinct_m
        if not distinct.any():
            # Every window lies around the best one (a long window on a short traverse has no
            # room for decoys): decoys around the stretch the best warp actually covers.
            covered = Window(windows[window_of[best]].traverse, float(start_times[best]), float(end_times[best]))
            extra = decoy_windows(self.map, covered, config.distinct_m)
            if extra:
                more = self._align(extra, times, values, distances, serials)
                windows.extend(extra)
                window_of = np.concatenate([window_of, len(windows) - len(extra) + np.tile(
                    np.arange(len(extra)), len(more[0]) // len(extra))])
                costs, end_times, start_times = (np.concatenate([a, b]) for a, b in
                                                 zip((costs, end_times, start_times), more))
                ends = self.map.positions_at(np.array([windows[w].traverse for w in window_of]), end_times)
                distinct = np.linalg.norm(ends - ends[best], axis=1) > config.distinct_m
        margin = 0.0
        if distinct.any():
            runner_up = float(costs[distinct].min())
            margin = 1.0 - float(costs[best]) / runner_up if runner_up > 0 else 0.0
        window = windows[window_of[best]]
        span = times[-1] - times[0]
        rate = (end_times[best] - start_times[best]) / span if span > 0 else 1.0
        rate = float(np.clip(rate, 0.0, config.max_speed_ratio))
        end_time = float(end_times[best])
        end_path = self._path_at(window.traverse, end_time)
        streak = extend_streak(previous, window.traverse, end_path, clock, self._path_at, config.consistency_m)
        self._hypothesis = _Hypothesis(window.traverse, end_time, clock, rate, streak)
        confidence = self.calibration.confidence(margin, streak)
        self._last_margin, self._last_streak = margin, streak
        self._last_vetoed = self._query_spans_standing()
        if self.map.centred and config.min_newest_similarity is not None and not self._last_vetoed:
            self._last_vetoed = self._similarity_at(window.traverse, end_time, values[-1]) <= config.min_newest_similarity
        if self._last_vetoed:
            confidence = 0.0
        if self._last_vetoed or confidence < self.confidence_threshold:
            self._status, self._fix = Status.LOST, None
            return Estimate(stamp, Status.LOST, confidence=confidence, latency_s=time.perf_counter() - started,
                            is_keyframe=True, traverse=self.map.traverses[window.traverse].name,
                            reference_time_s=end_time)
        heading = self.map.pose_at(window.traverse, end_time)[1]
        self._fix = _Fix(window.traverse, end_time, clock, rate, confidence,
                         self.calibration.covariance(confidence, heading),
                         distance_m=None if distances is None else float(distances[-1]),
                         path_m=None if distances is None else end_path)
        self._status = Status.TRACKING
        self._counters["fixes"] += 1
        return self._estimate_from_fix(stamp, started, is_keyframe=True)

    def _align(self, windows: list, times: np.ndarray, values: np.ndarray, distances: np.ndarray | None = None,
               serials: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Costs, newest and oldest keyframe's reference times of every (speed ratio, window).

        When ``distances`` (every keyframe's odometry, metres) are given, the query is aligned on
        distance instead (:func:`~seqvpr.localization.proposal.align_windows` with
        ``path_unit_m = query_spacing_m``): its travelled distance against the reference's
        path length, both in units of the keyframe spacing, at the one speed ratio 1. The
        query's own speed then no longer matters: a robot that stops makes no keyframes,
        and the end of the warp cannot run ahead of it along the street.

        Returns three arrays of shape (R * W,), ratio-major (R = 1 on distance): one batched
        GDTW of every window at every expected speed ratio e of ``speed_ratios`` (the
        regulariser pulls the slope towards e; costs are comparable across ratios). With the
        keyframes' ``serials``, the inner products come from their cache
        (:class:`KeyframeProducts`; maps of at least ``CACHED_PRODUCTS_MIN_DIM`` dimensions),
        else from the product of ``values`` and the rows.
        """
        products = (None if serials is None or self._products is None
                    else functools.partial(self._products.products, serials, values))
        if distances is not None:
            spacing = float(self.config.query_spacing_m)
            alignment = align_windows(self.map, windows, (distances - distances[0]) / spacing, values, self.config,
                                      path_unit_m=spacing, inner_products=products)
        else:
            alignment = align_windows(self.map, windows, times, values, self.config,
                                      speed_ratios=self.config.speed_ratios, inner_products=products)
        return alignment.costs, alignment.end_times, alignment.start_times

    def _query_spans_standing(self) -> bool:
        """Whether the query holds time judged standing (``still_similarity``): a step between
        keyframes whose moving clock is shorter than its camera time by over half a period.

        The moving clock only guesses how far the robot went across a stop: frames of a car
        creeping to a halt or pulling away look alike too. Until the stop has left the query,
        the end of its warp may sit 10-24 m off along the street, so the fix is withheld.
        """
        if self.config.still_similarity is None or len(self._keyframes) < 2:
            return False
        stamps = np.array([keyframe.stamp_s for keyframe in self._keyframes])
        clocks = np.array([keyframe.clock_s for keyframe in self._keyframes])
        return bool(np.any(np.diff(stamps) - np.diff(clocks) > 0.5 * self.config.query_period_s))

    def _similarity_at(self, traverse: int, reference_time_s: float, values: np.ndarray) -> float:
        """Cosine of ``values`` and the map's descriptor interpolated at ``reference_time_s``."""
        rows = self.map.rows_of(traverse)
        times = self.map.times[rows]
        upper = int(np.clip(np.searchsorted(times, reference_time_s, side="right"), 1, len(times) - 1))
        span = times[upper] - times[upper - 1]
        fraction = float(np.clip((reference_time_s - times[upper - 1]) / span, 0.0, 1.0)) if span > 0 else 0.0
        reference = ((1 - fraction) * np.asarray(self.map.descriptors[rows.start + upper - 1], dtype=np.float64)
                     + fraction * np.asarray(self.map.descriptors[rows.start + upper], dtype=np.float64))
        norm = float(np.linalg.norm(reference))
        return float(reference @ values) / norm if norm > 0 else 0.0

    def _path_at(self, traverse: int, reference_time_s: float) -> float:
        """Metres of path along ``traverse`` at a reference time."""
        rows = self.map.rows_of(traverse)
        return float(np.interp(reference_time_s, self.map.times[rows], self.map.path_length_m[rows]))

    @property
    def confidence_threshold(self) -> float:
        """The confidence from which fixes are published (the config's, else the calibration's)."""
        threshold = self.config.confidence_threshold
        return self.calibration.publish_threshold if threshold is None else threshold

    @property
    def last_margin(self) -> float:
        """The margin 1 - c1/c2 of the last alignment (what the calibration maps)."""
        return self._last_margin

    @property
    def query_descriptors(self) -> np.ndarray:
        """The query as aligned: its keyframes' descriptors, oldest first, shape (m, D)
        (condition-centred when the map is); (0, D) before the first keyframe."""
        if not self._keyframes:
            return np.zeros((0, self.map.dim), dtype=np.float32)
        return np.stack([keyframe.values for keyframe in self._keyframes])

    @property
    def last_vetoed(self) -> bool:
        """Whether the last alignment's fix was withheld whatever its confidence: its newest
        keyframe did not resemble the reference where the hypothesis put it
        (``min_newest_similarity``), or the query held time judged standing (``still_similarity``)."""
        return self._last_vetoed

    @property
    def last_streak(self) -> int:
        """The streak of consistent keyframes of the last alignment."""
        return self._last_streak

    def _search_new_keyframes(self) -> None:
        pending = [keyframe for keyframe in self._keyframes if keyframe.rows is None]
        if not pending:
            return
        neighbours = self.map.neighbours(np.stack([keyframe.values for keyframe in pending]), self.config.top_k)
        for keyframe, rows in zip(pending, neighbours):
            keyframe.rows = rows

    def _carried(self, stamp: float, started: float) -> Estimate:
        """A frame between keyframes: the last fix carried along the reference to ``stamp``."""
        if self._status is Status.TRACKING and self._fix is not None:
            return self._estimate_from_fix(stamp, started, is_keyframe=False)
        return Estimate(stamp, self._status, latency_s=time.perf_counter() - started)

    def _no_fix(self, stamp: float, started: float, status: Status) -> Estimate:
        self._status, self._fix = status, None
        return Estimate(stamp, status, latency_s=time.perf_counter() - started, is_keyframe=True)

    def _estimate_from_fix(self, stamp: float, started: float, is_keyframe: bool) -> Estimate:
        """The fix carried to ``stamp``: by the odometry travelled since, when it was aligned
        on distance and odometry still arrives (a robot that stops stays where it stopped);
        else along the reference at the aligned rate."""
        fix = self._fix
        if fix.distance_m is not None and self._odometry_seen:
            rows = self.map.rows_of(fix.traverse)
            path = fix.path_m + max(self._odometry_distance - fix.distance_m, 0.0)
            reference_time = float(np.interp(path, self.map.path_length_m[rows], self.map.times[rows]))
        else:
            reference_time = fix.reference_time_s + fix.rate * (self._clock(stamp) - fix.stamp_s)
        position, heading = self.map.pose_at(fix.traverse, reference_time)
        latitude, longitude = utm_to_latlon(position[None], self.map.zone)
        return Estimate(
            stamp_s=stamp,
            status=Status.TRACKING,
            easting=float(position[0]),
            northing=float(position[1]),
            utm_zone=self.map.zone.number,
            utm_letter=self.map.zone.letter,
            heading_rad=heading,
            latitude=float(latitude[0]),
            longitude=float(longitude[0]),
            covariance=fix.covariance.copy(),
            confidence=fix.confidence,
            traverse=self.map.traverses[fix.traverse].name,
            reference_time_s=float(reference_time),
            latency_s=time.perf_counter() - started,
            is_keyframe=is_keyframe,
        )
