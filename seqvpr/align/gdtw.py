r"""GDTW: continuous-time dynamic time warping, solved by DP with iterative refinement.

The problem (paper eq. 4). Reference R with times tau_1..tau_N and query Q
are piecewise linear. The warp phi is piecewise linear with knots t_1..t_m (the query times
by default); phi_i = phi(t_i) is a reference time. GDTW minimises

    f(phi) = sum_i w_i ||R(phi_i) - Q(t_i)||^2 + lambda sum_i dt_i (dphi_i / dt_i - e)^2

with trapezoid weights w_i = (dt_{i-1} + dt_i) / 2, dt_i = t_{i+1} - t_i, and expected slope
e (T_ref / T_query for full alignment, 1 for subsequence alignment), subject to

    s_min e <= dphi_i / dt_i <= s_max e            (local: slope bounds)
    |phi_i - c(t_i)| <= beta T_ref                 (global: band around the diagonal c)
    tau_1 <= phi_i <= tau_N                        (the reference's span)
    phi_1 = tau_1, phi_m = tau_N                   (full alignment only)

Solver (paper §5, appendix A.1): each phi_i is discretised into M values between the bounds
of its reachable set, the shortest path through the m x M graph is found by DP
(:mod:`seqvpr.align._dp`), and the grid is refined around the optimum ``refinements`` times,
each time shrinking the range by ``refine_factor``. The previous optimum is inserted into
the refined grid, so the objective never rises between iterations.

Node costs never materialise R on the grid: inside reference segment [k, k+1] at fraction
alpha, ||R(phi) - Q_i||^2 expands into ||Q_i||^2, <Q_i, R_k>, <Q_i, R_k+1>, ||R_k||^2,
||R_k+1||^2 and <R_k, R_k+1>, so one (m x N) matrix product per pair, on the signals'
device, is the only work that grows with the feature dimension D. Everything after it
(grids, node costs, DP, refinement) is O(m M) per pair and runs in one numba call on the
CPU: the DP is sequential over knots, and a GPU would spend it launching kernels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from seqvpr.align._dp import NodeInputs, Steps, solve_gdtw
from seqvpr.align.signal import Signal
from seqvpr.errors import SeqvprError

__all__ = ["GDTWConfig", "GDTWProblem", "GDTWResult", "InnerProducts", "gdtw", "gdtw_objective", "resolve_problem"]

Scalar = float | int | Tensor

# Above this, lam / dt times squared steps overflows the convex-hull DP's products.
MAX_LAM = 1e20


@dataclass(frozen=True)
class GDTWConfig:
    """Options of the GDTW solver.

    Attributes:
        subsequence: leave both ends of the warp free (the query lies somewhere inside
            the reference) instead of pinning phi_1 = tau_1 and phi_m = tau_N.
        lam: regularisation weight lambda >= 0; a float or a tensor of shape (B,).
        grid_size: candidates per knot M; default max(50, N_ref + 1).
        refinements: refinement iterations after the first solve.
        refine_factor: eta in (0, 1): each refinement shrinks every knot's range to eta
            times its previous width, centred on the previous optimum.
        slope_min: s_min >= 0: lower bound on dphi/dt in units of e; float, (B,) or
            (B, m - 1) per knot interval.
        slope_max: s_max >= s_min: upper bound on dphi/dt in units of e (inf = none);
            float, (B,) or (B, m - 1).
        band: beta in [0, 1]: |phi(t) - c(t)| <= beta T_ref around the diagonal c from
            (t_1, tau_1) to (t_m, tau_N); None = no band. Float or (B,).
        knots: knot times t_i, shape (m,) or (B, m), inside each query's time span;
            default the query's own sample times.
        expected_slope: override e; float or (B,). Default T_ref / T_query (full) or 1
            (subsequence).
        kernel: ``"fast"`` (convex-hull DP, O(M) per knot where the slope bounds allow)
            or ``"brute"`` (O(M^2) per knot; the test oracle and benchmark baseline).
    """

    subsequence: bool = False
    lam: Scalar = 0.1
    grid_size: int | None = None
    refinements: int = 3
    refine_factor: float = 0.125
    slope_min: Scalar = 0.0
    slope_max: Scalar = math.inf
    band: Scalar | None = None
    knots: Tensor | None = None
    expected_slope: Scalar | None = None
    kernel: str = "fast"

    def __post_init__(self) -> None:
        if self.grid_size is not None and (not isinstance(self.grid_size, int) or self.grid_size < 2):
            raise ValueError(f"grid_size must be an integer >= 2, got {self.grid_size!r}")
        if not isinstance(self.refinements, int) or self.refinements < 0:
            raise ValueError(f"refinements must be an integer >= 0, got {self.refinements!r}")
        if not 0.0 < self.refine_factor < 1.0:
            raise ValueError(f"refine_factor must be in (0, 1), got {self.refine_factor!r}")
        if self.kernel not in ("fast", "brute"):
            raise ValueError(f"kernel must be 'fast' or 'brute', got {self.kernel!r}")


@dataclass(frozen=True)
class GDTWProblem:
    """A GDTW problem with every option resolved to per-item tensors (float64).

    Attributes:
        knots: knot times t_i, shape (B, m); padding repeats the last knot.
        query_at_knots: Q(t_i), shape (B, m, D), in the query's dtype.
        lengths: knots per item, shape (B,).
        dt: knot spacing, shape (B, m - 1); 0 on padding.
        weights: trapezoid weights w_i, shape (B, m); 0 on padding.
        lam: lambda, shape (B,).
        expected_slope: e, shape (B,).
        step_min, step_max: bounds on phi_{i+1} - phi_i, i.e. s_min e dt and s_max e dt,
            shape (B, m - 1); step_max may be inf.
        lower, upper: bounds of the reachable set of each phi_i, shape (B, m).
        subsequence: whether the ends are free.
    """

    knots: Tensor
    query_at_knots: Tensor
    lengths: Tensor
    dt: Tensor
    weights: Tensor
    lam: Tensor
    expected_slope: Tensor
    step_min: Tensor
    step_max: Tensor
    lower: Tensor
    upper: Tensor
    subsequence: bool

    @property
    def knot_mask(self) -> Tensor:
        """True at valid knots, shape (B, m)."""
        size = self.knots.shape[1]
        return torch.arange(size, device=self.knots.device)[None] < self.lengths[:, None]


@dataclass(frozen=True)
class InnerProducts:
    """The inner products the node costs are built from, float64 on the signals' device.

    Everything the objective needs from the D-dimensional values: with them DecDTW's local
    model and polish read no feature vector again (``||R(phi) - Q_i||^2`` inside segment
    [k, k+1] at fraction alpha is ``||R_k - Q_i||^2 + 2 alpha <R_k - Q_i, delta_k> +
    alpha^2 ||delta_k||^2`` with ``delta_k = R_k+1 - R_k``).

    Attributes:
        cross: <Q_i, R_k>, shape (B, m, N), Q_i the query at knot i.
        ref_sq: ||R_k||^2, shape (B, N).
        step_sq: ||R_k+1 - R_k||^2, shape (B, N - 1), formed from the difference so that it
            keeps its precision when consecutive samples are nearly equal.
        query_sq: ||Q_i||^2, shape (B, m).
    """

    cross: Tensor
    ref_sq: Tensor
    step_sq: Tensor
    query_sq: Tensor

    @property
    def ref_next(self) -> Tensor:
        """<R_k, R_k+1>, shape (B, N - 1)."""
        return 0.5 * (self.ref_sq[:, :-1] + self.ref_sq[:, 1:] - self.step_sq)


@dataclass(frozen=True)
class GDTWResult:
    """Solution of a batch of GDTW problems.

    Attributes:
        knots: query knot times t_i, shape (B, m), float64.
        warp: optimal reference times phi_i = phi(t_i), shape (B, m), float64 (times
            always are); padding knots repeat the last valid value.
        cost: objective f(phi) at the returned warp, shape (B,), float64.
        lengths: valid knots per item, shape (B,).
        cost_history: objective after the first solve and after each refinement,
            shape (B, refinements + 1); non-increasing.
        grid_spacing: spacing of the final grid at each knot, shape (B, m); the warp is
            optimal to about this resolution.
        problem: the resolved problem (bounds, weights, slope limits) the solver used.
        inner_products: the :class:`InnerProducts` behind the node costs.
    """

    knots: Tensor
    warp: Tensor
    cost: Tensor
    lengths: Tensor
    cost_history: Tensor
    grid_spacing: Tensor
    problem: GDTWProblem = field(repr=False)
    inner_products: InnerProducts = field(repr=False)


def _per_item(name: str, value: Scalar, batch: int, device: torch.device) -> Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float64, device=device)
    if tensor.dim() == 0:
        tensor = tensor.expand(batch)
    if tensor.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {tuple(tensor.shape)}")
    return tensor


def _per_interval(name: str, value: Scalar, batch: int, intervals: int, device: torch.device) -> Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float64, device=device)
    if tensor.dim() <= 1:
        tensor = _per_item(name, tensor, batch, device)[:, None].expand(batch, intervals)
    if tensor.shape != (batch, intervals):
        raise ValueError(
            f"{name} must be a scalar or have shape ({batch},) or ({batch}, {intervals}), "
            f"got {tuple(tensor.shape)}"
        )
    return tensor


def _check_pair(reference: Signal, query: Signal) -> None:
    if not isinstance(reference, Signal) or not isinstance(query, Signal):
        raise ValueError("reference and query must be seqvpr.align.Signal objects")
    if reference.batch_size != query.batch_size:
        raise ValueError(
            f"batch sizes differ: reference has {reference.batch_size}, query {query.batch_size}"
        )
    if reference.dim != query.dim:
        raise ValueError(
            f"feature dimensions differ: reference has D = {reference.dim}, query D = {query.dim}"
        )
    if reference.device != query.device:
        raise ValueError(f"reference on {reference.device} but query on {query.device}")


def _knots(query: Signal, knots: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Knot times (B, m) float64, lengths (B,), and the query values at the knots."""
    if knots is None:
        times = query.times.to(torch.float64)
        last = query.end.to(torch.float64)[:, None]
        times = torch.where(query.valid_mask(), times, last)
        return times, query.lengths, query.values
    knots = torch.as_tensor(knots, device=query.device)
    if knots.dim() == 1:
        knots = knots[None].expand(query.batch_size, -1)
    if knots.dim() != 2 or knots.shape[0] != query.batch_size:
        raise ValueError(f"knots must have shape (m,) or ({query.batch_size}, m), got {tuple(knots.shape)}")
    if knots.shape[1] < 2:
        raise ValueError(f"knots must hold at least 2 times, got {knots.shape[1]}")
    knots = knots.to(torch.float64)
    if not bool(torch.isfinite(knots).all()):
        raise ValueError("knots contain NaN or inf")
    if bool((knots[:, 1:] <= knots[:, :-1]).any()):
        raise ValueError("knots must be strictly increasing")
    span_tol = 1e-9 * (1.0 + query.duration.abs().to(torch.float64))
    outside = (knots[:, 0] < query.start.double() - span_tol) | (knots[:, -1] > query.end.double() + span_tol)
    if bool(outside.any()):
        item = int(outside.nonzero()[0])
        raise ValueError(
            f"knots of item {item} span [{float(knots[item, 0])}, {float(knots[item, -1])}] s, "
            f"outside the query's [{float(query.start[item])}, {float(query.end[item])}] s"
        )
    lengths = torch.full((query.batch_size,), knots.shape[1], dtype=torch.long, device=query.device)
    return knots, lengths, query.at(knots)


