"""GDTW solver: optimality against oracles, known answers, constraints, bad input."""


import numpy as np
import pytest
import torch
from helpers import random_signal_pair
from scipy.optimize import minimize

from seqvpr.align import GDTWConfig, Signal, gdtw, gdtw_objective, resolve_problem


def constraint_options(rng):
    """A random mix of slope bounds and band, some unconstrained."""
    choice = rng.integers(4)
    if choice == 0:
        return {}
    if choice == 1:
        return {"slope_min": float(rng.uniform(0.1, 0.6))}
    if choice == 2:
        return {"slope_max": float(rng.uniform(1.5, 3.0)), "slope_min": float(rng.uniform(0, 0.5))}
    return {"band": float(rng.uniform(0.2, 0.6))}


@pytest.mark.filterwarnings("ignore:subsequence alignment of item")  # random pairs: some queries are longer
@pytest.mark.parametrize("subsequence", [True, False])
def test_fast_solver_equals_brute_force_solver(subsequence):
    rng = np.random.default_rng(11 + subsequence)
    checked = 0
    for _ in range(25):
        reference, query = random_signal_pair(rng, batch=4, reference_length=int(rng.integers(4, 15)),
                                              query_length=int(rng.integers(2, 9)))
        options = dict(subsequence=subsequence, lam=float(rng.uniform(0, 1)), refinements=0,
                       grid_size=int(rng.integers(5, 40)), **constraint_options(rng))
        try:
            fast = gdtw(reference, query, GDTWConfig(**options))
        except ValueError as error:
            assert "infeasible" in str(error)
            continue
        brute = gdtw(reference, query, GDTWConfig(kernel="brute", **options))
        torch.testing.assert_close(fast.cost, brute.cost, rtol=1e-10, atol=1e-12)
        checked += 1
    assert checked >= 15


def assert_constraints_hold(result, reference, config, tol=1e-7):
    warp, knots = result.warp, result.knots
    problem = result.problem
    steps = warp.diff(dim=1)
    assert bool((steps >= problem.step_min - tol).all())
    assert bool((steps <= problem.step_max + tol).all())
    assert bool((warp >= reference.start[:, None] - tol).all())
    assert bool((warp <= reference.end[:, None] + tol).all())
    if config.band is not None:
        span = reference.end - reference.start
        centre = reference.start[:, None] + (knots - knots[:, :1]) / (knots[:, -1:] - knots[:, :1]) * span[:, None]
        assert bool(((warp - centre).abs() <= config.band * span[:, None] + tol).all())
    if not config.subsequence:
        torch.testing.assert_close(warp[:, 0], reference.start)
        torch.testing.assert_close(warp[:, -1], reference.end)


def slsqp_polish(reference, query, config, start):
    """Scipy SLSQP on the continuous problem, from the DP answer; returns (f, phi)."""
    problem = resolve_problem(reference, query, config)

    def objective(phi):
        warp = torch.tensor(phi[None], dtype=torch.float64, requires_grad=True)
        value = gdtw_objective(reference, query, warp, problem=problem)[0]
        (gradient,) = torch.autograd.grad(value, warp)
        return float(value.detach()), gradient[0].numpy()

    step_min = problem.step_min[0].numpy()
    step_max = problem.step_max[0].numpy()
    constraints = [{"type": "ineq", "fun": lambda p: np.diff(p) - step_min,
                    "jac": lambda p: np.eye(len(p))[1:] - np.eye(len(p))[:-1]}]
    if np.isfinite(step_max).all():
        constraints.append({"type": "ineq", "fun": lambda p: step_max - np.diff(p),
                            "jac": lambda p: np.eye(len(p))[:-1] - np.eye(len(p))[1:]})
    bounds = list(zip(problem.lower[0].numpy(), problem.upper[0].numpy()))
    solution = minimize(objective, start, jac=True, method="SLSQP", bounds=bounds,
                        constraints=constraints, options={"ftol": 1e-14, "maxiter": 500})
    return objective(solution.x)[0], solution.x


