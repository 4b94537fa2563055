"""DecDTW against an exact solve written in the test (tests/align/oracle.py): the forward warp
is the exact local optimum, and the implicit gradient matches central finite differences of
the exactly solved warp, on problems of every size.

Each case prints one row: problem, directions compared, max and 95th-percentile relative
error, directions skipped (finite differences unstable across eps). Run with ``-s`` to see it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from seqvpr.align import GDTWConfig, Signal, decdtw, gdtw
from seqvpr.align._active_set import CONVERGED, local_optimum
from oracle import GDTWItem, exact_solve, finite_difference, random_item, slsqp

F64 = torch.float64


def _signals(item: GDTWItem, ref_values=None, query_values=None) -> tuple[Signal, Signal]:
    ref_values = torch.from_numpy(item.ref_values) if ref_values is None else ref_values
    query_values = torch.from_numpy(item.query_values) if query_values is None else query_values
    return (Signal(torch.from_numpy(item.ref_times)[None], ref_values[None]),
            Signal(torch.from_numpy(item.knots)[None], query_values[None]))


def _layer(item: GDTWItem, grid_size: int | None, weights: np.ndarray):
    """The layer's warp and the gradient of L = sum_i v_i phi_i for values and lambda."""
    leaves = (torch.tensor(item.ref_values, requires_grad=True), torch.tensor(item.query_values, requires_grad=True),
              torch.tensor(item.lam, dtype=F64, requires_grad=True))
    reference, query = _signals(item, *leaves[:2])
    config = GDTWConfig(subsequence=item.subsequence, lam=leaves[2], grid_size=grid_size)
    warp = decdtw(reference, query, config)[0]
    grads = torch.autograd.grad(warp @ torch.from_numpy(weights), leaves)
    return warp.detach().numpy(), [g.numpy() for g in grads]


