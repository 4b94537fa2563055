"""Reference/query sequence pairs for sequence-based VPR (DecDTW paper, appendix A.5).

Within one split:

1. Every reference traverse is cut into *reference sequences*: starts every
   ``start_spacing_m`` of path length (with +-``start_jitter_m`` uniform jitter); from a
   start, each next frame is the first one more than ``reference_spacing_m`` (5 m) of
   path past the previous, ``reference_length`` (25) frames.
2. Every query traverse offers *query sequences*: starts every
   ``query_start_spacing_m`` of path (jittered the same way); each next frame is the
   first more than ``query_period_s`` (1 s) after the previous, ``query_length`` (10)
   frames, i.e. about 1 Hz whatever the speed.
3. A query traverse matches a reference sequence between its first frame within
   ``match_radius_m`` of the reference's first frame and the next frame within that
   radius of the reference's last frame; query sequences inside that stretch are the
   candidates. Queries never come from the reference's own traverse.
4. Ground truth ("ts_best"): each query position is projected onto the reference
   polyline; the reference time interpolated at the projection is the true warp.
5. Candidates are dropped when (reason names in brackets) the largest projection
   distance exceeds ``max_projection_m`` [``far``], the ground-truth times decrease
   [``non_monotone``], the query does not move along the reference (every step of the
   projected track <= ``min_motion_m``) [``stationary``], the heading differs from the
   reference's at the true warp by more than ``max_heading_difference_deg`` on more
   than ``max_heading_fraction`` of the frames [``heading``], or the reference has a
   time gap over ``max_gap_ratio`` x its median frame gap [``reference_gap``].
6. ``queries_per_reference`` candidates are drawn per reference sequence (seeded).

Unlike the authors' script, candidates are filtered before sampling, so every reference
sequence gets its full count when it has enough valid candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from tqdm import tqdm

from seqvpr.data.geo import wrap_angle
from seqvpr.data.traverse import Traverse

__all__ = [
    "PairConfig",
    "PRESETS",
    "SequencePair",
    "DROP_REASONS",
    "distance_subsample",
    "project_onto_polyline",
    "build_pairs",
]

DROP_REASONS = ("far", "non_monotone", "stationary", "heading", "reference_gap")


@dataclass(frozen=True)
class PairConfig:
    """Parameters of the pair builder (defaults: the paper's test split).

    Attributes:
        reference_length: frames per reference sequence.
        reference_spacing_m: path length between reference frames (first frame past it).
        start_spacing_m: path length between reference sequence starts.
        start_jitter_m: uniform jitter of the start spacing.
        query_length: frames per query sequence.
        query_period_s: time between query frames (first frame past it).
        query_start_spacing_m: path length between candidate query starts.
        queries_per_reference: query sequences drawn per reference sequence.
        match_radius_m: radius for matching a query traverse to a reference's ends.
        max_projection_m: drop pairs whose query strays farther from the reference.
        min_motion_m: a query whose every projected step is at most this is stationary.
        max_heading_difference_deg: heading tolerance per frame.
        max_heading_fraction: fraction of frames allowed outside the tolerance.
        max_gap_ratio: largest reference time gap allowed, in median gaps.
    """

    reference_length: int = 25
    reference_spacing_m: float = 5.0
    start_spacing_m: float = 12.0
    start_jitter_m: float = 1.0
    query_length: int = 10
    query_period_s: float = 1.0
    query_start_spacing_m: float = 2.0
    queries_per_reference: int = 5
    match_radius_m: float = 5.0
    max_projection_m: float = 5.0
    min_motion_m: float = 0.1
    max_heading_difference_deg: float = 30.0
    max_heading_fraction: float = 0.2
    max_gap_ratio: float = 5.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value < 0 or (value == 0 and item.name not in ("start_jitter_m", "min_motion_m")):
                raise ValueError(f"pair option {item.name} must be positive, got {value}")
        if self.reference_length < 2 or self.query_length < 2:
            raise ValueError("reference_length and query_length must be at least 2")


PRESETS = {
    "train": PairConfig(start_spacing_m=20.0, queries_per_reference=24),
    "val": PairConfig(start_spacing_m=12.0, queries_per_reference=20),
    "test": PairConfig(start_spacing_m=12.0, queries_per_reference=5),
}


@dataclass(frozen=True)
class SequencePair:
    """One reference sequence and one query sequence with the true warp.

    Times are relative to each sequence's first frame; absolute start times are kept.

    Attributes:
        reference: name of the reference traverse.
        query: name of the query traverse.
        reference_condition, query_condition: condition labels.
        zone: UTM zone (str, e.g. ``30U``) of all positions.
        reference_start_s, query_start_s: absolute time of frame 0, seconds.
        reference_images: (R,) image paths relative to the reference traverse directory.
        reference_times_s: (R,) seconds since ``reference_start_s``.
        reference_positions: (R, 2) (easting, northing) metres.
        reference_headings_rad: (R,) ENU headings.
        query_images, query_times_s, query_positions, query_headings_rad: (Q,) / (Q, 2)
            likewise, times since ``query_start_s``.
        true_warp_s: (Q,) reference time (since ``reference_start_s``) of each query frame.
        true_positions: (Q, 2) projection of each query position onto the reference.
        max_projection_m: largest query-to-projection distance.
    """

    reference: str
    query: str
    reference_condition: str
    query_condition: str
    zone: str
    reference_start_s: float
    query_start_s: float
    reference_images: np.ndarray
    reference_times_s: np.ndarray
    reference_positions: np.ndarray
    reference_headings_rad: np.ndarray
    query_images: np.ndarray
    query_times_s: np.ndarray
    query_positions: np.ndarray
    query_headings_rad: np.ndarray
    true_warp_s: np.ndarray
    true_positions: np.ndarray
    max_projection_m: float


def distance_subsample(values: np.ndarray, start: int, interval: float, count: int | None = None) -> np.ndarray:
    """Indices from ``start``: each next one is the first whose value exceeds the last kept by ``interval``.

    Args:
        values: (N,) non-decreasing (path length or time).
        start: first index kept.
        interval: the step.
        count: stop after this many indices (fewer come back if the data runs out).

    Returns:
        int64 indices, increasing.
    """
    kept = [start]
    current = values[start]
    while count is None or len(kept) < count:
        after = kept[-1] + 1 + int(np.searchsorted(values[kept[-1] + 1:], current + interval, side="right"))
        if after >= len(values):
            break
        kept.append(after)
        current = values[after]
    return np.array(kept, dtype=np.int64)


def _jittered_starts(path_m: np.ndarray, spacing: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    starts = [0]
    while True:
        step = spacing + rng.uniform(-jitter, jitter)
        last = starts[-1]
        following = last + 1 + int(np.searchsorted(path_m[last + 1:], path_m[last] + step, side="right"))
        if following >= len(path_m):
            return np.array(starts, dtype=np.int64)
        starts.append(following)


def project_onto_polyline(
    points: np.ndarray, vertices: np.ndarray, vertex_times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project points onto a polyline whose vertices carry times.

    Args:
        points: (Q, 2) positions.
        vertices: (R, 2) polyline vertices, R >= 2.
        vertex_times: (R,) time of each vertex.

    Returns:
        times (Q,) interpolated at the nearest point of the polyline, the nearest points
        (Q, 2), and their distances (Q,).
    """
    starts, edges = vertices[:-1], np.diff(vertices, axis=0)
    squared = np.maximum((edges ** 2).sum(axis=1), 1e-12)
    fraction = np.einsum("qrd,rd->qr", points[:, None] - starts[None], edges) / squared
    fraction = np.clip(fraction, 0.0, 1.0)
    nearest = starts[None] + fraction[..., None] * edges[None]
    distance = np.linalg.norm(nearest - points[:, None], axis=2)
    segment = np.argmin(distance, axis=1)
    rows = np.arange(len(points))
    chosen = fraction[rows, segment]
    times = vertex_times[segment] + chosen * (vertex_times[segment + 1] - vertex_times[segment])
    return times, nearest[rows, segment], distance[rows, segment]


def _drop_reason(config: PairConfig, reference: Traverse, ref_index: np.ndarray,
                 query: Traverse, query_index: np.ndarray):
    """Ground truth of a candidate and the first filter it fails (None if it passes)."""
    ref_times = reference.times_s[ref_index]
    ref_positions = reference.positions[ref_index]
    warp, projected, distance = project_onto_polyline(query.positions[query_index], ref_positions, ref_times)
    truth = (warp, projected, float(distance.max()))
    if distance.max() > config.max_projection_m:
        return truth, "far"
    if np.any(np.diff(warp) < 0):
        return truth, "non_monotone"
    if np.all(np.linalg.norm(np.diff(projected, axis=0), axis=1) <= config.min_motion_m):
        return truth, "stationary"
    ref_heading = np.interp(warp, ref_times, np.unwrap(reference.headings_rad[ref_index]))
    difference = np.abs(wrap_angle(ref_heading - query.headings_rad[query_index]))
    outside = difference > np.radians(config.max_heading_difference_deg)
    if outside.sum() > config.max_heading_fraction * len(query_index):
        return truth, "heading"
    gaps = np.diff(ref_times)
    if np.any(gaps > config.max_gap_ratio * np.median(gaps)):
        return truth, "reference_gap"
    return truth, None


def _match_stretch(query: Traverse, first: np.ndarray, last: np.ndarray, radius: float):
    """Query frame range from the first frame near ``first`` to the next near ``last``."""
    near_first = np.flatnonzero(np.linalg.norm(query.positions - first, axis=1) < radius)
    if near_first.size == 0:
        return None
    start = int(near_first[0])
    near_last = np.flatnonzero(np.linalg.norm(query.positions[start:] - last, axis=1) < radius)
    if near_last.size == 0:
        return None
    return start, start + int(near_last[0])


def build_pairs(
    references: list[Traverse],
    queries: list[Traverse],
    config: PairConfig,
    rng: np.random.Generator,
    progress: str | None = None,
) -> tuple[list[SequencePair], dict[str, int]]:
    """Build sequence pairs for one split.

    Args:
        references: reference traverses (or contiguous pieces of them).
        queries: query traverses (or pieces); pieces named like a reference are skipped
            for that reference.
        config: the builder parameters.
        rng: randomness for start jitter and sampling.
        progress: label of a tqdm progress bar over reference sequences (None: no bar).

    Returns:
        the pairs, and counts: ``reference_sequences``, ``candidates`` and one count
        per drop reason.
    """
    counts = {"reference_sequences": 0, "candidates": 0, **{reason: 0 for reason in DROP_REASONS}}
    # Candidate query sequences per query piece, as an index matrix (K, query_length).
    query_sequences = []
    for query in queries:
        sequences = []
        for start in _jittered_starts(query.path_length_m, config.query_start_spacing_m, config.start_jitter_m, rng):
            index = distance_subsample(query.times_s, int(start), config.query_period_s, config.query_length)
            if len(index) == config.query_length:
                sequences.append(index)
        if sequences:
            query_sequences.append((query, np.stack(sequences)))
    reference_sequences = []
    for reference in references:
        path_m = reference.path_length_m
        for start in _jittered_starts(path_m, config.start_spacing_m, config.start_jitter_m, rng):
            ref_index = distance_subsample(path_m, int(start), config.reference_spacing_m, config.reference_length)
            if len(ref_index) == config.reference_length:
                reference_sequences.append((reference, ref_index))
    counts["reference_sequences"] = len(reference_sequences)
    pairs = []
    for reference, ref_index in tqdm(reference_sequences, desc=progress, unit="seq", disable=progress is None):
        first, last = reference.positions[ref_index[0]], reference.positions[ref_index[-1]]
        valid = []
        for query, sequences in query_sequences:
            if query.name == reference.name:
                continue
            stretch = _match_stretch(query, first, last, config.match_radius_m)
            if stretch is None:
                continue
            inside = (sequences[:, 0] >= stretch[0]) & (sequences[:, -1] <= stretch[1])
            for query_index in sequences[inside]:
                counts["candidates"] += 1
                truth, reason = _drop_reason(config, reference, ref_index, query, query_index)
                if reason is not None:
                    counts[reason] += 1
                    continue
                valid.append((query, query_index, truth))
        chosen = rng.permutation(len(valid))[: config.queries_per_reference]
        for choice in sorted(chosen):
            query, query_index, (warp, projected, distance) = valid[choice]
            pairs.append(_make_pair(reference, ref_index, query, query_index, warp, projected, distance))
    return pairs, counts


def _make_pair(reference, ref_index, query, query_index, warp, projected, distance) -> SequencePair:
    reference_start = float(reference.times_s[ref_index[0]])
    query_start = float(query.times_s[query_index[0]])
    return SequencePair(
        reference=reference.name,
        query=query.name,
        reference_condition=reference.condition,
        query_condition=query.condition,
        zone=str(reference.zone),
        reference_start_s=reference_start,
        query_start_s=query_start,
        reference_images=reference.image_paths[ref_index],
        reference_times_s=reference.times_s[ref_index] - reference_start,
        reference_positions=reference.positions[ref_index],
        reference_headings_rad=reference.headings_rad[ref_index],
        query_images=query.image_paths[query_index],
        query_times_s=query.times_s[query_index] - query_start,
        query_positions=query.positions[query_index],
        query_headings_rad=query.headings_rad[query_index],
        true_warp_s=warp - reference_start,
        true_positions=projected,
        max_projection_m=distance,
    )