def _reachable_bounds(
    lower: Tensor, upper: Tensor, step_min: Tensor, step_max: Tensor
) -> tuple[Tensor, Tensor]:
    """Tightest bounds on phi consistent with step_min <= phi_{i+1} - phi_i <= step_max.

    Forward then backward propagation along the chain; each pass is a max-plus (min-plus)
    prefix scan, computed with cumulative sums and cummax/cummin.
    """

    def forward(bound: Tensor, step: Tensor, scan) -> Tensor:
        offset = torch.cat([torch.zeros_like(step[:, :1]), step.cumsum(1)], dim=1)
        return offset + scan(bound - offset, dim=1).values

    def backward(bound: Tensor, step: Tensor, scan) -> Tensor:
        return -forward(-bound.flip(1), step.flip(1), scan).flip(1)

    lower = forward(lower, step_min, torch.cummax)
    upper = forward(upper, step_max, torch.cummin)
    # phi_i >= phi_{i+1} - step_max_i and phi_i <= phi_{i+1} - step_min_i.
    lower = backward(lower, step_max, torch.cummin)
    upper = backward(upper, step_min, torch.cummax)
    return lower, upper


def _warn_if_squeezed(needed: Tensor, available: Tensor) -> None:
    """Subsequence alignment of a query that does not fit into its reference at the expected
    slope: the warp compresses it (warns once per call, naming the first such item)."""
    squeezed = needed > available * (1.0 + 1e-9)
    if bool(squeezed.any()):
        item = int(squeezed.nonzero()[0])
        warnings.warn(
            f"subsequence alignment of item {item}: the query spans {float(needed[item]):g} s of "
            f"reference time at the expected slope, but the reference lasts only "
            f"{float(available[item]):g} s; the warp compresses the query into the reference "
            f"(it is a full alignment at a faster slope, not a subsequence match). Pass a shorter "
            f"query, a longer reference, or expected_slope if the query is known to run faster",
            UserWarning,
            stacklevel=3,
        )


