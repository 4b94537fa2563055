"""Candidate reference windows for a query, and their batched alignment.

No oracle: the windows come from the map itself.

- **Global proposal.** Each keyframe's faiss neighbours are candidate reference times.
  A neighbour at reference time tau of keyframe j (query time t_j, query span
  [t_0, t_m]) implies that the newest keyframe sits near tau + (t_m - t_j) and that the
  query lies inside [tau - s (t_j - t_0), tau + s (t_m - t_j)] for the fastest speed ratio
  s (reference seconds per query second). Candidates are sorted by that implied time per
  traverse and split where it jumps by more than ``cluster_gap_s``; each cluster is one
  window (the union of its candidates' spans, plus slack), ranked by how many distinct
  keyframes voted for it. A window never leaves its traverse.
- **Tracking proposal.** While tracking, one window around the predicted reference time.
- **Decoys.** Two windows as long as the first window, just before and just after it on
  the same traverse with ``distinct_m`` of path between, so that the best window always has
  a runner-up to be compared with, even where every neighbour agrees.
- **Alignment.** One subsequence GDTW over all windows at all speed ratios at once, its
  DP fed the exact inner products of the query and the windows' map rows
  (:func:`subsequence_gdtw`); the lowest cost wins. A streaming query changes by one
  keyframe at a time and its windows move little, so :class:`KeyframeProducts` keeps each
  keyframe's products with the rows it has met, and only the newest keyframe is multiplied
  with every row.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from seqvpr.align import GDTWConfig
from seqvpr.align._dp import NodeInputs, Steps, solve_gdtw
from seqvpr.errors import SeqvprError
from seqvpr.localization.config import LocalizerConfig
from seqvpr.localization.map import Map

__all__ = ["Window", "Alignment", "global_windows", "tracking_window", "decoy_windows", "align_windows",
           "subsequence_gdtw", "KeyframeProducts"]


@dataclass(frozen=True)
class Window:
    """A stretch of one reference traverse.

    Attributes:
        traverse: traverse number in the map.
        start_s, end_s: reference time span, seconds.
        votes: distinct keyframes that voted for it (0 for tracking and decoy windows).
        source: ``"global"``, ``"tracking"`` or ``"decoy"``.
    """

    traverse: int
    start_s: float
    end_s: float
    votes: int = 0
    source: str = "global"


@dataclass(frozen=True)
class Alignment:
    """The query aligned to each window.

    Attributes:
        windows: the windows, (W,).
        costs: GDTW objective per window, shape (W,).
        end_times: reference time of the newest keyframe per window, shape (W,).
        start_times: reference time of the oldest keyframe per window, shape (W,).
    """

    windows: list[Window]
    costs: np.ndarray
    end_times: np.ndarray
    start_times: np.ndarray


def global_windows(
    reference_map: Map,
    keyframe_times: np.ndarray,
    neighbour_rows: np.ndarray,
    config: LocalizerConfig,
) -> list[Window]:
    """Cluster the keyframes' faiss neighbours into at most ``config.max_windows`` windows.

    Args:
        reference_map: the map.
        keyframe_times: query keyframe times, shape (m,), increasing.
        neighbour_rows: map rows of each keyframe's neighbours, shape (m, k); -1 = none.
        config: window sizes and limits.

    Returns:
        Windows, most-voted first.
    """
    first, last = keyframe_times[0], keyframe_times[-1]
    keyframe = np.broadcast_to(np.arange(len(keyframe_times))[:, None], neighbour_rows.shape)
    valid = neighbour_rows >= 0
    rows, keyframe = neighbour_rows[valid], keyframe[valid]
    if rows.size == 0:
        return []
    traverse = reference_map.traverse_of(rows)
    tau = np.asarray(reference_map.times[rows])
    offset_before = keyframe_times[keyframe] - first
    offset_after = last - keyframe_times[keyframe]
    implied_end = tau + offset_after
    low = tau - config.max_speed_ratio * offset_before - config.window_slack_s
    high = tau + config.max_speed_ratio * offset_after + config.window_slack_s
    order = np.lexsort((implied_end, traverse))
    traverse, implied_end, low, high, keyframe = (a[order] for a in (traverse, implied_end, low, high, keyframe))
    breaks = np.flatnonzero((np.diff(traverse) != 0) | (np.diff(implied_end) > config.cluster_gap_s)) + 1
    windows = []
    for members in np.split(np.arange(len(traverse)), breaks):
        t = int(traverse[members[0]])
        rows_of = reference_map.rows_of(t)
        span_start, span_end = reference_map.times[rows_of.start], reference_map.times[rows_of.stop - 1]
        start = max(float(low[members].min()), float(span_start))
        end = min(float(high[members].max()), float(span_end))
        if end > start:
            windows.append(Window(t, start, end, int(np.unique(keyframe[members]).size)))
    windows.sort(key=lambda window: -window.votes)
    return windows[: config.max_windows]


def tracking_window(
    reference_map: Map, traverse: int, predicted_end_s: float, query_span_s: float, config: LocalizerConfig
) -> Window:
    """The window around a predicted reference time of the newest keyframe."""
    rows = reference_map.rows_of(traverse)
    start = predicted_end_s - config.max_speed_ratio * query_span_s - config.tracking_slack_s
    end = predicted_end_s + config.tracking_slack_s
    start = max(start, float(reference_map.times[rows.start]))
    end = min(end, float(reference_map.times[rows.stop - 1]))
    return Window(traverse, start, max(end, start), 0, "tracking")


def decoy_windows(reference_map: Map, window: Window, distance_m: float) -> list[Window]:
    """Windows as long as ``window`` just before and after it, ``distance_m`` of path clear of it."""
    rows = reference_map.rows_of(window.traverse)
    times = np.asarray(reference_map.times[rows])
    path = reference_map.path_length_m[rows]
    start_path, end_path = np.interp([window.start_s, window.end_s], times, path)
    length = window.end_s - window.start_s
    decoys = []
    before_end = start_path - distance_m
    if before_end > path[0]:
        end = float(np.interp(before_end, path, times))
        decoys.append(Window(window.traverse, max(end - length, float(times[0])), end, 0, "decoy"))
    after_start = end_path + distance_m
    if after_start < path[-1]:
        start = float(np.interp(after_start, path, times))
        decoys.append(Window(window.traverse, start, min(start + length, float(times[-1])), 0, "decoy"))
    return decoys


def _rows_at_least(reference_map: Map, window: Window, span_s: float) -> slice:
    """The window's rows, widened inside its traverse to at least ``span_s`` of reference time.

    A window clipped at the end of a traverse can be shorter than the query; at the
    expected slope the query would not fit, so it is extended into the traverse instead.
    """
    start, end = window.start_s, window.end_s
    if end - start < span_s:
        rows = reference_map.rows_of(window.traverse)
        first, last = float(reference_map.times[rows.start]), float(reference_map.times[rows.stop - 1])
        missing = span_s - (end - start)
        start, end = max(first, start - missing), min(last, end + missing)
    return reference_map.window_rows(window.traverse, start, end)


def _rows_covering_path(reference_map: Map, window: Window, length_m: float) -> slice:
    """The window's rows, widened inside its traverse to at least ``length_m`` of path."""
    rows = reference_map.window_rows(window.traverse, window.start_s, window.end_s)
    path = reference_map.path_length_m
    missing = length_m - (path[rows.stop - 1] - path[rows.start])
    if missing <= 0:
        return rows
    traverse = reference_map.rows_of(window.traverse)
    low = max(float(path[rows.start]) - missing, float(path[traverse.start]))
    high = min(float(path[rows.stop - 1]) + missing, float(path[traverse.stop - 1]))
    first = traverse.start + int(np.searchsorted(path[traverse], low, side="right")) - 1
    last = traverse.start + int(np.searchsorted(path[traverse], high, side="left")) + 1
    return slice(max(first, traverse.start), min(last, traverse.stop))


