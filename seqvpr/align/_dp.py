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
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["solve_dp"]

_INF = np.inf


@njit(cache=True, inline="always")
def _line_is_redundant(m1, b1, m2, b2, m3, b3):
    # Slopes m1 > m2 > m3. Line 2 never attains the minimum iff the intersection of lines
    # 1 and 3 lies left of (or at) the intersection of lines 1 and 2.
    return (b3 - b1) * (m1 - m2) <= (b2 - b1) * (m1 - m3)


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True, parallel=True)
def _solve(grid, node, a, shift, lo, hi, lengths, tol, brute, path, total):
    batch, _, size = grid.shape
    for b in prange(batch):
        length = lengths[b]
        args = np.empty((length, size), dtype=np.int64)
        cost = node[b, 0].copy()
        new_cost = np.empty(size)
        hull_m = np.empty(size)
        hull_b = np.empty(size)
        hull_k = np.empty(size, dtype=np.int64)
        for i in range(1, length):
            span = grid[b, i, size - 1] - grid[b, i - 1, 0]
            if brute or hi[b, i - 1] < span + tol[b]:
                _step_scan(grid[b, i - 1], cost, grid[b, i], node[b, i], a[b, i - 1],
                           shift[b, i - 1], lo[b, i - 1], hi[b, i - 1], tol[b], brute,
                           new_cost, args[i])
            else:
                _step_hull(grid[b, i - 1], cost, grid[b, i], node[b, i], a[b, i - 1],
                           shift[b, i - 1], lo[b, i - 1], tol[b], new_cost, args[i],
                           hull_m, hull_b, hull_k)
            cost, new_cost = new_cost, cost
        j = np.argmin(cost)
        total[b] = cost[j]
        path[b, length - 1] = j
        for i in range(length - 1, 0, -1):
            j = args[i, j]
            if j < 0:
                break
            path[b, i - 1] = j
        for i in range(length, grid.shape[1]):
            path[b, i] = path[b, length - 1]


def solve_dp(
    grid: np.ndarray,
    node: np.ndarray,
    a: np.ndarray,
    shift: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    lengths: np.ndarray,
    tol: np.ndarray,
    brute: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Solves the discretised problem for a batch.

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
    _solve(grid, node, a, shift, lo, hi, lengths, tol, brute, path, total)
    return path, total