@pytest.mark.filterwarnings("ignore:subsequence alignment of item")  # random pairs: some queries are longer
def test_refined_dp_is_within_1e_4_of_slsqp_and_refinement_never_raises_the_objective():
    rng = np.random.default_rng(2023)
    compared = 0
    gaps = []
    while compared < 30:
        subsequence = compared % 2 == 0
        reference, query = random_signal_pair(rng, reference_length=int(rng.integers(6, 20)),
                                              query_length=int(rng.integers(3, 10)), dim=4)
        config = GDTWConfig(subsequence=subsequence, lam=float(rng.uniform(0.05, 1.0)),
                            grid_size=50, **constraint_options(rng))
        try:
            result = gdtw(reference, query, config)
        except ValueError:
            continue
        history = result.cost_history[0]
        assert bool((history[1:] <= history[:-1] * (1 + 1e-12) + 1e-15).all()), history
        dp_cost = float(result.cost[0])
        # The reported cost is the objective at the reported warp.
        assert float(gdtw_objective(reference, query, result.warp, config)[0]) == pytest.approx(dp_cost, rel=1e-9)
        assert_constraints_hold(result, reference, config)
        nlp_cost, _ = slsqp_polish(reference, query, config, result.warp[0].numpy())
        gaps.append((dp_cost - nlp_cost) / max(nlp_cost, 1e-12))
        assert dp_cost <= nlp_cost * (1 + 1e-4) + 1e-12, (dp_cost, nlp_cost)
        compared += 1
    assert max(gaps) <= 1e-4


def test_identical_signals_give_the_identity_warp():
    rng = np.random.default_rng(0)
    reference, _ = random_signal_pair(rng, batch=3, reference_length=15)
    result = gdtw(reference, reference, GDTWConfig(subsequence=False, lam=0.1))
    error = (result.warp - reference.times).abs()
    # Exact up to the final grid's resolution (the optimum, phi = t, is not a grid point).
    assert bool((error <= result.grid_spacing + 1e-12).all())
    assert float(result.grid_spacing.max()) < 1e-3
    assert float(result.cost.max()) < 1e-5


def test_time_shifted_copy_is_found_in_subsequence_mode():
    rng = np.random.default_rng(5)
    reference, _ = random_signal_pair(rng, batch=4, reference_length=25, dim=8)
    # The query is reference samples 7..16 with its own clock starting at 100 s.
    values = reference.values[:, 7:17]
    query = Signal(reference.times[:, 7:17] - reference.times[:, 7:8] + 100.0, values)
    config = GDTWConfig(subsequence=True, lam=0.1)
    result = gdtw(reference, query, config)
    spacing = (reference.end - reference.start) / (config.grid_size or 50)
    error = (result.warp - reference.times[:, 7:17]).abs().max(dim=1).values
    assert bool((error <= spacing * 0.125**3).all()), error


def test_constant_tempo_stretch_gives_the_right_slope():
    # Reference f(tau) on [0, 20]; the query plays it twice as fast: Q(t) = f(2 t).
    tau = torch.linspace(0, 20, 41, dtype=torch.float64)
    values = torch.stack([torch.sin(0.7 * tau), torch.cos(0.3 * tau) + 0.1 * tau], dim=-1)
    reference = Signal(tau, values)
    query = Signal(tau[::4] / 2, values[::4])
    # Full alignment infers e = T_ref / T_query = 2; a subsequence assumes e = 1 unless told.
    for options in ({"subsequence": False}, {"subsequence": True, "expected_slope": 2.0}):
        result = gdtw(reference, query, GDTWConfig(lam=0.1, **options))
        slope = result.warp.diff(dim=1) / result.knots.diff(dim=1)
        torch.testing.assert_close(slope, torch.full_like(slope, 2.0), atol=2e-3, rtol=0)


