"""The fast DP kernel against the brute-force O(M^2) kernel and a textbook DP."""

import math

import numpy as np
import pytest

from seqvpr.align._dp import solve_dp


def textbook_dp(grid, node, a, shift, lo, hi, tol):
    """Plain shortest path over the m x M graph, one item, no cleverness."""
    knots, size = grid.shape
    value = list(node[0])
    for i in range(1, knots):
        new = []
        for j in range(size):
            best = math.inf
            for k in range(size):
                step = grid[i, j] - grid[i - 1, k]
                if step < lo[i - 1] - tol or step > hi[i - 1] + tol:
                    continue
                best = min(best, value[k] + a[i - 1] * (step - shift[i - 1]) ** 2)
            new.append(node[i, j] + best)
        value = new
    return min(value)


def path_cost(grid, node, a, shift, path):
    knots = grid.shape[0]
    phi = grid[np.arange(knots), path]
    return node[np.arange(knots), path].sum() + (a * (np.diff(phi) - shift) ** 2).sum()


def random_dp_problem(rng, batch, knots, size, slope_max_finite, slope_min_positive, lam_zero=False):
    start = np.sort(rng.uniform(0, 3, size=(batch, knots)), axis=1)
    width = rng.uniform(0.5, 4, size=(batch, knots))
    grid = start[..., None] + width[..., None] * np.linspace(0, 1, size)
    # Repeated values (pinned knots) must be handled too.
    grid[:, 0] = grid[:, 0, :1]
    node = rng.exponential(size=(batch, knots, size))
    dt = rng.uniform(0.3, 1.5, size=(batch, knots - 1))
    lam = 0.0 if lam_zero else rng.uniform(0.01, 3.0, size=(batch, 1))
    a = lam / dt * np.ones_like(dt)
    shift = rng.uniform(0.5, 1.5, size=(batch, 1)) * dt
    lo = rng.uniform(0, 0.6, size=(batch, 1)) * dt if slope_min_positive else np.zeros_like(dt)
    lo = lo * np.ones_like(dt)
    hi = np.full_like(dt, np.inf)
    if slope_max_finite:
        hi = rng.uniform(1.5, 4.0, size=(batch, 1)) * dt
    lengths = np.full(batch, knots, dtype=np.int64)
    tol = np.full(batch, 1e-9)
    return grid, node, a, shift, lo, hi, lengths, tol


@pytest.mark.parametrize("slope_max_finite", [False, True])
@pytest.mark.parametrize("slope_min_positive", [False, True])
def test_fast_kernel_matches_brute_kernel_on_many_problems(slope_max_finite, slope_min_positive):
    rng = np.random.default_rng(1234 + 2 * slope_max_finite + slope_min_positive)
    feasible = 0
    for trial in range(40):
        size = int(rng.integers(2, 40))
        knots = int(rng.integers(2, 12))
        problem = random_dp_problem(rng, 8, knots, size, slope_max_finite, slope_min_positive, lam_zero=trial % 10 == 0)
        fast_path, fast_cost = solve_dp(*problem)
        brute_path, brute_cost = solve_dp(*problem, brute=True)
        finite = np.isfinite(brute_cost)
        feasible += finite.sum()
        np.testing.assert_array_equal(np.isfinite(fast_cost), finite)
        np.testing.assert_allclose(fast_cost[finite], brute_cost[finite], rtol=1e-10, atol=1e-12)
        grid, node, a, shift = problem[:4]
        for b in np.flatnonzero(finite):
            # The returned path is feasible and its cost is the reported optimum.
            assert path_cost(grid[b], node[b], a[b], shift[b], fast_path[b]) == pytest.approx(fast_cost[b], rel=1e-10)
            steps = np.diff(grid[b][np.arange(knots), fast_path[b]])
            assert np.all(steps >= problem[4][b] - 1e-9) and np.all(steps <= problem[5][b] + 1e-9)
    assert feasible >= 100, "too few feasible random problems to test anything"


def test_brute_kernel_matches_textbook_dp():
    rng = np.random.default_rng(7)
    for trial in range(30):
        problem = random_dp_problem(rng, 1, int(rng.integers(2, 6)), int(rng.integers(2, 7)),
                                    slope_max_finite=trial % 2 == 0, slope_min_positive=trial % 3 == 0)
        _, cost = solve_dp(*problem, brute=True)
        grid, node, a, shift, lo, hi, _, tol = problem
        expected = textbook_dp(grid[0], node[0], a[0], shift[0], lo[0], hi[0], tol[0])
        if math.isinf(expected):
            assert math.isinf(cost[0])
        else:
            assert cost[0] == pytest.approx(expected, rel=1e-12)


def test_padded_knots_repeat_the_last_index():
    rng = np.random.default_rng(3)
    grid, node, a, shift, lo, hi, lengths, tol = random_dp_problem(rng, 2, 6, 9, False, False)
    lengths[1] = 3
    path, cost = solve_dp(grid, node, a, shift, lo, hi, lengths, tol)
    assert (path[1, 3:] == path[1, 2]).all()
    _, short_cost = solve_dp(grid[1:, :3].copy(), node[1:, :3].copy(), a[1:, :2].copy(), shift[1:, :2].copy(),
                             lo[1:, :2].copy(), hi[1:, :2].copy(), np.array([3]), tol[1:])
    assert cost[1] == pytest.approx(short_cost[0], rel=1e-12)