def resolve_problem(reference: Signal, query: Signal, config: GDTWConfig) -> GDTWProblem:
    """Validates inputs and resolves every option to per-item tensors.

    Raises:
        ValueError: on mismatched signals, invalid options, or constraints that leave no
            feasible warp (naming the item and knot).
    """
    _check_pair(reference, query)
    batch, device = reference.batch_size, reference.device
    knots, lengths, query_at_knots = _knots(query, config.knots)
    intervals = knots.shape[1] - 1
    knot_mask = torch.arange(knots.shape[1], device=device)[None] < lengths[:, None]
    interval_mask = knot_mask[:, 1:]
    dt = torch.where(interval_mask, knots.diff(dim=1), torch.zeros((), dtype=torch.float64, device=device))
    weights = torch.zeros_like(knots)
    weights[:, :-1] += dt / 2
    weights[:, 1:] += dt / 2

    lam = _per_item("lam", config.lam, batch, device)
    if bool((lam < 0).any()) or not bool(torch.isfinite(lam).all()):
        raise ValueError(f"lam must be finite and >= 0, got {lam.tolist()}")
    if bool((lam > MAX_LAM).any()):
        raise SeqvprError(
            f"lam = {float(lam.max()):g} is too large: above {MAX_LAM:g} the regulariser overflows the "
            "DP's float64 arithmetic; use a smaller lam (at such weights the warp is already the "
            "straightest feasible one)"
        )
    slope_min = _per_interval("slope_min", config.slope_min, batch, intervals, device)
    slope_max = _per_interval("slope_max", config.slope_max, batch, intervals, device)
    if bool((slope_min < 0).any()) or not bool(torch.isfinite(slope_min).all()):
        raise ValueError("slope_min must be finite and >= 0")
    if bool((slope_max < slope_min).any()) or bool(torch.isnan(slope_max).any()):
        raise ValueError("slope_max must be >= slope_min")
    if bool((slope_max <= 0).any()):
        raise ValueError("slope_max must be > 0")

    ref_start = reference.start.to(torch.float64)
    ref_end = reference.end.to(torch.float64)
    ref_span = ref_end - ref_start
    knot_start = knots[:, 0]
    knot_end = knots.gather(1, (lengths - 1)[:, None])[:, 0]
    knot_span = knot_end - knot_start
    if config.expected_slope is not None:
        expected = _per_item("expected_slope", config.expected_slope, batch, device)
        if bool((expected <= 0).any()) or not bool(torch.isfinite(expected).all()):
            raise ValueError(f"expected_slope must be finite and > 0, got {expected.tolist()}")
    elif config.subsequence:
        expected = torch.ones(batch, dtype=torch.float64, device=device)
    else:
        expected = ref_span / knot_span
    if config.subsequence:
        _warn_if_squeezed(knot_span * expected, ref_span)

    # Any step longer than the reference span never binds; a finite stand-in keeps the
    # prefix scans of _reachable_bounds free of inf - inf.
    big = 2.0 * (1.0 + ref_span.abs() + knot_span.abs())[:, None]
    step_min = torch.where(interval_mask, slope_min * expected[:, None] * dt, 0.0)
    step_max = torch.where(interval_mask, slope_max * expected[:, None] * dt, 0.0)

    lower = ref_start[:, None].expand_as(knots).clone()
    upper = ref_end[:, None].expand_as(knots).clone()
    if config.band is not None:
        band = _per_item("band", config.band, batch, device)
        if bool(((band < 0) | (band > 1)).any()) or bool(torch.isnan(band).any()):
            raise ValueError(f"band must be in [0, 1], got {band.tolist()}")
        centre = ref_start[:, None] + (knots - knot_start[:, None]) * (ref_span / knot_span)[:, None]
        lower = torch.maximum(lower, centre - (band * ref_span)[:, None])
        upper = torch.minimum(upper, centre + (band * ref_span)[:, None])
    if not config.subsequence:
        rows = torch.arange(batch, device=device)
        lower[:, 0] = upper[:, 0] = ref_start
        lower[rows, lengths - 1] = upper[rows, lengths - 1] = ref_end
    lower = torch.where(knot_mask, lower, -math.inf)
    upper = torch.where(knot_mask, upper, math.inf)
    lower, upper = _reachable_bounds(lower, upper, step_min, torch.minimum(step_max, big))

    tol = 1e-9 * (1.0 + ref_span.abs())[:, None]
    infeasible = (lower > upper + tol) & knot_mask
    if bool(infeasible.any()):
        item, knot = (int(i) for i in infeasible.nonzero()[0])
        mode = "subsequence" if config.subsequence else "full"
        raise ValueError(
            f"infeasible constraints for item {item} ({mode} alignment): no warp satisfies "
            f"slope bounds [{float(slope_min[item].min())}, {float(slope_max[item].max())}] x e = "
            f"{float(expected[item])}, band {config.band} and the reference span "
            f"[{float(ref_start[item])}, {float(ref_end[item])}] s "
            f"(the reachable set at knot {knot} is empty)"
        )
    upper = torch.maximum(upper, lower)
    return GDTWProblem(
        knots=knots,
        query_at_knots=query_at_knots,
        lengths=lengths,
        dt=dt,
        weights=weights,
        lam=lam,
        expected_slope=expected,
        step_min=step_min,
        step_max=step_max,
        lower=lower,
        upper=upper,
        subsequence=config.subsequence,
    )


