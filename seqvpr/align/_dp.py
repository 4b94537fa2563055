"""Dynamic-programming kernels for the discretised GDTW problem (CPU, numba).

Each knot i has a sorted grid of M candidate warp values ``grid[i, :]``. The DP computes

    V_0(j) = node_0(j)
    V_i(j) = node_i(j) + min_k { V_{i-1}(k) + a_i (grid[i, j] - grid[i-1, k] - s_i)^2 }
             over k with step_min_i <= grid[i, j] - grid[i-1, k] <= step_max_i

with a_i = lambda / dt_i, s_i = e dt_i (the expected step) and [step_min_i, step_max_i] the slope bounds
times dt_i. The minimum over k is a lower envelope of parabolas of equal curvature, i.e.

    a x^2 + min_k (m_k x + b_k),  m_k = -2 a c_k,  b_k = a c_k^2 + V_{i-1}(k),  c_k = grid[i-1, k] + s_i,

a minimum over lines. When only a lower slope bound applies (step_max_i = inf, the default), the
admissible k for grid[i, j] are a prefix that grows with j, lines arrive in order of
decreasing slope and queries arrive in increasing x: the monotone convex-hull trick answers
all M queries in O(M) total. A finite upper slope bound turns the prefix into a sliding
window; there the kernel scans the window (O(M * window)). ``brute=True`` scans every k
with an explicit feasibility test: the O(M^2) oracle the fast kernel is tested against.

Tie-breaking differs between kernels; optimal costs agree.

Grid rows and node costs are built one knot at a time and only two rows are alive, so a
pair needs O(m M) memory only for the int32 back-pointers (about 0.5 MB for the audio case,
m = 256, M = 512) and no large array is allocated, page-faulted in and freed per call.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange
from numba.extending import overload

__all__ = ["BuiltRows", "GivenRows", "NodeInputs", "Steps", "solve_dp", "solve_gdtw"]

_INF = np.inf


@njit(cache=True, inline="always", error_model="numpy")
def _line_is_redundant(m1, b1, m2, b2, m3, b3):
    # Slopes m1 > m2 > m3. Line 2 never attains the minimum iff the intersection of lines
    # 1 and 3 lies left of (or at) the intersection of lines 1 and 2.
    return (b3 - b1) * (m1 - m2) <= (b2 - b1) * (m1 - m3)


@njit(cache=True, error_model="numpy")
def _step_hull(prev_grid, prev_cost, grid, node, a, shift, step_min, tol, cost_out, arg_out,
               hull_m, hull_b, hull_k):
    count_prev = prev_grid.shape[0]
    origin = grid[0]
    size = 0
    best = 0
    k = 0
    for j in range(grid.shape[0]):
        x = grid[j]
        limit = x - step_min + tol
        while k < count_prev and prev_grid[k] <= limit:
            if prev_cost[k] < _INF:
                c = prev_grid[k] + shift - origin
                m_new = -2.0 * a * c
                b_new = a * c * c + prev_cost[k]
                add = True
                if size > 0 and m_new >= hull_m[size - 1]:
                    # Equal slope (a == 0 or repeated grid values): keep the lower line.
                    if b_new >= hull_b[size - 1]:
                        add = False
                    else:
                        size -= 1
                if add:
                    while size >= 2 and _line_is_redundant(
                        hull_m[size - 2], hull_b[size - 2], hull_m[size - 1], hull_b[size - 1],
                        m_new, b_new,
                    ):
                        size -= 1
                    hull_m[size] = m_new
                    hull_b[size] = b_new
                    hull_k[size] = k
                    size += 1
                    if best >= size:
                        best = size - 1
            k += 1
        if size == 0:
            cost_out[j] = _INF
            arg_out[j] = -1
            continue
        xl = x - origin
        while best + 1 < size and (
            hull_m[best + 1] * xl + hull_b[best + 1] <= hull_m[best] * xl + hull_b[best]
        ):
            best += 1
        chosen = hull_k[best]
        step = x - prev_grid[chosen] - shift
        cost_out[j] = node[j] + prev_cost[chosen] + a * step * step
        arg_out[j] = chosen


@njit(cache=True, error_model="numpy")
def _step_scan(prev_grid, prev_cost, grid, node, a, shift, step_min, step_max, tol, brute, cost_out, arg_out):
    count_prev = prev_grid.shape[0]
    first = 0
    stop = 0
    for j in range(grid.shape[0]):
        x = grid[j]
        if brute:
            first, stop = 0, count_prev
        else:
            while first < count_prev and prev_grid[first] < x - step_max - tol:
                first += 1
            while stop < count_prev and prev_grid[stop] <= x - step_min + tol:
                stop += 1
        best_cost = _INF
        best_k = -1
        for k in range(first, stop):
            delta = x - prev_grid[k]
            if delta < step_min - tol or delta > step_max + tol or prev_cost[k] == _INF:
                continue
            step = delta - shift
            cost = prev_cost[k] + a * step * step
            if cost < best_cost:
                best_cost = cost
                best_k = k
        cost_out[j] = node[j] + best_cost
        arg_out[j] = best_k


@njit(cache=True, inline="always", error_model="numpy")
def _inserted_index(lower, step, size, previous):
    nearest = 0 if step <= 0.0 else int(round((previous - lower) / step))
    return min(max(nearest, 0), size - 1)


@njit(cache=True, error_model="numpy")
def _grid_row(lower, upper, size, refined, previous, out):
    """M values from lower to upper; after the first pass the previous optimum replaces its
    nearest grid point, so the previous path stays on the grid and the objective cannot rise."""
    step = (upper - lower) / (size - 1)
    for j in range(size):
        out[j] = lower + step * j
    out[size - 1] = upper
    if refined:
        out[_inserted_index(lower, step, size, previous)] = previous


@njit(cache=True, error_model="numpy")
def _grid_value(lower, upper, size, refined, previous, j):
    """Entry j of the row :func:`_grid_row` builds, without building the row."""
    step = (upper - lower) / (size - 1)
    if refined and j == _inserted_index(lower, step, size, previous):
        return previous
    return upper if j == size - 1 else lower + step * j


@njit(cache=True, error_model="numpy")
def _node_costs(grid, cross, ref_sq, ref_next, query_sq, weights, ref_times, out):
    """w_i ||R(phi) - Q_i||^2 on one knot's sorted grid, from inner products only.

    Inside reference segment [k, k+1] at fraction alpha (beta = 1 - alpha):
    ||R(phi) - Q||^2 = ||Q||^2 + beta^2 ||R_k||^2 + alpha^2 ||R_k+1||^2
                       + 2 alpha beta <R_k, R_k+1> - 2 beta <Q, R_k> - 2 alpha <Q, R_k+1>.
    """
    last_segment = ref_times.shape[0] - 2
    k = 0
    inverse = 1.0 / (ref_times[1] - ref_times[0])
    for j in range(grid.shape[0]):
        x = grid[j]
        while k < last_segment and ref_times[k + 1] <= x:
            k += 1
            inverse = 1.0 / (ref_times[k + 1] - ref_times[k])
        alpha = (x - ref_times[k]) * inverse
        alpha = min(max(alpha, 0.0), 1.0)
        beta = 1.0 - alpha
        distance = (query_sq + beta * beta * ref_sq[k] + alpha * alpha * ref_sq[k + 1]
                    + 2.0 * alpha * beta * ref_next[k] - 2.0 * (beta * cross[k] + alpha * cross[k + 1]))
        out[j] = weights * max(distance, 0.0)


class Steps(NamedTuple):
    """Edge costs and bounds between consecutive knots: per item (m - 1,) arrays and a float
    tolerance, or a batch of them ((B, m - 1) arrays and (B,) tolerances).

    Attributes:
        curvature: a_i = lambda / dt_i.
        shift: the expected step e dt_i.
        step_min, step_max: bounds on the warp step phi_i+1 - phi_i; step_max may be inf.
        tol: feasibility tolerance on the step bounds.
    """

    curvature: np.ndarray
    shift: np.ndarray
    step_min: np.ndarray
    step_max: np.ndarray
    tol: np.ndarray


class GivenRows(NamedTuple):
    """Candidates given in full: grids and node costs, (m, M) each (or (B, m, M))."""

    grid: np.ndarray
    node: np.ndarray


class NodeInputs(NamedTuple):
    """What the node costs are built from (float64): per item, or a batch with a leading B.

    Attributes:
        cross: <Q_i, R_k>, (m, N). ref_sq: ||R_k||^2, (N,). ref_next: <R_k, R_k+1>, (N - 1,).
        query_sq: ||Q_i||^2, (m,). weights: trapezoid weights, (m,). ref_times: tau_k, (N,).
    """

    cross: np.ndarray
    ref_sq: np.ndarray
    ref_next: np.ndarray
    query_sq: np.ndarray
    weights: np.ndarray
    ref_times: np.ndarray


class BuiltRows(NamedTuple):
    """Candidates built on the fly for one item: M values between ``lower[i]`` and
    ``upper[i]`` (with ``previous[i]`` inserted when ``refined``), node costs from ``costs``."""

    lower: np.ndarray
    upper: np.ndarray
    refined: bool
    previous: np.ndarray
    costs: NodeInputs


def _fill_row(rows, i, grid_out, node_out):
    """Writes knot i's candidates and node costs (dispatched on the type of ``rows``)."""