def _path_axis(reference_map: Map, rows: slice, unit_m: float) -> np.ndarray:
    """Path length of ``rows`` in units of ``unit_m``, strictly increasing (a stopped survey
    car's repeated positions are spread by a micro-unit so that GDTW sees increasing times)."""
    axis = np.asarray(reference_map.path_length_m[rows], dtype=np.float64) / unit_m
    return axis + 1e-6 * np.arange(len(axis))


def align_windows(
    reference_map: Map,
    windows: list[Window],
    query_times: np.ndarray,
    query_values: np.ndarray,
    config: LocalizerConfig,
    path_unit_m: float | None = None,
    speed_ratios: tuple[float, ...] = (1.0,),
    inner_products: Callable[[list[slice]], np.ndarray] | None = None,
) -> Alignment:
    """One batched subsequence GDTW of the query against every window at every speed ratio.

    Args:
        reference_map: the map.
        windows: W windows.
        query_times: keyframe times, shape (m,), increasing, seconds; with ``path_unit_m``,
            the keyframes' travelled distance in units of ``path_unit_m`` instead.
        query_values: keyframe descriptors, shape (m, D), unit norm.
        config: GDTW settings.
        path_unit_m: None aligns on time (reference capture times against query stamps).
            A length in metres aligns on distance: the reference's path length and the
            query's odometry, both in these units, so that the expected slope is 1 whatever
            either drive's speed. The returned times are reference times either way.
        speed_ratios: R expected slopes e (reference units per query unit). Each window is
            aligned at each, all R * W items in the one batch, with the objective
            sum_i w_i ||R(phi_i) - Q_i||^2 + lambda sum_i dt_i (dphi_i / dt_i - e)^2, whose
            costs are comparable across ratios (it equals the objective on query times
            stretched by e with weight lambda e^2, divided by e). A window shorter than e
            times the query's span is widened inside its traverse for that ratio.
        inner_products: see :func:`subsequence_gdtw`.

    Returns:
        The alignment of the R * W (ratio, window) items, ratio-major: item r * W + w is
        window w at ``speed_ratios[r]`` (``Alignment.windows`` repeats the windows R times).
    """
    ratios = tuple(float(ratio) for ratio in speed_ratios)
    items = [(ratio, window) for ratio in ratios for window in windows]
    span = float(query_times[-1] - query_times[0])
    if path_unit_m is None:
        slices = [_rows_at_least(reference_map, w, ratio * span) for ratio, w in items]
    else:
        slices = [_rows_covering_path(reference_map, w, ratio * span * path_unit_m) for ratio, w in items]
    axes = [np.asarray(reference_map.times[rows]) if path_unit_m is None
            else _path_axis(reference_map, rows, path_unit_m) for rows in slices]
    knots = np.asarray(query_times, dtype=np.float64) - float(query_times[0])
    warp, costs = subsequence_gdtw(reference_map, slices, axes, knots, query_values,
                                   np.array([ratio for ratio, _ in items]), config, inner_products)
    origins = np.array([axis[0] for axis in axes])
    ends, starts = warp[:, -1] + origins, warp[:, 0] + origins
    if path_unit_m is not None:  # path units back to reference times
        reference_times = [np.asarray(reference_map.times[rows]) for rows in slices]
        ends = np.array([np.interp(e, axis, t) for e, axis, t in zip(ends, axes, reference_times)])
        starts = np.array([np.interp(b, axis, t) for b, axis, t in zip(starts, axes, reference_times)])
    return Alignment(windows=[window for _, window in items], costs=costs, end_times=ends, start_times=starts)


