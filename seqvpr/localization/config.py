"""Configuration of the streaming localizer and of map building (YAML in ``config/``).

``config/localization.yaml`` maps 1:1 onto :class:`LocalizerConfig`; every key there is
commented with its meaning, unit and default. Maps are built with :class:`MapConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from seqvpr.errors import ConfigError

__all__ = ["LocalizerConfig", "MapConfig"]


@dataclass(frozen=True)
class LocalizerConfig:
    """How :class:`~seqvpr.localization.StreamingLocalizer` picks keyframes and windows.

    Attributes:
        query_period_s: a keyframe every this many seconds of camera time (without odometry).
        query_spacing_m: with odometry, a keyframe every this many metres travelled instead,
            and the query is aligned on distance (travelled distance against the map's path
            length, expected slope 1; ``speed_ratios`` unused); None keeps the time rule
            even when odometry is given.
        query_length: keyframes in the ring buffer, the query sequence (paper: 10).
        min_query_length: keyframes needed before the first fix is attempted.
        top_k: faiss neighbours per keyframe in a global proposal.
        max_windows: candidate windows of a global proposal (the best-voted clusters).
        max_speed_ratio: the fastest the query may move through the reference, in
            reference seconds per query second; sizes the windows.
        window_slack_s: reference seconds added at both ends of every window.
        cluster_gap_s: candidates whose implied reference times differ by more than this
            start a new window.
        distinct_m: the runner-up window must end more than this far (metres) from the best.
        confidence_threshold: fixes below this confidence are not published (status LOST);
            None: the calibration's ``publish_threshold`` (the lowest confidence at which
            the validation fixes were at most 1 % wrong).
        global_every: while a hypothesis is tracked, a global proposal every this many
            keyframes (a kidnapped robot recovers); in between only windows around the
            prediction.
        tracking_slack_s: reference seconds around the predicted time in a tracking window.
        consistency_m: the best window agrees with the motion when its newest frame lies
            within this path distance (metres) of where the previous keyframe's best
            window, moved on at its aligned speed, predicts it; consecutive agreeing
            keyframes (the streak) feed the confidence.
        speed_ratios: expected speed ratios e (reference seconds per query second) of the
            subsequence GDTW; every window is aligned at each, and the lowest cost (per
            unit of query time) wins. (1.0,) is the paper's single e = 1.
        lam: GDTW regularisation weight lambda (paper: 0.1; 1.0 chosen on validation).
        grid_size: GDTW candidates per knot M (paper: 50).
        refinements: GDTW grid refinements (paper: 3).
        reset_backward_s: a stamp this far (seconds) behind the newest resets the buffer;
            smaller steps back are dropped as out of order.
        max_keyframe_gap_s: a gap between time-spaced keyframes longer than this resets
            the buffer (odometry-spaced keyframes may lie any time apart: a robot that
            stands makes none, and the alignment on distance bridges a camera dropout).
        odometry_timeout_s: with ``query_spacing_m``, once odometry has been seen, frames
            that keep arriving without it for longer than this make the localizer fall
            back to time-spaced keyframes (counted in ``odometry_timeouts``) until it
            returns; otherwise a silent odometry source would stop all keyframes.
        still_similarity: time-spaced keyframes only: a due keyframe whose descriptor
            resembles the last keyframe's by at least this cosine (of the encoder's unit
            descriptors, before centring) is taken for a robot standing still. It is not
            added, and the time until a keyframe differs again is left out of the query's
            time axis (and out of the carried fix and the running mean), so that the end of
            the warp does not run on along the street while the robot stands. Since the
            moving clock only guesses how far the robot crept across the stop, fixes are
            withheld (status LOST) while the query holds standing time: about
            ``query_length`` keyframes after it moves off. None (the default) keeps every
            keyframe. Encoder-dependent: choose it from frames of a standing robot.
        centring_keyframes: on a map built with condition centring (the default), each
            keyframe descriptor has the running mean of the query's recent keyframe
            descriptors subtracted (about this many keyframes; the map's mean stands in
            before there are that many) and is normalised again, so that the query's
            condition (light, weather) cancels as the map's did. Ignored on a map built
            without centring.
        min_newest_similarity: on a condition-centred map, a hypothesis is not published
            (confidence 0) when its newest keyframe resembles the reference at its warped
            time no more than this (cosine of the centred descriptors; unrelated places
            score about 0): the query's older keyframes can carry a hypothesis whose newest
            frame is elsewhere, as right after a kidnap. None disables the check.
        device: torch device of the encoder and of GDTW's matrix products.
    """

    query_period_s: float = 1.0
    query_spacing_m: float | None = None
    query_length: int = 10
    min_query_length: int = 5
    top_k: int = 10
    max_windows: int = 8
    max_speed_ratio: float = 2.0
    window_slack_s: float = 2.0
    cluster_gap_s: float = 6.0
    distinct_m: float = 25.0
    confidence_threshold: float | None = None
    global_every: int = 1
    tracking_slack_s: float = 4.0
    consistency_m: float = 8.0
    speed_ratios: tuple[float, ...] = (0.7, 1.0, 1.4)
    lam: float = 1.0
    grid_size: int = 50
    refinements: int = 3
    reset_backward_s: float = 1.0
    max_keyframe_gap_s: float = 30.0
    odometry_timeout_s: float = 2.0
    still_similarity: float | None = None
    centring_keyframes: int = 60
    min_newest_similarity: float | None = 0.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        positive = ("query_period_s", "max_speed_ratio", "distinct_m", "reset_backward_s", "max_keyframe_gap_s",
                    "odometry_timeout_s", "consistency_m")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"LocalizerConfig.{name} must be a positive number, got {value!r}")
        for name in ("window_slack_s", "cluster_gap_s", "tracking_slack_s", "lam"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"LocalizerConfig.{name} must be a number >= 0, got {value!r}")
        if not (isinstance(self.speed_ratios, tuple) and self.speed_ratios and all(
                isinstance(ratio, int | float) and math.isfinite(ratio) and 0 < ratio <= self.max_speed_ratio
                for ratio in self.speed_ratios)):
            raise ConfigError(
                f"LocalizerConfig.speed_ratios must be a non-empty list of numbers in (0, max_speed_ratio "
                f"= {self.max_speed_ratio}], got {self.speed_ratios!r}"
            )
        if self.query_spacing_m is not None and not self.query_spacing_m > 0:
            raise ConfigError(f"LocalizerConfig.query_spacing_m must be > 0 or null, got {self.query_spacing_m!r}")
        for name, low in (("query_length", 2), ("min_query_length", 2), ("top_k", 1), ("max_windows", 1),
                          ("global_every", 1), ("grid_size", 2), ("refinements", 0), ("centring_keyframes", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"LocalizerConfig.{name} must be an integer >= {low}, got {value!r}")
        if self.min_query_length > self.query_length:
            raise ConfigError(
                f"LocalizerConfig.min_query_length ({self.min_query_length}) exceeds query_length "
                f"({self.query_length})"
            )
        if self.min_newest_similarity is not None and not (
                isinstance(self.min_newest_similarity, int | float) and -1.0 <= self.min_newest_similarity <= 1.0):
            raise ConfigError(f"LocalizerConfig.min_newest_similarity must be in [-1, 1] or null, got "
                              f"{self.min_newest_similarity!r}")
        if self.still_similarity is not None and not (
                isinstance(self.still_similarity, int | float) and -1.0 <= self.still_similarity <= 1.0):
            raise ConfigError(f"LocalizerConfig.still_similarity must be in [-1, 1] or null, got "
                              f"{self.still_similarity!r}")
        if self.confidence_threshold is not None and not 0.0 <= self.confidence_threshold <= 1.0:
            raise ConfigError(
                f"LocalizerConfig.confidence_threshold must be in [0, 1], got {self.confidence_threshold!r}"
            )


@dataclass(frozen=True)
class MapConfig:
    """How a map indexes its reference frames.

    Attributes:
        reference_spacing_m: keep a reference frame only when it is more than this far
            (path length) past the last kept one; 0 keeps every frame. Fewer, evenly
            spaced frames make shorter windows; GDTW interpolates between them.
        exact_max_frames: maps up to this many frames get an exact index (faiss
            ``IndexFlatIP``); larger maps get ``large_index``.
        large_index: ``"ivf"`` (IVF-Flat) or ``"ivfpq"`` (IVF-PQ) beyond ``exact_max_frames``.
        nlist: IVF cells; None = round(sqrt(N)).
        nprobe: IVF cells searched per query.
        pq_subquantizers: IVF-PQ bytes per vector; must divide the indexed dimension
            (``proposal_dim``, or the descriptors' when they are indexed whole).
        batch_size: images per encoder batch when building.
        device: torch device of the encoder when building.
        centre: condition centring: subtract from every descriptor its traverse's mean
            descriptor (of the unit-norm descriptors) and normalise again. What a condition
            adds to every image of a traverse (its light, weather, exposure) is then gone,
            and the localizer does the same to the query with a running mean. False keeps
            the encoder's descriptors as they are.
        proposal_dim: the faiss index (window proposals only) holds the descriptors
            projected onto their first ``proposal_dim`` principal directions and normalised
            again: its scan reads ``proposal_dim / D`` of the bytes an index of the whole
            descriptors reads. Its shortlist of each keyframe's neighbours is then ranked by
            exact inner products with the whole descriptors (:meth:`Map.neighbours`), and
            the alignment always uses the whole descriptors. Default 256; None, or a value
            >= D, indexes the whole descriptors.
    """

    reference_spacing_m: float = 1.0
    exact_max_frames: int = 100_000
    large_index: Literal["ivf", "ivfpq"] = "ivf"
    nlist: int | None = None
    nprobe: int = 16
    pq_subquantizers: int = 64
    batch_size: int = 16
    device: str = "cpu"
    centre: bool = True
    proposal_dim: int | None = 256

    def __post_init__(self) -> None:
        if self.proposal_dim is not None and (not isinstance(self.proposal_dim, int) or self.proposal_dim < 1):
            raise ConfigError(f"MapConfig.proposal_dim must be an integer >= 1 or null, got {self.proposal_dim!r}")
        if not isinstance(self.centre, bool):
            raise ConfigError(f"MapConfig.centre must be true or false, got {self.centre!r}")
        if self.large_index not in ("ivf", "ivfpq"):
            raise ConfigError(f"MapConfig.large_index must be 'ivf' or 'ivfpq', got {self.large_index!r}")
        if not (isinstance(self.reference_spacing_m, int | float) and self.reference_spacing_m >= 0):
            raise ConfigError(f"MapConfig.reference_spacing_m must be >= 0, got {self.reference_spacing_m!r}")
        for name in ("exact_max_frames", "nprobe", "pq_subquantizers", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"MapConfig.{name} must be an integer >= 1, got {value!r}")
        if self.nlist is not None and (not isinstance(self.nlist, int) or self.nlist < 1):
            raise ConfigError(f"MapConfig.nlist must be an integer >= 1 or null, got {self.nlist!r}")