def _row_value(rows, i, size, j):
    """Candidate j of knot i (dispatched on the type of ``rows``)."""


def _is(numba_type, cls) -> bool:
    return getattr(numba_type, "instance_class", None) is cls


@overload(_fill_row, jit_options={"cache": True})
def _fill_row_overload(rows, i, grid_out, node_out):
    if _is(rows, GivenRows):
        def given(rows, i, grid_out, node_out):
            grid_out[:] = rows.grid[i]
            node_out[:] = rows.node[i]
        return given
    if _is(rows, BuiltRows):
        def built(rows, i, grid_out, node_out):
            _grid_row(rows.lower[i], rows.upper[i], grid_out.shape[0], rows.refined, rows.previous[i], grid_out)
            costs = rows.costs
            _node_costs(grid_out, costs.cross[i], costs.ref_sq, costs.ref_next, costs.query_sq[i], costs.weights[i],
                        costs.ref_times, node_out)
        return built
    return None


@overload(_row_value, jit_options={"cache": True})
def _row_value_overload(rows, i, size, j):
    if _is(rows, GivenRows):
        return lambda rows, i, size, j: rows.grid[i, j]
    if _is(rows, BuiltRows):
        return lambda rows, i, size, j: _grid_value(rows.lower[i], rows.upper[i], size, rows.refined,
                                                    rows.previous[i], j)
    return None