def subsequence_gdtw(
    reference_map: Map,
    slices: list[slice],
    axes: list[np.ndarray],
    knots: np.ndarray,
    query_values: np.ndarray,
    slopes: np.ndarray,
    config: LocalizerConfig,
    inner_products: Callable[[list[slice]], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Subsequence GDTW of one query against B stretches of map rows, straight from the
    inner products.

    GDTW's objective reads the descriptors only through <Q_i, R_k>, ||Q_i||^2, ||R_k||^2
    and <R_k, R_k+1>. Here they come from the map itself: one (m, D) x (D, n) product per
    run of overlapping stretches' rows (read in place from the memory map), ||R_k|| = 1
    (map descriptors are unit vectors), and ``successor_inner`` stored with the map. They
    go to the DP kernel (:func:`seqvpr.align._dp.solve_gdtw`) with the problem
    :func:`seqvpr.align.gdtw` would resolve for ``GDTWConfig(subsequence=True,
    expected_slope=slopes, lam, grid_size, refinements)`` and the query's own times as
    knots: free ends, no slope bound but phi' >= 0, each phi_i within its stretch. It
    gives the same warps and costs (tested against :func:`~seqvpr.align.gdtw` on the
    whole descriptors) without building vectors for it or validating general inputs.

    Args:
        reference_map: the map (unit-norm descriptors, ``successor_inner``).
        slices: B stretches of rows, each inside one traverse, at least 2 rows.
        axes: each stretch's reference axis (times or path), increasing, (len(slice),).
        knots: the query's knots relative to its first, (m,), increasing from 0.
        query_values: the query, (m, D).
        slopes: expected slope e per stretch, (B,).
        config: lam, grid_size and refinements.
        inner_products: given sorted, disjoint runs of rows, <Q_i, R_k> for every row k of
            them in order, (m, U) float64 (e.g. a :class:`KeyframeProducts`' cached ones); None
            multiplies the query with the runs' rows.

    Returns:
        The warp at the knots relative to each axis' first value, (B, m), and the objective, (B,).

    Raises:
        SeqvprError: an objective that is not finite (non-finite descriptors).
    """
    query = np.ascontiguousarray(query_values, dtype=np.float32)
    distinct = list(dict.fromkeys((rows.start, rows.stop) for rows in slices))
    runs = _merged_runs([slice(*rows) for rows in distinct])
    if inner_products is None:
        cross_runs = _query_inner_products(reference_map.descriptors, runs, query, config.device)  # (m, U)
    else:
        cross_runs = inner_products(runs)
    starts = np.array([run.start for run in runs])
    offsets = np.concatenate([[0], np.cumsum([run.stop - run.start for run in runs])])
    batch, count = len(slices), len(knots)
    lengths = np.array([rows.stop - rows.start for rows in slices], dtype=np.int64)
    size = int(lengths.max())
    cross = np.zeros((batch, count, size))
    ref_next = np.zeros((batch, size - 1))
    ref_times = np.zeros((batch, size))
    for b, (rows, axis) in enumerate(zip(slices, axes)):
        run = int(np.searchsorted(starts, rows.start, side="right")) - 1
        first = offsets[run] + rows.start - starts[run]
        length = lengths[b]
        cross[b, :, :length] = cross_runs[:, first : first + length]
        ref_next[b, : length - 1] = reference_map.successor_inner[rows.start : rows.stop - 1]
        local = axis - axis[0]
        ref_times[b, :length] = local
        ref_times[b, length:] = local[-1] + np.arange(1, size - length + 1)
    query_sq = np.einsum("md,md->m", query, query, dtype=np.float64)
    dt = np.diff(knots)
    weights = np.zeros(count)
    weights[:-1] += dt / 2
    weights[1:] += dt / 2
    ends = ref_times[np.arange(batch), lengths - 1]
    inputs = NodeInputs(cross, np.ones((batch, size)), ref_next, np.tile(query_sq, (batch, 1)),
                        np.tile(weights, (batch, 1)), ref_times)
    steps = Steps(np.tile(config.lam / dt, (batch, 1)), slopes[:, None] * dt, np.zeros((batch, count - 1)),
                  np.full((batch, count - 1), np.inf), 1e-9 * (1.0 + np.abs(ends)))
    lower, upper = np.zeros((batch, count)), np.repeat(ends[:, None], count, axis=1)
    warp, history, _, _ = solve_gdtw(inputs, lengths, np.full(batch, count, dtype=np.int64), lower, upper, steps,
                                     config.grid_size, config.refinements, GDTWConfig().refine_factor, False)
    if not np.isfinite(history[:, -1]).all():
        raise SeqvprError(f"the alignment's objective is not finite ({history[:, -1].tolist()}): non-finite "
                          "descriptors in the query or the map")
    return warp, history[:, -1]


def _merged_runs(slices: list[slice], gap: int = 32) -> list[slice]:
    """The rows of all windows as sorted, disjoint runs; runs fewer than ``gap`` rows apart
    are joined (reading a few extra rows costs less than another product)."""
    runs: list[slice] = []
    for window in sorted(slices, key=lambda rows: rows.start):
        if runs and window.start <= runs[-1].stop + gap:
            runs[-1] = slice(runs[-1].start, max(runs[-1].stop, window.stop))
        else:
            runs.append(slice(window.start, window.stop))
    return runs


def _query_inner_products(descriptors: np.ndarray, runs: list[slice], query: np.ndarray, device: str) -> np.ndarray:
    """<Q_i, R_k> for every row k of ``runs``, shape (m, U), float64.

    Each run is a view of the (memory-mapped) descriptor array, multiplied in place: no
    gathered copy of the rows (a fresh multi-megabyte buffer per keyframe costs page faults
    that took longer than the product itself).
    """
    query_tensor = torch.from_numpy(query).to(device)
    blocks = []
    with warnings.catch_warnings():
        # Map arrays are read-only memory maps; the product only reads them.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        for run in runs:
            rows = torch.from_numpy(np.asarray(descriptors[run])).to(device)
            blocks.append((query_tensor @ rows.T).double().cpu())
    return torch.cat(blocks, dim=1).numpy()


class KeyframeProducts:
    """Each keyframe's inner products with the map rows it has been aligned against.

    The streaming query drops its oldest keyframe and gains a new one per alignment, and its
    candidate windows move little, so most of the (m, U) products an alignment needs were
    computed for the one before: only the newest keyframe is multiplied with every row, and
    the older ones with the rows new to them. Products are those of
    :func:`_query_inner_products` (float32 products, as float64), so an alignment fed from
    here gives what the plain product gives.

    Keyframe ``serial`` keeps its products in row ``serial % capacity`` of a ``capacity`` x N
    float32 table, each entry stamped with the serial that computed it; an entry counts only
    for its own serial. Serials must never repeat (the localizer numbers its keyframes); a
    keyframe that takes a row over needs no clearing, and serials that share a row only cost
    recomputation. Memory: 12 bytes per map frame and keyframe slot (12 MB for a 100k-frame
    map and a 10-keyframe query), allocated at the first alignment.
    """

    def __init__(self, descriptors: np.ndarray, capacity: int, device: str = "cpu") -> None:
        self._descriptors = descriptors
        self._capacity = int(capacity)
        self._device = device
        self._values: np.ndarray | None = None  # (capacity, N) float32, allocated on first use
        self._stamps: np.ndarray | None = None  # (capacity, N) int64, -1: never computed
        self.computed = 0  # products computed (keyframe-row pairs), for tests and benchmarks

    def products(self, serials: np.ndarray, query: np.ndarray, runs: list[slice]) -> np.ndarray:
        """<Q_i, R_k>, (m, U) float64, for the keyframes ``serials`` (m,) with descriptors
        ``query`` (m, D) and every row k of the sorted, disjoint ``runs``."""
        serials = np.asarray(serials, dtype=np.int64)
        if self._values is None:
            self._values = np.zeros((self._capacity, len(self._descriptors)), dtype=np.float32)
            self._stamps = np.full((self._capacity, len(self._descriptors)), -1, dtype=np.int64)
        rows = np.concatenate([np.arange(run.start, run.stop) for run in runs])
        cells = np.ix_(serials % self._capacity, rows)
        known = self._values[cells]  # (m, U) copies
        missing = self._stamps[cells] != serials[:, None]
        fresh = missing.all(axis=1)  # keyframes new to every row: multiplied in place, run by run
        query32 = np.ascontiguousarray(query, dtype=np.float32)
        if fresh.any():
            known[fresh] = _query_inner_products(self._descriptors, runs, query32[fresh], self._device)
            self.computed += int(fresh.sum()) * len(rows)
        older = ~fresh
        columns = (missing & older[:, None]).any(axis=0)
        if columns.any():  # rows new to some older keyframe: gathered (few), multiplied with those
            new_rows = rows[columns]
            gathered = torch.from_numpy(np.asarray(self._descriptors[new_rows], dtype=np.float32)).to(self._device)
            block = (torch.from_numpy(query32[older]).to(self._device) @ gathered.T).cpu().numpy()
            known[np.ix_(older, columns)] = block
            self.computed += int(older.sum()) * len(new_rows)
        self._values[cells] = known
        self._stamps[cells] = serials[:, None]
        return known.astype(np.float64)
