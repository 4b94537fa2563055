"""DecDTW layer: forward agrees with the solver, implicit gradients against gradcheck and
against finite differences of an independent exact solve (tests/align/oracle.py) with slope
and band constraints binding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqvpr.align import DecDTW, GDTWConfig, Signal, decdtw, gdtw, gdtw_objective
from seqvpr.align._implicit import solve_tridiagonal, solve_tridiagonal_pcr
from oracle import GDTWItem, exact_solve, finite_difference

F64 = torch.float64


def _curve(times: torch.Tensor, phase: float) -> torch.Tensor:
    return torch.stack(
        [torch.sin(0.7 * times + phase), torch.cos(0.5 * times + 2 * phase), 0.5 * torch.sin(0.3 * times)], -1
    )


def _pair(seed: int = 3, batch: int = 2, rate: float = 1.6, start: float = 2.0):
    """Smooth 3-D reference (8 samples on [0, 7] s) and a noisy, time-scaled query (5 samples)."""
    gen = torch.Generator().manual_seed(seed)
    ref_times = torch.linspace(0, 7, 8, dtype=F64).expand(batch, -1).contiguous()
    query_times = (torch.linspace(0, 3, 5, dtype=F64) + start).expand(batch, -1).contiguous()
    ref_values = _curve(ref_times, 0.0) + 0.05 * torch.randn(batch, 8, 3, dtype=F64, generator=gen)
    query_values = _curve(query_times * rate + 0.3, 0.0) + 0.05 * torch.randn(batch, 5, 3, dtype=F64, generator=gen)
    return ref_times, ref_values, query_times, query_values


def _param(value) -> torch.Tensor:
    return torch.tensor(value, dtype=F64, requires_grad=True)


def _warp_function(ref_times, query_times, names, **fixed):
    def function(ref_values, query_values, *params):
        config = GDTWConfig(grid_size=51, **fixed, **dict(zip(names, params)))
        return decdtw(Signal(ref_times, ref_values), Signal(query_times, query_values), config)

    return function


# ------------------------------------------------------------------------------------ forward
def test_shape_and_agreement_with_the_solver():
    ref_times, ref_values, query_times, query_values = _pair()
    reference, query = Signal(ref_times, ref_values), Signal(query_times, query_values)
    config = GDTWConfig(subsequence=True, lam=0.3, grid_size=51)
    solved = gdtw(reference, query, config)
    raw = decdtw(reference, query, config, polish=False)
    polished = decdtw(reference, query, config)
    assert polished.shape == (2, 5) and polished.dtype == F64
    torch.testing.assert_close(raw, solved.warp, rtol=0, atol=0)
    # Polish moves by at most a few final grid steps and never raises the objective.
    assert bool(((polished - solved.warp).abs() <= 3 * solved.grid_spacing + 1e-12).all())
    objective = gdtw_objective(reference, query, polished, problem=solved.problem)
    assert bool((objective <= solved.cost + 1e-12).all())


def test_polished_warp_is_stationary_where_free():
    ref_times, ref_values, query_times, query_values = _pair(rate=1.2)
    ref_values.requires_grad_(False)
    reference, query = Signal(ref_times, ref_values), Signal(query_times, query_values)
    config = GDTWConfig(subsequence=True, lam=0.3, grid_size=51)
    warp = decdtw(reference, query, config).detach().requires_grad_()
    gdtw_objective(reference, query, warp, config).sum().backward()
    interior = (warp > 0.05) & (warp < 6.95)
    knots_at_samples = (warp[..., None] - ref_times[:, None, :]).abs().amin(-1) < 1e-6
    free = interior & ~knots_at_samples
    assert bool(free.any())
    assert float(warp.grad[free].abs().max()) < 1e-9


def test_module_holds_hyperparameters_and_overrides():
    ref_times, ref_values, query_times, query_values = _pair()
    reference, query = Signal(ref_times, ref_values), Signal(query_times, query_values)
    layer = DecDTW(subsequence=True, lam=0.3, grid_size=51)
    torch.testing.assert_close(layer(reference, query), decdtw(reference, query, layer.config))
    heavy = layer(reference, query, lam=torch.tensor(30.0, dtype=F64))
    steps = heavy.diff(dim=1) / query_times.diff(dim=1)
    assert float((steps - 1).abs().max()) < 0.1  # a large lambda pulls the slope to e = 1
    assert "subsequence=True" in repr(layer)


@pytest.mark.parametrize("subsequence", [True, False])
def test_padded_batch_matches_items_alone(subsequence):
    ref_times, ref_values, query_times, query_values = _pair(batch=1)
    other = _pair(seed=9, batch=1, rate=1.3)
    ref_values.requires_grad_()
    other_values = other[1].clone().requires_grad_()
    short_times = torch.cat([other[2][:, :4], torch.zeros(1, 1, dtype=F64)], 1)
    batch_ref = Signal(torch.cat([ref_times, other[0]]), torch.cat([ref_values, other_values]))
    batch_query = Signal(
        torch.cat([query_times, short_times]), torch.cat([query_values, other[3]]), torch.tensor([5, 4])
    )
    config = GDTWConfig(subsequence=subsequence, lam=0.3, grid_size=51)
    warp = decdtw(batch_ref, batch_query, config)
    weights = torch.arange(1.0, 6.0, dtype=F64)
    (warp * weights).sum().backward()
    batch_grads = ref_values.grad.clone(), other_values.grad.clone()
    ref_values.grad = other_values.grad = None
    alone = [
        decdtw(Signal(ref_times, ref_values), Signal(query_times, query_values), config),
        decdtw(Signal(other[0], other_values), Signal(other[2][:, :4], other[3][:, :4]), config),
    ]
    torch.testing.assert_close(warp[0], alone[0][0])
    torch.testing.assert_close(warp[1, :4], alone[1][0])
    torch.testing.assert_close(warp[1, 4], alone[1][0, 3])
    ((alone[0] * weights).sum() + (alone[1] * weights[:4]).sum()).backward()
    torch.testing.assert_close(batch_grads[0], ref_values.grad)
    torch.testing.assert_close(batch_grads[1], other_values.grad)


# ------------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize(
    "fixed, params, binding",
    [
        ({"subsequence": True}, {"lam": 0.3}, ["lam"]),
        ({"subsequence": False}, {"lam": 0.3}, ["lam"]),
        ({"subsequence": True}, {"lam": 0.3, "slope_min": 1.9}, ["slope_min"]),
        ({"subsequence": True}, {"lam": 0.3, "slope_max": [1.05, 1.1]}, ["slope_max"]),
        ({"subsequence": False}, {"lam": 0.3, "band": 0.05}, ["band"]),
        ({"subsequence": False}, {"lam": 0.3, "slope_min": 0.7, "slope_max": 1.5}, ["slope_min", "slope_max"]),
        ({"subsequence": True}, {"lam": 0.3, "band": 0.1}, ["band"]),
        ({"subsequence": True}, {"lam": 0.3, "slope_min": [[0.1, 0.2, 0.3, 0.4]] * 2, "slope_max": 5.0}, []),
    ],
    ids=["subsequence", "full", "slope_min_active", "slope_max_active", "band_full", "slopes_full",
         "band_subsequence", "per_interval_slopes_inactive"],
)
def test_gradcheck(fixed, params, binding, gradcheck):
    ref_times, ref_values, query_times, query_values = _pair(rate=1.2 if binding == ["slope_max"] else 1.6)
    ref_values.requires_grad_()
    query_values.requires_grad_()
    tensors = [_param(value) for value in params.values()]
    function = _warp_function(ref_times, query_times, list(params), **fixed)
    assert gradcheck(function, ref_values, query_values, *tensors, atol=1e-5)
    # The constraints named in the case really bind (their gradient is not zero); the
    # others do not (zero gradient).
    warp = function(ref_values, query_values, *tensors)
    grads = dict(zip(params, torch.autograd.grad((warp * torch.arange(1.0, 6.0, dtype=F64)).sum(), tensors)))
    for name, grad in grads.items():
        if name in binding:
            assert float(grad.abs().max()) > 1e-6, name
        elif name != "lam":
            assert float(grad.abs().max()) == 0.0, name


def test_only_inputs_that_require_grad_get_gradients():
    ref_times, ref_values, query_times, query_values = _pair()
    ref_values.requires_grad_()
    lam = torch.tensor(0.3, dtype=F64)
    config = GDTWConfig(subsequence=True, lam=lam, grid_size=51)
    warp = decdtw(Signal(ref_times, ref_values), Signal(query_times, query_values), config)
    warp.sum().backward()
    assert ref_values.grad is not None and query_values.grad is None and lam.grad is None
    frozen = decdtw(Signal(ref_times, ref_values.detach()), Signal(query_times, query_values), config)
    assert not frozen.requires_grad


def test_inputs_are_not_mutated():
    ref_times, ref_values, query_times, query_values = _pair()
    ref_values.requires_grad_()
    query_values.requires_grad_()
    lam = _param([0.3, 0.5])
    band = _param(0.3)
    copies = [x.detach().clone() for x in (ref_times, ref_values, query_times, query_values, lam, band)]
    config = GDTWConfig(subsequence=True, lam=lam, band=band, grid_size=51)
    decdtw(Signal(ref_times, ref_values), Signal(query_times, query_values), config).sum().backward()
    for before, after in zip(copies, (ref_times, ref_values, query_times, query_values, lam, band)):
        torch.testing.assert_close(before, after.detach(), rtol=0, atol=0)


# ------------------------------------------------------------------------- degenerate cases
def test_degenerate_active_set_has_no_nan():
    # The query sits before the reference's start: phi_1 = phi_2 = tau_1 (box) and
    # dphi_1 = 0 (slope_min) are active together and dependent.
    ref_times = torch.linspace(0, 7, 8, dtype=F64)[None]
    ref_values = _curve(ref_times, 0.0).requires_grad_()
    query_times = torch.linspace(0, 3, 5, dtype=F64)[None]
    query_values = torch.stack([_curve(ref_times, 0.0)[:, 0] - 0.5] * 3 + [_curve(ref_times, 0.0)[:, 1]] * 2, 1)
    query_values = query_values.clone().requires_grad_()
    lam = _param(0.01)
    smin = _param(0.0)
    config = GDTWConfig(subsequence=True, lam=lam, slope_min=smin, grid_size=51)
    warp = decdtw(Signal(ref_times, ref_values), Signal(query_times, query_values), config)
    assert float(warp[0, 0].detach()) == 0.0 and float(warp[0, 1].detach()) == 0.0
    (warp * torch.arange(1.0, 6.0, dtype=F64)).sum().backward()
    for grad in (ref_values.grad, query_values.grad, lam.grad, smin.grad):
        assert bool(torch.isfinite(grad).all())


def test_flat_reference_without_regulariser_has_no_nan():
    ref_times = torch.linspace(0, 7, 8, dtype=F64)[None]
    ref_values = torch.ones(1, 8, 2, dtype=F64, requires_grad=True)
    query_values = torch.randn(1, 5, 2, dtype=F64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    config = GDTWConfig(subsequence=True, lam=0.0, grid_size=21)
    warp = decdtw(Signal(ref_times, ref_values), Signal(torch.linspace(0, 3, 5, dtype=F64)[None], query_values), config)
    warp.sum().backward()
    assert bool(torch.isfinite(ref_values.grad).all()) and bool(torch.isfinite(query_values.grad).all())


def test_knot_on_a_reference_corner_does_not_move():
    # 1-D reference with a peak at tau = 3; the query value is above the peak, so the
    # data term is minimised exactly on the corner and small changes cannot move it.
    ref_times = torch.linspace(0, 6, 7, dtype=F64)[None]
    ref_values = torch.tensor([[0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0]], dtype=F64)[..., None].requires_grad_()
    query_times = torch.tensor([[0.0, 1.0, 2.0]], dtype=F64)
    query_values = torch.tensor([[2.0, 3.5, 2.0]], dtype=F64)[..., None].requires_grad_()
    config = GDTWConfig(subsequence=True, lam=0.01, grid_size=61)
    warp = decdtw(Signal(ref_times, ref_values), Signal(query_times, query_values), config)
    assert abs(float(warp[0, 1].detach()) - 3.0) < 1e-12
    grads = torch.autograd.grad(warp[0, 1], (ref_values, query_values))
    assert all(float(g.abs().max()) == 0.0 for g in grads)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "options, message",
    [
        ({"lam": -0.1}, "lam"),
        ({"band": 1.5}, "band"),
        ({"slope_min": 2.0, "slope_max": 1.0}, "slope_max"),
        ({"lam": "big"}, "lam"),
    ],
)
def test_bad_input_raises(options, message):
    ref_times, ref_values, query_times, query_values = _pair()
    with pytest.raises(ValueError, match=message):
        decdtw(Signal(ref_times, ref_values), Signal(query_times, query_values), GDTWConfig(**options))


def test_non_signal_input_raises():
    with pytest.raises(ValueError, match="Signal"):
        decdtw(torch.zeros(1, 4, 2), torch.zeros(1, 3, 2))


# ------------------------------------------------------------------------- tridiagonal solve
@pytest.mark.parametrize("solve", [solve_tridiagonal, solve_tridiagonal_pcr])
def test_tridiagonal_solve_matches_dense(solve):
    gen = torch.Generator().manual_seed(1)
    for size in (1, 2, 5, 16, 37):
        lower = torch.randn(4, size, dtype=F64, generator=gen)
        upper = torch.randn(4, size, dtype=F64, generator=gen)
        diag = lower.abs() + upper.abs() + torch.rand(4, size, dtype=F64, generator=gen) + 0.1
        rhs = torch.randn(4, size, dtype=F64, generator=gen)
        dense = torch.diag_embed(diag) + torch.diag_embed(lower[:, 1:], -1) + torch.diag_embed(upper[:, :-1], 1)
        expected = torch.linalg.solve(dense, rhs[..., None])[..., 0]
        torch.testing.assert_close(solve(lower, diag, upper, rhs), expected)


@pytest.mark.requires_cuda
def test_cuda_matches_cpu():
    ref_times, ref_values, query_times, query_values = _pair()
    config = GDTWConfig(subsequence=True, lam=0.3, grid_size=51)
    results = []
    for device in ("cpu", "cuda"):
        values = ref_values.to(device).requires_grad_()
        warp = decdtw(Signal(ref_times.to(device), values), Signal(query_times.to(device), query_values.to(device)), config)
        warp.sum().backward()
        results.append((warp.cpu(), values.grad.cpu()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


# ------------------------------------ finite differences of an exact solve, constraints binding
def _random_problem(rng: np.random.Generator, family: str) -> GDTWItem:
    ref_times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.7, 1.3, 9))])
    ref_values = np.cumsum(rng.normal(size=(10, 3)), 0) * 0.6
    query_times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.5, 0.9, 5))])
    rate = {"free": 1.0, "slope_max": 1.5, "slope_min": 0.5, "band": 1.0}[family]
    start = rng.uniform(0.5, ref_times[-1] - rate * query_times[-1] - 0.5)
    truth = start + rate * query_times
    query_values = np.stack([np.interp(truth, ref_times, v) for v in ref_values.T], -1)
    query_values += 0.15 * rng.normal(size=query_values.shape)
    options = {"slope_max": {"slope_max": 1.2}, "slope_min": {"slope_min": 0.8}, "band": {"band": 0.15}}
    return GDTWItem(ref_times, ref_values, query_times, query_values, rng.uniform(0.05, 0.5), True,
                    **options.get(family, {}))


def test_implicit_gradient_matches_finite_differences_of_an_exact_solve_with_constraints():
    """Slope and band gradients (and the values' and lambda's) against the exact solve of
    tests/align/oracle.py, with slope-min, slope-max and band constraints binding."""
    rng = np.random.default_rng(2023)
    checked = skipped = 0
    binding = set()
    families = ["free", "slope_max", "slope_min", "band"]
    for attempt in range(24):
        family = families[attempt % 4]
        item = _random_problem(rng, family)
        names = ["ref_values", "query_values", "lam", "slope_min", "slope_max"] + (["band"] if item.band else [])
        leaves = {name: torch.tensor(getattr(item, name), dtype=F64, requires_grad=True) for name in names}
        config = GDTWConfig(subsequence=True, lam=leaves["lam"], slope_min=leaves["slope_min"],
                            slope_max=leaves["slope_max"], band=leaves.get("band"), grid_size=101)
        reference = Signal(torch.from_numpy(item.ref_times)[None], leaves["ref_values"][None])
        query = Signal(torch.from_numpy(item.knots)[None], leaves["query_values"][None])
        warp = decdtw(reference, query, config)
        # SLSQP from the layer's warp: from the DP answer it sometimes jumps to another local
        # optimum (with every slope at its bound the warp is one rigid group, f is not convex
        # along it). It must stay put: the layer's warp is an exact local optimum.
        solved = exact_solve(item, warp[0].detach().numpy())
        assert solved is not None, attempt
        exact, face = solved
        np.testing.assert_allclose(warp[0].detach().numpy(), exact, rtol=0, atol=1e-9)
        weights = rng.normal(size=len(exact))
        grads = dict(zip(names, torch.autograd.grad(warp[0] @ torch.from_numpy(weights), list(leaves.values()))))
        for name in names:
            if name == "slope_max" and not np.isfinite(item.slope_max):
                continue
            direction = rng.normal(size=getattr(item, name).shape) if name.endswith("values") else 1.0
            numeric = finite_difference(item, face, exact, name, direction, weights)
            if numeric is None:
                skipped += 1
                continue
            analytic = float((grads[name] * torch.as_tensor(direction)).sum())
            assert abs(analytic - numeric) <= 1e-3 * abs(numeric) + 1e-8, (attempt, family, name, analytic, numeric)
            if name in ("slope_min", "slope_max", "band") and abs(numeric) > 1e-6:
                binding.add(name)
        checked += 1
    assert skipped <= 5
    assert binding == {"slope_min", "slope_max", "band"}


def test_gradcheck_with_knots_between_query_samples(gradcheck):
    ref_times, ref_values, query_times, query_values = _pair()
    ref_values.requires_grad_()
    query_values.requires_grad_()
    knots = torch.tensor([2.2, 2.9, 3.5, 4.1, 4.6, 4.9], dtype=F64)
    function = _warp_function(ref_times, query_times, ["lam"], subsequence=True, knots=knots)
    lam = _param(0.3)
    assert function(ref_values, query_values, lam).shape == (2, 6)
    assert gradcheck(function, ref_values, query_values, lam, atol=1e-5)


def test_per_item_parameters_get_per_item_gradients():
    ref_times, ref_values, query_times, query_values = _pair()
    lam = _param([0.3, 0.5])
    band = _param([0.05, 0.06])
    slope_max = _param([[3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0]])
    config = GDTWConfig(lam=lam, band=band, slope_max=slope_max, grid_size=51)
    warp = decdtw(Signal(ref_times, ref_values), Signal(query_times, query_values), config)
    warp.sum().backward()
    assert lam.grad.shape == (2,) and band.grad.shape == (2,) and slope_max.grad.shape == (2, 4)
    assert bool((band.grad.abs() > 0).all())


def test_float32_gradients_agree_with_float64():
    ref_times, ref_values, query_times, query_values = _pair()
    grads = []
    for dtype in (torch.float32, F64):
        values = ref_values.to(dtype).requires_grad_()
        queries = query_values.to(dtype).requires_grad_()
        config = GDTWConfig(subsequence=True, lam=0.3, grid_size=51)
        warp = decdtw(Signal(ref_times.to(dtype), values), Signal(query_times.to(dtype), queries), config)
        assert warp.dtype == F64  # times are float64 whatever the descriptors are
        (warp * torch.arange(1.0, 6.0, dtype=F64)).sum().backward()
        assert values.grad.dtype == dtype
        grads.append((values.grad.double(), queries.grad.double()))
    for low, high in zip(*grads):
        torch.testing.assert_close(low, high, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("knots", [None, torch.tensor([2.2, 2.9, 3.5, 4.1, 4.6, 4.9], dtype=F64)])
def test_the_gpu_code_path_agrees_with_the_cpu_path(monkeypatch, knots):
    """On a GPU the values' gradients take the torch path and the reduced system the cyclic
    reduction; run both here, through the whole layer, against the CPU kernels."""
    import seqvpr.align._implicit as implicit
    from seqvpr.align._value_grads import value_gradients_torch

    ref_times, ref_values, query_times, query_values = _pair()

    def gradients():
        leaves = [ref_values.clone().requires_grad_(), query_values.clone().requires_grad_(), _param(0.3),
                  _param(0.4), _param(2.5)]
        config = GDTWConfig(subsequence=True, grid_size=51, knots=knots, lam=leaves[2], band=leaves[3],
                            slope_max=leaves[4])
        warp = decdtw(Signal(ref_times, leaves[0]), Signal(query_times, leaves[1]), config)
        (warp * torch.linspace(1.0, 2.0, warp.shape[1], dtype=F64)).sum().backward()
        return warp.detach(), [x.grad for x in leaves]

    warp, expected = gradients()
    monkeypatch.setattr(implicit, "value_gradients", value_gradients_torch)
    monkeypatch.setattr(implicit, "solve_tridiagonal", implicit.solve_tridiagonal_pcr)
    torch_warp, got = gradients()
    torch.testing.assert_close(torch_warp, warp)
    assert bool((expected[0].abs() > 0).any()) and bool((expected[1].abs() > 0).any())
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
