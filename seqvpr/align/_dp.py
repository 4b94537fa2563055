"""Dynamic-programming kernels for the discretised GDTW problem (CPU, numba).

Each knot i has a sorted grid of M candidate warp values ``grid[i, :]``. The DP computes

    V_0(j) = node_0(j)
    V_i(j) = node_i(j) + min_k { V_{i-1}(k) + a_i (grid[i, j] - grid[i-1, k] - s_i)^2 }
             over k with lo_i <= grid[i, j] - grid[i-1, k] <= hi_i

with a_i = lambda / dt_i, s_i = e dt_i (the expected step) and [lo_i, hi_i] the slope bounds
times dt_i. The minimum over k is a lower envelope of parabolas of equal curvature, i.e.

    a x^2 + min_k (m_k x + b_k),  m_k = -2 a c_k,  b_k = a c_k^2 + V_{i-1}(k),  c_k = grid[i-1, k] + s_i,

a minimum over lines. When only a lower slope bound applies (hi_i = inf, the default), the
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

import numpy as np
from numba import njit, prange

__all__ = ["solve_dp", "solve_gdtw"]

_INF = np.inf


@njit(cache=True, inline="always", error_model="numpy")
def _line_is_redundant(m1, b1, m2, b2, m3, b3):
    # Slopes m1 > m2 > m3. Line 2 never attains the minimum iff the intersection of lines
    # 1 and 3 lies left of (or at) the intersection of lines 1 and 2.
    return (b3 - b1) * (m1 - m2) <= (b2 - b1) * (m1 - m3)


@njit(cache=True, error_model="numpy")
def _step_hull(prev_grid, prev_cost, grid, node, a, shift, lo, tol, cost_out, arg_out,
               hull_m, hull_b, hull_k):
    count_prev = prev_grid.shape[0]
    origin = grid[0]
    size = 0
    best = 0
    k = 0
    for j in range(grid.shape[0]):
        x = grid[j]
        limit = x - lo + tol
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
def _step_scan(prev_grid, prev_cost, grid, node, a, shift, lo, hi, tol, brute, cost_out, arg_out):
    count_prev = prev_grid.shape[0]
    first = 0
    stop = 0
    for j in range(grid.shape[0]):
        x = grid[j]
        if brute:
            first, stop = 0, count_prev
        else:
            while first < count_prev and prev_grid[first] < x - hi - tol:
                first += 1
            while stop < count_prev and prev_grid[stop] <= x - lo + tol:
                stop += 1
        best_cost = _INF
        best_k = -1
        for k in range(first, stop):
            delta = x - prev_grid[k]
            if delta < lo - tol or delta > hi + tol or prev_cost[k] == _INF:
                continue
            step = delta - shift
            cost = prev_cost[k] + a * step * step
            if cost < best_cost:
                best_cost = cost
                best_k = k
        cost_out[j] = node[j] + best_cost
        arg_out[j] = best_k


@njit(cache=True, inline="always", error_model="numpy")
def _inserted_index(low, step, size, previous):
    nearest = 0 if step <= 0.0 else int(round((previous - low) / step))
    return min(max(nearest, 0), size - 1)


@njit(cache=True, error_model="numpy")
def _grid_row(low, high, size, refined, previous, out):
    """M values from low to high; after the first pass the previous optimum replaces its
    nearest grid point, so the previous path stays on the grid and the objective cannot rise."""
    step = (high - low) / (size - 1)
    for j in range(size):
        out[j] = low + step * j
    out[size - 1] = high
    if refined:
        out[_inserted_index(low, step, size, previous)] = previous


@njit(cache=True, error_model="numpy")
def _grid_value(low, high, size, refined, previous, j):
    """Entry j of the row :func:`_grid_row` builds, without building the row."""
    step = (high - low) / (size - 1)
    if refined and j == _inserted_index(low, step, size, previous):
        return previous
    return high if j == size - 1 else low + step * j


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


@njit(cache=True, error_model="numpy")
def _row(i, given, grid, node, low, high, refined, previous, cross, ref_sq, ref_next, query_sq,
         weights, ref_times, grid_out, node_out):
    """Knot i's candidates and node costs: copied from given arrays, or built from bounds."""
    if given:
        grid_out[:] = grid[i]
        node_out[:] = node[i]
    else:
        _grid_row(low[i], high[i], grid_out.shape[0], refined, previous[i], grid_out)
        _node_costs(grid_out, cross[i], ref_sq, ref_next, query_sq[i], weights[i], ref_times, node_out)


@njit(cache=True, error_model="numpy")
def _shortest_path(knots, size, given, grid, node, low, high, refined, previous, cross, ref_sq,
                   ref_next, query_sq, weights, ref_times, a, shift, lo, hi, tol, brute, path,
                   values, args):
    """DP over the knots of one item, two grid rows in memory at a time.

    Writes the optimal grid index (``path``) and value (``values``) per knot; returns the
    optimum (inf when no path is feasible).
    """
    rows = np.empty((2, size))
    node_row = np.empty(size)
    cost = np.empty(size)
    new_cost = np.empty(size)
    hull_m = np.empty(size)
    hull_b = np.empty(size)
    hull_k = np.empty(size, dtype=np.int64)
    _row(0, given, grid, node, low, high, refined, previous, cross, ref_sq, ref_next, query_sq,
         weights, ref_times, rows[0], cost)
    for i in range(1, knots):
        prev_grid, cur_grid = rows[(i - 1) % 2], rows[i % 2]
        _row(i, given, grid, node, low, high, refined, previous, cross, ref_sq, ref_next, query_sq,
             weights, ref_times, cur_grid, node_row)
        span = cur_grid[size - 1] - prev_grid[0]
        if brute or hi[i - 1] < span + tol:
            _step_scan(prev_grid, cost, cur_grid, node_row, a[i - 1], shift[i - 1], lo[i - 1],
                       hi[i - 1], tol, brute, new_cost, args[i])
        else:
            _step_hull(prev_grid, cost, cur_grid, node_row, a[i - 1], shift[i - 1], lo[i - 1],
                       tol, new_cost, args[i], hull_m, hull_b, hull_k)
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
        # ``previous`` may be ``values`` itself: knot i reads its entry before writing it.
        values[i] = grid[i, path[i]] if given else _grid_value(low[i], high[i], size, refined,
                                                                previous[i], path[i])
    return total