def _check_finite_products(products: InnerProducts, reference: Signal, query: Signal, knot_mask: Tensor,
                           dtype: torch.dtype) -> None:
    """Raises when an inner product of valid samples overflowed (values too large for ``dtype``)."""
    ref_mask = reference.valid_mask()
    ref_ok = bool(torch.isfinite(products.ref_sq)[ref_mask].all()) and bool(
        torch.isfinite(products.step_sq)[ref_mask[:, 1:]].all())
    query_ok = bool(torch.isfinite(products.query_sq)[knot_mask].all())
    cross_ok = bool(torch.isfinite(products.cross)[knot_mask[:, :, None] & ref_mask[:, None, :]].all())
    name = str(dtype).replace("torch.", "")
    for what, signal, ok in (("reference", reference, ref_ok), ("query", query, query_ok)):
        if not ok:
            largest = float(signal.values.detach().abs().amax())
            raise SeqvprError(
                f"{what} values overflow when squared in {name} (largest |value| = {largest:g}): "
                "scale the features down"
            )
    if not cross_ok:
        raise SeqvprError(f"inner products of query and reference values overflow {name}: scale the features down")


def _numpy(tensor: Tensor) -> np.ndarray:
    """float64 numpy copy on the CPU (the compiled kernel's input)."""
    return tensor.detach().to("cpu", torch.float64).numpy()