def test_variable_length_batch_equals_item_by_item():
    rng = np.random.default_rng(9)
    items = []
    for reference_length, query_length in [(10, 4), (14, 7), (6, 3)]:
        reference, query = random_signal_pair(rng, reference_length=reference_length, query_length=query_length)
        items.append((reference, query))
    reference = Signal.from_sequences([(r.times[0], r.values[0]) for r, _ in items])
    query = Signal.from_sequences([(q.times[0], q.values[0]) for _, q in items])
    for subsequence in (True, False):
        config = GDTWConfig(subsequence=subsequence, grid_size=30, lam=0.3)
        batched = gdtw(reference, query, config)
        for index, (item_reference, item_query) in enumerate(items):
            single = gdtw(item_reference, item_query, config)
            length = item_query.max_length
            torch.testing.assert_close(batched.warp[index, :length], single.warp[0], atol=1e-9, rtol=0)
            torch.testing.assert_close(batched.cost[index], single.cost[0])
            assert bool((batched.warp[index, length:] == single.warp[0, -1]).all())


def test_custom_knot_grid():
    rng = np.random.default_rng(4)
    reference, query = random_signal_pair(rng, reference_length=20, query_length=8)
    knots = torch.linspace(float(query.start[0]), float(query.end[0]), 15, dtype=torch.float64)
    result = gdtw(reference, query, GDTWConfig(subsequence=True, knots=knots))
    assert result.warp.shape == (1, 15)
    torch.testing.assert_close(result.knots[0], knots)
    with pytest.raises(ValueError, match="outside the query"):
        gdtw(reference, query, GDTWConfig(knots=knots + 100.0))


def test_float32_matches_float64():
    rng = np.random.default_rng(8)
    reference, query = random_signal_pair(rng, batch=4, reference_length=25, query_length=10, dim=32)
    config = GDTWConfig(subsequence=True)
    double = gdtw(reference, query, config)
    single = gdtw(reference.to(torch.float32), query.to(torch.float32), config)
    assert single.warp.dtype == torch.float64
    torch.testing.assert_close(single.cost, double.cost, rtol=1e-4, atol=1e-5)


def test_epoch_timestamps_with_float32_descriptors_keep_sub_millisecond_warps():
    # RobotCar-style times (~1.4e9 s since 1970) with float32 NetVLAD-like descriptors.
    rng = np.random.default_rng(6)
    reference, _ = random_signal_pair(rng, batch=2, reference_length=25, dim=16)
    epoch = 1.418e9
    reference = Signal(reference.times + epoch, reference.values.to(torch.float32))
    query = Signal(reference.times[:, 5:15] + 3600.0, reference.values[:, 5:15])
    result = gdtw(reference, query, GDTWConfig(subsequence=True))
    error = (result.warp - reference.times[:, 5:15]).abs().max()
    assert float(error) < 1e-3


def test_per_item_parameters_equal_separate_solves():
    rng = np.random.default_rng(10)
    reference, query = random_signal_pair(rng, batch=2, reference_length=12, query_length=6)
    lam = torch.tensor([0.05, 2.0], dtype=torch.float64)
    band = torch.tensor([0.3, 1.0], dtype=torch.float64)
    batched = gdtw(reference, query, GDTWConfig(lam=lam, band=band))
    for index in range(2):
        single = gdtw(Signal(reference.times[index:index + 1], reference.values[index:index + 1]),
                      Signal(query.times[index:index + 1], query.values[index:index + 1]),
                      GDTWConfig(lam=float(lam[index]), band=float(band[index])))
        torch.testing.assert_close(batched.warp[index], single.warp[0])


