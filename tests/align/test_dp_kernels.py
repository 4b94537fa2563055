"""The fast DP kernel against the brute-force O(M^2) kernel and a textbook DP."""

import math

import numpy as np
import pytest

from seqvpr.align._dp import GivenRows, Steps, solve_dp


def textbook_dp(grid, node, a, shift, step_min, step_max, tol):
    """Plain shortest path over the m x M graph, one item, no cleverness."""
    knots, size = grid.shape
    value = list(node[0])
    for i in range(1, knots):
        new = []
        for j in range(size):
            best = math.inf
            for k in range(size):
                step = grid[i, j] - grid[i - 1, k]
                if step < step_min[i - 1] - tol or step > step_max[i - 1] + tol:
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
    step_min = rng.uniform(0, 0.6, size=(batch, 1)) * dt if slope_min_positive else np.zeros_like(dt)
    step_min = step_min * np.ones_like(dt)
    step_max = np.full_like(dt, np.inf)
    if slope_max_finite:
        step_max = rng.uniform(1.5, 4.0, size=(batch, 1)) * dt
    lengths = np.full(batch, knots, dtype=np.int64)
    tol = np.full(batch, 1e-9)
    return GivenRows(grid, node), Steps(a, shift, step_min, step_max, tol), lengths


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
        (grid, node), (a, shift, step_min, step_max, _), _ = problem
        for b in np.flatnonzero(finite):
            # The returned path is feasible and its cost is the reported optimum.
            assert path_cost(grid[b], node[b], a[b], shift[b], fast_path[b]) == pytest.approx(fast_cost[b], rel=1e-10)
            steps = np.diff(grid[b][np.arange(knots), fast_path[b]])
            assert np.all(steps >= step_min[b] - 1e-9) and np.all(steps <= step_max[b] + 1e-9)
    assert feasible >= 100, "too few feasible random problems to test anything"


def test_brute_kernel_matches_textbook_dp():
    rng = np.random.default_rng(7)
    for trial in range(30):
        problem = random_dp_problem(rng, 1, int(rng.integers(2, 6)), int(rng.integers(2, 7)),
                                    slope_max_finite=trial % 2 == 0, slope_min_positive=trial % 3 == 0)
        _, cost = solve_dp(*problem, brute=True)
        (grid, node), (a, shift, step_min, step_max, tol), _ = problem
        expected = textbook_dp(grid[0], node[0], a[0], shift[0], step_min[0], step_max[0], tol[0])
        if math.isinf(expected):
            assert math.isinf(cost[0])
        else:
            assert cost[0] == pytest.approx(expected, rel=1e-12)


def test_padded_knots_repeat_the_last_index():
    rng = np.random.default_rng(3)
    rows, steps, lengths = random_dp_problem(rng, 2, 6, 9, False, False)
    lengths[1] = 3
    path, cost = solve_dp(rows, steps, lengths)
    assert (path[1, 3:] == path[1, 2]).all()
    short_rows = GivenRows(*(x[1:, :3].copy() for x in rows))
    short_steps = Steps(*(x[1:, :2].copy() for x in steps[:4]), steps.tol[1:])
    _, short_cost = solve_dp(short_rows, short_steps, np.array([3]))
    assert cost[1] == pytest.approx(short_cost[0], rel=1e-12)