def _solve_grids_py(grid, node, a, shift, lo, hi, lengths, tol, brute, path, total):
    batch, _, size = grid.shape
    for b in prange(batch):
        length = lengths[b]
        args = np.empty((length, size), dtype=np.int32)
        values = np.empty(length)
        empty1 = np.empty(0)
        empty2 = np.empty((0, 0))
        total[b] = _shortest_path(length, size, True, grid[b], node[b], empty1, empty1, False, empty1,
                                  empty2, empty1, empty1, empty1, empty1, empty1, a[b], shift[b], lo[b],
                                  hi[b], tol[b], brute, path[b], values, args)
        path[b, length:] = path[b, length - 1]


_solve_grids = njit(cache=True, parallel=True, error_model="numpy")(_solve_grids_py)


def solve_dp(grid, node, a, shift, lo, hi, lengths, tol, brute=False):
    """Solves the discretised problem on given grids (one DP pass, no refinement).

    Args:
        grid: candidate warp values, shape (B, m, M), sorted along M, float64.
        node: weighted node costs at the candidates, shape (B, m, M), float64.
        a: regulariser curvature lambda / dt, shape (B, m - 1).
        shift: expected step e * dt, shape (B, m - 1).
        lo, hi: bounds on the warp step grid[i] - grid[i - 1], shape (B, m - 1);
            ``hi`` may be inf.
        lengths: knots per item, shape (B,), int64; knots past it repeat the last one.
        tol: feasibility tolerance per item, shape (B,).
        brute: use the O(M^2) oracle kernel.

    Returns:
        ``(path, cost)``: optimal grid index per knot (B, m) int64 and the optimal
        discrete objective (B,); cost is inf where no feasible path exists.
    """
    batch, knots, _ = grid.shape
    path = np.zeros((batch, knots), dtype=np.int64)
    total = np.empty(batch)
    _solve_grids(grid, node, a, shift, lo, hi, lengths, tol, brute, path, total)
    return path, total


def _solve_gdtw_py(cross, ref_sq, ref_next, query_sq, weights, ref_times, ref_lengths, lengths,
                   lower, upper, a, shift, lo, hi, tol, size, refinements, factor, brute,
                   warp, history, lower_out, upper_out):
    for b in prange(cross.shape[0]):
        knots = lengths[b]
        count = ref_lengths[b]
        low = lower[b, :knots].copy()
        high = upper[b, :knots].copy()
        path = np.zeros(knots, dtype=np.int64)
        values = np.empty(knots)
        args = np.empty((knots, size), dtype=np.int32)
        empty2 = np.empty((0, 0))
        for iteration in range(refinements + 1):
            history[b, iteration] = _shortest_path(
                knots, size, False, empty2, empty2, low, high, iteration > 0, values,
                cross[b, :knots, :count], ref_sq[b, :count], ref_next[b, :count], query_sq[b],
                weights[b], ref_times[b, :count], a[b], shift[b], lo[b], hi[b], tol[b], brute, path,
                values, args)
            if iteration == refinements:
                break
            for i in range(knots):
                # Shrink the range by `factor` around the optimum, shifted to stay inside.
                half = 0.5 * factor * (high[i] - low[i])
                new_low = min(max(low[i], values[i] - half), high[i] - 2.0 * half)
                high[i] = max(min(high[i], values[i] + half), low[i] + 2.0 * half)
                low[i] = new_low
        warp[b, :knots] = values
        warp[b, knots:] = values[knots - 1]
        lower_out[b, :knots] = low
        upper_out[b, :knots] = high
        lower_out[b, knots:] = low[knots - 1]
        upper_out[b, knots:] = high[knots - 1]


_solve_gdtw_parallel = njit(cache=True, parallel=True, error_model="numpy")(_solve_gdtw_py)
_solve_gdtw_serial = njit(cache=True, error_model="numpy")(_solve_gdtw_py)

# Below this much DP work (knots x candidates summed over the batch) thread start-up costs
# more than it saves.
PARALLEL_WORK = 200_000


def solve_gdtw(cross, ref_sq, ref_next, query_sq, weights, ref_times, ref_lengths, lengths,
               lower, upper, a, shift, lo, hi, tol, size, refinements, factor, brute):
    """Runs the DP with iterative refinement for a batch (all arrays float64 numpy).

    Args:
        cross: <Q_i, R_k>, shape (B, m, N).
        ref_sq: ||R_k||^2, shape (B, N).
        ref_next: <R_k, R_k+1>, shape (B, N - 1).
        query_sq: ||Q_i||^2, shape (B, m).
        weights: trapezoid weights, shape (B, m).
        ref_times: reference times, shape (B, N).
        ref_lengths, lengths: valid reference samples and knots per item, int64 (B,).
        lower, upper: initial bounds of each phi_i, shape (B, m).
        a, shift, lo, hi, tol: as in :func:`solve_dp`.
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
    kernel(cross, ref_sq, ref_next, query_sq, weights, ref_times, ref_lengths, lengths, lower, upper,
           a, shift, lo, hi, tol, size, refinements, factor, brute, warp, history, lower_out, upper_out)
    return warp, history, lower_out, upper_out