def gdtw(reference: Signal, query: Signal, config: GDTWConfig | None = None) -> GDTWResult:
    """Aligns query signals to reference signals with GDTW.

    Args:
        reference: B reference signals, times (B, N), values (B, N, D).
        query: B query signals, times (B, n), values (B, n, D).
        config: solver options; defaults to :class:`GDTWConfig`.

    Returns:
        A :class:`GDTWResult` with the warp at the knots (B, m) and the objective (B,).

    Raises:
        ValueError: on mismatched or non-finite inputs, bad options or infeasible
            constraints.
    """
    config = config or GDTWConfig()
    problem = resolve_problem(reference, query, config)
    size = config.grid_size or max(50, reference.max_length + 1)
    with torch.no_grad():
        # The only work that grows with D: inner products, on the signals' device, in at least
        # float32 (float16 squares overflow above ~256) and in the wider of the two dtypes.
        dtype = torch.promote_types(torch.promote_types(reference.values.dtype, query.values.dtype), torch.float32)
        ref = reference.values.to(dtype)
        knot_values = problem.query_at_knots.to(dtype)
        products = InnerProducts(
            cross=torch.bmm(knot_values, ref.transpose(1, 2)).double(),
            ref_sq=torch.linalg.vector_norm(ref, dim=-1).double().square(),
            step_sq=torch.linalg.vector_norm(ref.diff(dim=1), dim=-1).double().square(),
            query_sq=torch.linalg.vector_norm(knot_values, dim=-1).double().square(),
        )
        dt = problem.dt
        curvature = torch.where(dt > 0, problem.lam[:, None] / dt.clamp(min=1e-300), 0.0)
        shift = problem.expected_slope[:, None] * dt
        tol = 1e-9 * (1.0 + (reference.end - reference.start).double().abs())
        costs = NodeInputs(*map(_numpy, (products.cross, products.ref_sq, products.ref_next, products.query_sq,
                                         problem.weights, reference.times)))
        if not all(np.isfinite(array).all() for array in costs[:4]):  # padding may hold anything
            _check_finite_products(products, reference, query, problem.knot_mask, dtype)
        steps = Steps(*map(_numpy, (curvature, shift, problem.step_min, problem.step_max, tol)))
        warp, history, lower, upper = solve_gdtw(
            costs, reference.lengths.cpu().numpy(), problem.lengths.cpu().numpy(), _numpy(problem.lower),
            _numpy(problem.upper), steps, size, config.refinements, config.refine_factor, config.kernel == "brute",
        )
    if not np.isfinite(history[:, -1]).all():
        item = int(np.flatnonzero(~np.isfinite(history[:, -1]))[0])
        raise SeqvprError(
            f"the GDTW objective of item {item} is not finite ({history[item, -1]}): the values or "
            f"lam = {float(problem.lam[item]):g} are too large for float64 arithmetic"
        )
    device = query.device
    cost_history = torch.from_numpy(history).to(device)
    return GDTWResult(
        knots=problem.knots,
        warp=torch.from_numpy(warp).to(device),
        cost=cost_history[:, -1],
        lengths=problem.lengths,
        cost_history=cost_history,
        grid_spacing=torch.from_numpy((upper - lower) / (size - 1)).to(device),
        problem=problem,
        inner_products=products,
    )