@njit(cache=True, error_model="numpy")
def _shortest_path(rows, steps, brute, path, values, args):
    """DP over the knots of one item, two grid rows in memory at a time.

    Args:
        rows: :class:`GivenRows` or :class:`BuiltRows` of the item.
        steps: the item's :class:`Steps`.
        brute: scan every predecessor (the O(M^2) oracle).
        path, values: out: optimal grid index and value per knot, (m,).
        args: scratch back-pointers, (m, M) int32.

    Returns:
        The optimum (inf when no path is feasible).
    """
    knots, size = args.shape
    grids = np.empty((2, size))
    node_row = np.empty(size)
    cost = np.empty(size)
    new_cost = np.empty(size)
    hull_m = np.empty(size)
    hull_b = np.empty(size)
    hull_k = np.empty(size, dtype=np.int64)
    _fill_row(rows, 0, grids[0], cost)
    for i in range(1, knots):
        prev_grid, cur_grid = grids[(i - 1) % 2], grids[i % 2]
        _fill_row(rows, i, cur_grid, node_row)
        span = cur_grid[size - 1] - prev_grid[0]
        a, shift = steps.curvature[i - 1], steps.shift[i - 1]
        step_min, step_max = steps.step_min[i - 1], steps.step_max[i - 1]
        if brute or step_max < span + steps.tol:
            _step_scan(prev_grid, cost, cur_grid, node_row, a, shift, step_min, step_max, steps.tol, brute,
                       new_cost, args[i])
        else:
            _step_hull(prev_grid, cost, cur_grid, node_row, a, shift, step_min, steps.tol, new_cost, args[i],
                       hull_m, hull_b, hull_k)
        cost, new_cost = new_cost, cost
    j = np.argmin(cost)
    total = cost[j]
    path[knots - 1] = j
    for i in range(knots - 1, 0, -1):
        j = args[i, j]
        if j < 0:
            break
        path[i - 1] = j
    for i in range(knots):
        # ``rows.previous`` may be ``values`` itself: knot i reads its entry before writing it.
        values[i] = _row_value(rows, i, size, path[i])
    return total


@njit(cache=True, inline="always")
def _item_steps(steps, b, knots):
    """Item b's :class:`Steps`, cut to its knots."""
    return Steps(steps.curvature[b, :knots - 1], steps.shift[b, :knots - 1], steps.step_min[b, :knots - 1],
                 steps.step_max[b, :knots - 1], steps.tol[b])


def _solve_grids_py(rows, steps, lengths, brute, path, total):
    for b in prange(lengths.shape[0]):
        length = lengths[b]
        size = rows.grid.shape[2]
        args = np.empty((length, size), dtype=np.int32)
        values = np.empty(length)
        item_rows = GivenRows(rows.grid[b, :length], rows.node[b, :length])
        total[b] = _shortest_path(item_rows, _item_steps(steps, b, length), brute, path[b, :length], values, args)
        path[b, length:] = path[b, length - 1]


_solve_grids = njit(cache=True, parallel=True, error_model="numpy")(_solve_grids_py)