def _compare(label: str, items: list[GDTWItem], grid_size: int | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    errors, skipped = [], 0
    for item in items:
        reference, query = _signals(item)
        start = gdtw(reference, query, GDTWConfig(subsequence=item.subsequence, lam=item.lam, grid_size=grid_size))
        solved = exact_solve(item, start.warp[0].numpy())
        assert solved is not None, f"{label}: the oracle found no KKT point"
        exact, face = solved
        weights = rng.normal(size=len(item.knots))
        warp, grads = _layer(item, grid_size, weights)
        span = item.ref_times[-1] - item.ref_times[0]
        # The forward warp is the exact local optimum.
        assert np.abs(warp - exact).max() <= 1e-9 * (1 + span), label
        assert item.objective(warp) <= item.objective(exact) * (1 + 1e-12) + 1e-15, label
        for name, grad in zip(("ref_values", "query_values", "lam"), grads):
            for _ in range(3):
                direction = rng.normal(size=grad.shape) if name != "lam" else rng.choice([-1.0, 1.0])
                numeric = finite_difference(item, face, exact, name, direction, weights)
                if numeric is None:
                    skipped += 1
                    continue
                analytic = float((grad * direction).sum())
                errors.append(abs(analytic - numeric) / max(abs(numeric), 1e-9 * np.abs(weights).sum()))
    errors = np.array(errors)
    print(f"\n{label}: {len(errors)} directions, max rel. error {errors.max():.1e}, "
          f"95th percentile {np.percentile(errors, 95):.1e}, skipped {skipped}")
    assert skipped <= 0.1 * (len(errors) + skipped), (label, skipped)
    assert np.mean(errors <= 1e-3) >= 0.95, (label, np.sort(errors)[-5:])
    assert errors.max() <= 1e-2, (label, errors.max())


def _items(family, ref_length, query_length, dim, subsequence, seeds):
    return [random_item(np.random.default_rng(seed), family, ref_length, query_length, dim, subsequence)
            for seed in seeds]


@pytest.mark.parametrize("dim", [16, 128])
@pytest.mark.parametrize("family", ["smooth", "descriptors"])
def test_gradients_match_an_exact_solve_vpr_size(family, dim):
    """Subsequence, 10 frames into 25 (the VPR setting)."""
    _compare(f"subsequence 10->25 {family} D={dim}", _items(family, 25, 10, dim, True, range(4)), None, dim)


@pytest.mark.parametrize("dim", [16, 128])
def test_gradients_match_an_exact_solve_full_25(dim):
    _compare(f"full 25->25 smooth D={dim}", _items("smooth", 25, 25, dim, False, range(3)), None, dim)


@pytest.mark.slow
@pytest.mark.parametrize(
    "label, family, ref_length, query_length, dim, subsequence, seeds, grid_size",
    [
        ("full 100->100 smooth D=16", "smooth", 100, 100, 16, False, range(3), None),
        ("full 100->100 smooth D=128", "smooth", 100, 100, 128, False, range(2), None),
        ("full 400->400 smooth D=16", "smooth", 400, 400, 16, False, range(1), None),
        ("full 400->400 smooth D=128", "smooth", 400, 400, 128, False, range(1, 2), None),
        ("subsequence 256->282 smooth D=16 M=512", "smooth", 282, 256, 16, True, range(2, 3), 512),
        ("subsequence 256->282 smooth D=128 M=512", "smooth", 282, 256, 128, True, range(2), 512),
        ("subsequence 256->282 descriptors D=128 M=512", "descriptors", 282, 256, 128, True, range(1), 512),
    ],
)
def test_gradients_match_an_exact_solve_large(label, family, ref_length, query_length, dim, subsequence, seeds,
                                             grid_size):
    _compare(label, _items(family, ref_length, query_length, dim, subsequence, seeds), grid_size, query_length)


def test_objective_is_within_1e_10_of_slsqp_from_the_layers_warp():
    for seed in range(6):
        item = random_item(np.random.default_rng(seed), ["smooth", "descriptors"][seed % 2], 25,
                           10 if seed < 4 else 25, 16, seed < 4)
        warp, _ = _layer(item, None, np.ones(len(item.knots)))
        polished = slsqp(item, warp)
        assert item.objective(warp) <= item.objective(polished) * (1 + 1e-10), seed


def test_a_knot_1e_5_from_a_reference_sample_moves_with_the_inputs():
    """The warp is built first, with knot 3 at tau_8 + 1e-5, closer than the final grid spacing;
    the query is chosen so that this warp is stationary (and, its knots strictly inside their
    segments with a positive-definite Hessian, the local minimum)."""
    rng = np.random.default_rng(5)
    ref_times = np.arange(20.0)
    ref_values = np.cumsum(rng.normal(size=(20, 2)), 0)
    knots = np.arange(8.0)
    warp = 5.3 + knots + rng.uniform(-0.2, 0.2, 8)
    warp[3] = 8.0 + 1e-5
    lam = 0.1
    item = GDTWItem(ref_times, ref_values, knots, np.zeros((8, 2)), lam, True)
    segment = item.segments(warp)
    delta = ref_values[segment + 1] - ref_values[segment]
    at_warp = np.stack([np.interp(warp, ref_times, v) for v in ref_values.T], -1)
    # Data slope 2 w <R(phi) - Q, delta> / h must cancel the regulariser's slope (h = 1).
    offset = item.regulariser_gradient(warp) / (2 * item.weights)
    query = at_warp + offset[:, None] * delta / (delta**2).sum(-1, keepdims=True)
    item = replace(item, query_values=query)
    reference, query_signal = _signals(item)
    solved = gdtw(reference, query_signal, GDTWConfig(subsequence=True, lam=lam))
    assert float(solved.grid_spacing[0, 3]) > 1e-5  # the old "within a grid spacing" rule calls it a kink

    weights = np.zeros(8)
    weights[3] = 1.0
    layer_warp, grads = _layer(item, None, weights)
    np.testing.assert_allclose(layer_warp, warp, rtol=0, atol=1e-11)
    exact, face = exact_solve(item, solved.warp[0].numpy())
    np.testing.assert_allclose(exact, warp, rtol=0, atol=1e-11)
    for name, grad in zip(("ref_values", "query_values", "lam"), grads):
        direction = rng.normal(size=grad.shape) if name != "lam" else 1.0
        # Steps small enough that knot 3 stays on its side of tau_8.
        numeric = finite_difference(item, face, exact, name, direction, weights, (1e-6, 1e-7, 1e-8))
        assert numeric is not None and abs(numeric) > 1e-3  # the knot does move
        assert float((grad * direction).sum()) == pytest.approx(numeric, rel=1e-5), name


@pytest.mark.filterwarnings("ignore:subsequence alignment of item")
@pytest.mark.parametrize("subsequence", [True, False])
def test_the_working_set_iterations_converge_on_random_problems(subsequence):
    """No item falls back to the DP answer: lambda from 0 to 10, with and without slope and
    band constraints, smooth and descriptor-like signals, D from 4 to 128."""
    rng = np.random.default_rng(11)
    options = [{}, {"slope_max": 1.3}, {"slope_min": 0.7}, {"band": 0.1}, {"slope_min": 0.5, "slope_max": 2.0}]
    statuses, iterations = [], []
    for trial in range(60):
        ref_length = int(rng.choice([25, 60]))
        item = random_item(rng, ["smooth", "descriptors"][trial % 2], ref_length,
                           int(ref_length * (0.4 if subsequence else 0.8)), int(rng.choice([4, 16, 128])), subsequence,
                           lam=float(rng.choice([0.0, 0.01, 0.1, 1.0, 10.0])))
        reference, query = _signals(item)
        config = GDTWConfig(subsequence=subsequence, lam=item.lam, **options[trial % 5])
        try:
            result = gdtw(reference, query, config)
        except ValueError:
            continue  # constraints that leave no feasible warp
        band = None if config.band is None else torch.tensor([config.band], dtype=F64)
        optimum = local_optimum(reference, result, band)
        statuses.append(int(optimum.status[0]))
        iterations.append(int(optimum.iterations[0]))
    print(f"\n{len(statuses)} problems (subsequence={subsequence}): working-set iterations median "
          f"{np.median(iterations):.0f}, max {max(iterations)}; fell back: {sum(s != CONVERGED for s in statuses)}")
    assert len(statuses) >= 40
    assert statuses == [CONVERGED] * len(statuses)


def test_an_item_that_does_not_converge_keeps_the_dp_answer_and_says_so(monkeypatch, caplog):
    import seqvpr.align._active_set as active_set

    solve = active_set.solve_faces

    def first_item_fails(inputs):
        result = solve(inputs)
        result.status[0] = active_set.ITERATION_LIMIT
        result.warp[0] = inputs.start[0]
        return result

    monkeypatch.setattr(active_set, "solve_faces", first_item_fails)
    items = [random_item(np.random.default_rng(seed), "smooth", 25, 10, 8, True) for seed in (1, 2)]
    reference = Signal(torch.from_numpy(np.stack([x.ref_times for x in items])),
                       torch.tensor(np.stack([x.ref_values for x in items]), requires_grad=True))
    query = Signal(torch.from_numpy(np.stack([x.knots for x in items])),
                   torch.from_numpy(np.stack([x.query_values for x in items])))
    config = GDTWConfig(subsequence=True, lam=0.1)
    with caplog.at_level("WARNING", logger="seqvpr.align.decdtw"):
        warp = decdtw(reference, query, config)
    assert "1 of 2 items kept the DP answer" in caplog.text
    solved = gdtw(reference, query, config)
    torch.testing.assert_close(warp[0].detach(), solved.warp[0], rtol=0, atol=0)
    assert not torch.equal(warp[1].detach(), solved.warp[1])  # the other item is polished
    warp.sum().backward()
    assert bool(torch.isfinite(reference.values.grad).all())