def gdtw_objective(
    reference: Signal,
    query: Signal,
    warp: Tensor,
    config: GDTWConfig | None = None,
    problem: GDTWProblem | None = None,
) -> Tensor:
    """Evaluates the GDTW objective f(phi) at a given warp (differentiable).

    Args:
        reference: B reference signals.
        query: B query signals.
        warp: reference times at the knots, shape (B, m).
        config: the options that define the problem (knots, lambda, e); ignored when
            ``problem`` is given.
        problem: a resolved problem, e.g. ``GDTWResult.problem``.

    Returns:
        f(phi), shape (B,). Constraints are not checked.
    """
    if problem is None:
        problem = resolve_problem(reference, query, config or GDTWConfig())
    if warp.shape != problem.knots.shape:
        raise ValueError(f"warp must have shape {tuple(problem.knots.shape)}, got {tuple(warp.shape)}")
    mask = problem.knot_mask
    residual = reference.at(warp) - problem.query_at_knots
    data = (problem.weights.to(residual.dtype) * residual.square().sum(-1) * mask).sum(1)
    dt = problem.dt.to(warp.dtype)
    step = warp.diff(dim=1) - problem.expected_slope.to(warp.dtype)[:, None] * dt
    safe_dt = torch.where(dt > 0, dt, torch.ones_like(dt))
    lam = problem.lam.to(warp.dtype)
    regulariser = lam * torch.where(dt > 0, step.square() / safe_dt, torch.zeros_like(dt)).sum(1)
    return data.to(warp.dtype) + regulariser