def solve_dp(rows: GivenRows, steps: Steps, lengths: np.ndarray, brute: bool = False):
    """Solves the discretised problem on given grids (one DP pass, no refinement).

    Args:
        rows: candidate warp values ``grid`` (B, m, M), sorted along M, and their weighted
            node costs ``node`` (B, m, M), float64.
        steps: a batch of :class:`Steps`, (B, m - 1) arrays and tolerances (B,).
        lengths: knots per item, shape (B,), int64; knots past it repeat the last one.
        brute: use the O(M^2) oracle kernel.

    Returns:
        ``(path, cost)``: optimal grid index per knot (B, m) int64 and the optimal
        discrete objective (B,); cost is inf where no feasible path exists.
    """
    batch, knots, _ = rows.grid.shape
    path = np.zeros((batch, knots), dtype=np.int64)
    total = np.empty(batch)
    _solve_grids(rows, steps, lengths, brute, path, total)
    return path, total


def _solve_gdtw_py(costs, ref_lengths, lengths, lower, upper, steps, size, refinements, factor, brute,
                   warp, history, lower_out, upper_out):
    for b in prange(lengths.shape[0]):
        knots = lengths[b]
        count = ref_lengths[b]
        item_lower = lower[b, :knots].copy()
        item_upper = upper[b, :knots].copy()
        item_costs = NodeInputs(costs.cross[b, :knots, :count], costs.ref_sq[b, :count], costs.ref_next[b, :count],
                                costs.query_sq[b], costs.weights[b], costs.ref_times[b, :count])
        item_steps = _item_steps(steps, b, knots)
        path = np.zeros(knots, dtype=np.int64)
        values = np.empty(knots)
        args = np.empty((knots, size), dtype=np.int32)
        for iteration in range(refinements + 1):
            rows = BuiltRows(item_lower, item_upper, iteration > 0, values, item_costs)
            history[b, iteration] = _shortest_path(rows, item_steps, brute, path, values, args)
            if iteration == refinements:
                break
            for i in range(knots):
                # Shrink the range by `factor` around the optimum, shifted to stay inside.
                half = 0.5 * factor * (item_upper[i] - item_lower[i])
                new_lower = min(max(item_lower[i], values[i] - half), item_upper[i] - 2.0 * half)
                item_upper[i] = max(min(item_upper[i], values[i] + half), item_lower[i] + 2.0 * half)
                item_lower[i] = new_lower
        warp[b, :knots] = values
        warp[b, knots:] = values[knots - 1]
        lower_out[b, :knots] = item_lower
        upper_out[b, :knots] = item_upper
        lower_out[b, knots:] = item_lower[knots - 1]
        upper_out[b, knots:] = item_upper[knots - 1]


_solve_gdtw_parallel = njit(cache=True, parallel=True, error_model="numpy")(_solve_gdtw_py)
_solve_gdtw_serial = njit(cache=True, error_model="numpy")(_solve_gdtw_py)

# Below this much DP work (knots x candidates summed over the batch) thread start-up costs
# more than it saves.
PARALLEL_WORK = 200_000


def solve_gdtw(costs: NodeInputs, ref_lengths: np.ndarray, lengths: np.ndarray, lower: np.ndarray,
               upper: np.ndarray, steps: Steps, size: int, refinements: int, factor: float, brute: bool):
    """Runs the DP with iterative refinement for a batch (all arrays float64 numpy).

    Args:
        costs: a batch of :class:`NodeInputs` (cross (B, m, N), ref_sq (B, N), ref_next
            (B, N - 1), query_sq (B, m), weights (B, m), ref_times (B, N)).
        ref_lengths, lengths: valid reference samples and knots per item, int64 (B,).
        lower, upper: initial bounds of each phi_i, shape (B, m).
        steps: a batch of :class:`Steps`.
        size: candidates per knot M.
        refinements, factor: refinement iterations and shrink factor eta.
        brute: use the O(M^2) kernel.

    Returns:
        ``(warp (B, m), history (B, refinements + 1), lower (B, m), upper (B, m))`` with the
        final bounds of the grid.
    """
    batch, knots = lower.shape
    warp = np.empty((batch, knots))
    history = np.empty((batch, refinements + 1))
    lower_out = np.empty((batch, knots))
    upper_out = np.empty((batch, knots))
    parallel = batch > 1 and int(lengths.sum()) * size >= PARALLEL_WORK
    kernel = _solve_gdtw_parallel if parallel else _solve_gdtw_serial
    kernel(costs, ref_lengths, lengths, lower, upper, steps, size, refinements, factor, brute, warp, history,
           lower_out, upper_out)
    return warp, history, lower_out, upper_out