def test_inputs_are_not_modified():
    rng = np.random.default_rng(12)
    reference, query = random_signal_pair(rng, batch=2)
    before = [t.clone() for t in (reference.times, reference.values, query.times, query.values)]
    gdtw(reference, query, GDTWConfig(subsequence=True))
    for original, tensor in zip(before, (reference.times, reference.values, query.times, query.values)):
        assert torch.equal(original, tensor)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lam": -0.1}, "lam must be finite and >= 0"),
        ({"band": 1.5}, r"band must be in \[0, 1\]"),
        ({"slope_min": 2.0, "slope_max": 1.0}, "slope_max must be >= slope_min"),
        ({"slope_min": -1.0}, "slope_min must be finite and >= 0"),
        ({"grid_size": 1}, "grid_size must be an integer >= 2"),
        ({"refine_factor": 1.5}, r"refine_factor must be in \(0, 1\)"),
        ({"refinements": -1}, "refinements must be an integer >= 0"),
        ({"kernel": "gpu"}, "kernel must be"),
        ({"lam": torch.ones(3)}, r"lam must be a scalar or have shape \(2,\)"),
        ({"expected_slope": 0.0}, "expected_slope must be finite and > 0"),
    ],
)
def test_bad_options_raise(options, message):
    rng = np.random.default_rng(0)
    reference, query = random_signal_pair(rng, batch=2)
    with pytest.raises(ValueError, match=message):
        gdtw(reference, query, GDTWConfig(**options))


def test_mismatched_signals_raise():
    rng = np.random.default_rng(0)
    reference, query = random_signal_pair(rng, batch=2, dim=3)
    _, other_dim = random_signal_pair(rng, batch=2, dim=4)
    _, other_batch = random_signal_pair(rng, batch=3, dim=3)
    with pytest.raises(ValueError, match="feature dimensions differ: reference has D = 3, query D = 4"):
        gdtw(reference, other_dim)
    with pytest.raises(ValueError, match="batch sizes differ: reference has 2, query 3"):
        gdtw(reference, other_batch)


def test_infeasible_constraints_are_reported():
    rng = np.random.default_rng(0)
    reference, query = random_signal_pair(rng, batch=2)
    # Full alignment needs an average slope of exactly e; s_max < 1 cannot reach the end.
    with pytest.raises(ValueError, match="infeasible constraints for item 0 \\(full alignment\\)"):
        gdtw(reference, query, GDTWConfig(slope_max=0.5))
    # A subsequence that must move at >= 100 x e cannot fit inside the reference.
    with pytest.raises(ValueError, match="subsequence alignment"):
        gdtw(reference, query, GDTWConfig(subsequence=True, slope_min=100.0))


def test_tight_feasible_constraints_still_solve():
    rng = np.random.default_rng(1)
    reference, query = random_signal_pair(rng, batch=2)
    # Full alignment with slope exactly e: the only feasible warp is the diagonal.
    result = gdtw(reference, query, GDTWConfig(slope_min=1.0, slope_max=1.0))
    span = reference.end - reference.start
    diagonal = reference.start[:, None] + (query.times - query.start[:, None]) / query.duration[:, None] * span[:, None]
    torch.testing.assert_close(result.warp, diagonal, atol=1e-7, rtol=0)
    assert bool(torch.isfinite(result.cost).all())


@pytest.mark.requires_cuda
def test_cuda_equals_cpu():
    rng = np.random.default_rng(3)
    reference, query = random_signal_pair(rng, batch=8, reference_length=25, query_length=10, dim=64)
    config = GDTWConfig(subsequence=True)
    cpu = gdtw(reference.to(torch.float32), query.to(torch.float32), config)
    cuda = gdtw(reference.to("cuda", torch.float32), query.to("cuda", torch.float32), config)
    assert cuda.warp.device.type == "cuda"
    torch.testing.assert_close(cuda.warp.cpu(), cpu.warp, atol=1e-4, rtol=0)
    torch.testing.assert_close(cuda.cost.cpu(), cpu.cost, rtol=1e-4, atol=1e-6)
