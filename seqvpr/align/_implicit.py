r"""Implicit differentiation of the GDTW solution (paper §6, appendix A.2).

At the solver's answer phi* of

    minimise   f(phi; z) = sum_i w_i ||R(phi_i) - Q_i||^2 + lambda sum_i (dphi_i - e dt_i)^2 / dt_i
    subject to the slope, band, box and end-point constraints,

the active constraints are all of two kinds: a knot held at a bound (phi_j = b_j(z): band,
box, a pinned end, or a reference sample time where the data term has a kink minimum) and
a knot interval held at a slope bound (phi_{i+1} - phi_i = d_i(z) = s_i e dt_i). Both are
linear in phi, so the active set splits the knots into *groups*: maximal runs of knots tied
together by active slope constraints. A group with a bound-active knot is fixed; a free
group moves rigidly by one scalar. With Z the (m x g) indicator matrix of the free groups,
the feasible directions are phi = phi_0(z) + Z y, where phi_0(z) is a particular solution
(each group anchored at its first fixed knot, or its first knot if free, and continued by the
active slope steps).

Gradient (DDN Prop. 4.6 / paper eq. 7, written as one vector-Jacobian product). The optimal
y satisfies Z^T grad_phi f(phi_0(z) + Z y; z) = 0, hence

    dphi = (I - Z (Z^T H Z)^{-1} Z^T H) dphi_0  -  Z (Z^T H Z)^{-1} Z^T B dz,

with H = d^2 f / dphi^2 and B = d^2 f / dphi dz. For an incoming gradient v = dJ/dphi:

    a = Z (Z^T H Z)^{-1} Z^T v          (the adjoint; zero on fixed groups)
    r = v - H a                         (the multipliers' reaction; sums to 0 on free groups)
    dJ/dz = -d/dz <a, grad_phi f(phi*; z)>   +   sum_j r_j dphi_0j / dz.

The first term carries the gradient to everything the objective depends on (reference
values, query values, lambda); the second to everything the constraints depend on (band,
slope bounds) - the two blocks of appendix A.2. This is exactly H^{-1}A^T(AH^{-1}A^T)^{-1}
(AH^{-1}B - C) - H^{-1}B of eq. 7 when A has full row rank; when the active set is degenerate
(dependent constraints, e.g. phi_1 = tau_1, phi_2 = tau_1 and dphi_1 = 0 together), the
reduced form still has one answer: the multipliers of the dependent constraints are split by
anchoring each group at its first fixed knot, and no (A H^{-1} A^T)^{-1} is ever formed.

Structure that keeps it O(m) and on the tensors' device. R is piecewise linear, so within a
reference segment [k, k+1] of length h, R(phi) = R_k + alpha (R_{k+1} - R_k) and

    df/dphi_i   = 2 w_i <e_i, delta_i> / h + 2 lambda (u_{i-1} - u_i),
    e_i = R(phi_i) - Q_i,   delta_i = R_{k+1} - R_k,   u_i = (dphi_i - e dt_i) / dt_i,
    H_ii        = 2 w_i ||delta_i||^2 / h^2 + 2 lambda (1 / dt_{i-1} + 1 / dt_i),
    H_i,i+1     = -2 lambda / dt_i,

so H is tridiagonal, and so is Z^T H Z (groups are contiguous). It is solved on the tensors'
device without pivoting, stable because Z^T H Z is diagonally dominant (a graph Laplacian plus
a non-negative diagonal): by the Thomas algorithm (numba) for CPU tensors, by parallel cyclic
reduction (log2(m) steps of batched elementwise work) elsewhere. With s_i = 2 a_i w_i / h,
the objective term differentiates in closed form:

    d/dQ_i      <a, grad f> = -s_i delta_i
    d/dR_k      <a, grad f> = s_i ((1 - 2 alpha) R_{k+1} - 2 (1 - alpha) R_k + Q_i)
    d/dR_{k+1}  <a, grad f> = s_i (2 alpha R_{k+1} + (1 - 2 alpha) R_k - Q_i)
    d/dlambda   <a, grad f> = 2 sum_i u_i (a_{i+1} - a_i),

so the values' gradients are per-knot combinations of R_k, R_k+1 and Q_i: a symmetric
tridiagonal map of the reference values plus a sparse map of the query's, formed in one pass
over the output rows (:mod:`seqvpr.align._value_grads`). That pass, which reads each feature
row about once and writes each gradient row once, is the only work of the backward pass that
grows with D; no B x m x M x D tensor exists, and neither does any D-sized temporary. The
forward pass needs no feature vector beyond the solver's own inner products
(:class:`seqvpr.align.gdtw.InnerProducts`): ||delta_i||^2 and <R_k - Q_i, delta_i> are sums
of them. For the constraint term, with P_j the running sum of r inside a
group and T_g its total, interval i of a group anchored at knot s gets dJ/dd_i = T_g - P_i if
i >= s, else -P_i, and the anchor gets dJ/db_s = T_g; then d_i = s_i e dt_i and the band
bounds c_j -+ beta T_ref give the slope and band gradients.

Kinks. R is only piecewise smooth: at a reference sample time tau_k the data term has a
corner, and minima sitting exactly on a corner are common (in high dimension nearly every
vertex of the reference polyline is one). Such a knot does not move under small changes of the
values, so it is an active constraint (phi_j = tau_k, no parameter). Whether a knot sits on a
corner is decided by the optimality conditions, not by distance: the working-set iterations
of :mod:`seqvpr.align._active_set` hold it there only while the one-sided derivatives of f
bracket zero, and otherwise move it into the segment its descending side points to. They
return the exact local optimum near the DP answer and the active set this module
differentiates; :func:`detect_active_set` (by distance) is only the fallback for items whose
iterations did not converge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numba import njit
from torch import Tensor

from seqvpr.align._value_grads import value_gradients
from seqvpr.align.gdtw import GDTWProblem, InnerProducts
from seqvpr.align.signal import Signal

__all__ = ["ActiveSet", "LocalModel", "WarpGradients", "detect_active_set", "knot_bounds", "local_model",
           "solve_tridiagonal", "solve_tridiagonal_pcr", "warp_vjp"]

# Why a knot is held; only the band kinds depend on a differentiable input.
FREE, BAND_LOWER, BAND_UPPER, BOX, PIN, KINK, PADDING = range(7)


@dataclass(frozen=True)
class ActiveSet:
    """Active constraints at a GDTW solution.

    Attributes:
        slope: per knot interval, shape (B, m - 1), int8: -1 if phi_{i+1} - phi_i sits at
            its lower bound s_min e dt_i, +1 at its upper bound s_max e dt_i, 0 otherwise.
        kind: per knot, shape (B, m), int8: ``FREE`` or why the knot is held
            (``BAND_LOWER``, ``BAND_UPPER``, ``BOX``, ``PIN``, ``KINK``, ``PADDING``).
        segment: reference segment k of the knot's local quadratic, shape (B, m), int64.
    """

    slope: Tensor
    kind: Tensor
    segment: Tensor


@dataclass(frozen=True)
class LocalModel:
    """The quadratic model of f around a solution, with the active set's group structure.

    Attributes:
        active: the active set.
        left: reference time tau_k at the start of each knot's segment, shape (B, m).
        length: the segment's length h, shape (B, m).
        delta_sq: ||delta_i||^2 with delta_i = R_{k+1} - R_k, shape (B, m).
        offset_dot: <R_k - Q_i, delta_i>, shape (B, m); the residual is
            e_i = R_k - Q_i + alpha delta_i, so with alpha the position in the segment,
            df_data/dphi_i = 2 w_i (offset_dot + alpha delta_sq) / h.
        diag: Hessian diagonal, shape (B, m). coupling: -H_{i,i+1}, shape (B, m - 1).
        group: group index of each knot, shape (B, m).
        group_diag: diagonal of Z^T H Z, shape (B, m) (indexed by group).
        held: whether group g stays put (fixed, or free without curvature), shape (B, m).
        anchor: first fixed knot of group g, or its first knot if free, shape (B, m).
        has_fixed: whether group g holds a fixed knot, shape (B, m).
    """

    active: ActiveSet
    left: Tensor
    length: Tensor
    delta_sq: Tensor
    offset_dot: Tensor
    diag: Tensor
    coupling: Tensor
    group: Tensor
    group_diag: Tensor
    held: Tensor
    anchor: Tensor
    has_fixed: Tensor


@dataclass(frozen=True)
class WarpGradients:
    """Vector-Jacobian products of the optimal warp; None where not requested.

    Attributes:
        reference_values: (B, N, D). query_values: (B, n, D).
        lam: (B,). slope_min, slope_max: (B, m - 1). band: (B,).
    """

    reference_values: Tensor | None = None
    query_values: Tensor | None = None
    lam: Tensor | None = None
    slope_min: Tensor | None = None
    slope_max: Tensor | None = None
    band: Tensor | None = None


def knot_bounds(
    reference: Signal, problem: GDTWProblem, band: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The box-and-band bounds of each knot and which constraint each comes from.

    Args:
        reference: the reference signals (only times are read).
        problem: the resolved problem.
        band: beta, shape (B,), or None when there is no band.

    Returns:
        ``(lower, upper, lower_kind, upper_kind)``, each (B, m): the bounds (float64) and
        ``BOX`` or ``BAND_LOWER`` / ``BAND_UPPER`` (int8).
    """
    batch, size = problem.knots.shape
    times = reference.times.to(torch.float64)
    ref_start = times[:, 0]
    ref_end = reference.end.to(torch.float64)
    span = (ref_end - ref_start)[:, None]
    lower = ref_start[:, None].expand(batch, size)
    upper = ref_end[:, None].expand(batch, size)
    lower_kind = torch.full((batch, size), BOX, dtype=torch.int8, device=times.device)
    upper_kind = lower_kind
    if band is not None:
        knots = problem.knots
        knot_end = knots.gather(1, (problem.lengths - 1)[:, None])
        centre = ref_start[:, None] + (knots - knots[:, :1]) * span / (knot_end - knots[:, :1])
        band_lower = centre - band[:, None] * span
        band_upper = centre + band[:, None] * span
        lower_kind = torch.where(band_lower > lower, BAND_LOWER, lower_kind).to(torch.int8)
        upper_kind = torch.where(band_upper < upper, BAND_UPPER, upper_kind).to(torch.int8)
        lower = torch.maximum(lower, band_lower)
        upper = torch.minimum(upper, band_upper)
    return lower, upper, lower_kind, upper_kind


def detect_active_set(
    reference: Signal,
    problem: GDTWProblem,
    warp: Tensor,
    tolerance: Tensor,
    band: Tensor | None,
) -> ActiveSet:
    """Guesses the active constraints at an approximate solution by distance: a bound or a
    reference sample time within ``tolerance`` of phi_i counts as active. The fallback for
    items whose exact local optimum was not found (:mod:`seqvpr.align._active_set`).

    Args:
        reference: the reference signals (only times are read).
        problem: the resolved problem the solver used.
        warp: the solution phi*, shape (B, m), float64.
        tolerance: per knot, shape (B, m): a bound counts as active when phi_i is within it,
            a slope bound when the step is within the sum of its two knots' tolerances.
        band: beta, shape (B,), or None when there is no band.

    Returns:
        The :class:`ActiveSet`.
    """
    batch, size = warp.shape
    device = warp.device
    mask = problem.knot_mask
    times = reference.times.to(torch.float64)
    lower, upper, lower_kind, upper_kind = knot_bounds(reference, problem, band)

    # Kinks: phi_i on an interior reference sample time.
    index, _ = reference.segments(warp)
    left = times.gather(1, index)
    right = times.gather(1, index + 1)
    near_right = (right - warp) < (warp - left)
    vertex = index + near_right.long()
    interior = (vertex > 0) & (vertex < (reference.lengths - 1)[:, None])
    corner = torch.where(near_right, right, left)
    on_kink = interior & ((warp - corner).abs() <= tolerance) & (problem.weights > 0)

    kind = torch.where(on_kink, KINK, FREE)
    at_lower = warp - lower <= tolerance
    at_upper = upper - warp <= tolerance
    kind = torch.where(at_lower, lower_kind, kind)
    kind = torch.where(at_upper & ~at_lower, upper_kind, kind)
    if not problem.subsequence:
        last = (problem.lengths - 1)[:, None]
        position = torch.arange(size, device=device)[None]
        kind = torch.where((position == 0) | (position == last), PIN, kind)
    kind = torch.where(mask, kind, PADDING).to(torch.int8)

    step = warp.diff(dim=1)
    step_tol = tolerance[:, 1:] + tolerance[:, :-1]
    gap_min = (step - problem.step_min).abs()
    gap_max = (problem.step_max - step).abs()
    at_min = gap_min <= step_tol
    at_max = (gap_max <= step_tol) & ((gap_max < gap_min) | ~at_min)
    slope = torch.where(at_max, 1, torch.where(at_min, -1, 0))
    slope = torch.where(mask[:, 1:] & (problem.dt > 0), slope, 0).to(torch.int8)
    # A kink knot's local quadratic is never used; elsewhere the segment of phi_i.
    return ActiveSet(slope=slope, kind=kind, segment=index)


def solve_tridiagonal(lower: Tensor, diag: Tensor, upper: Tensor, rhs: Tensor) -> Tensor:
    """Solves batched tridiagonal systems: the Thomas algorithm in numba for float64 CPU
    tensors, parallel cyclic reduction (:func:`solve_tridiagonal_pcr`) on other devices.

    Row i reads ``lower[:, i] x[i - 1] + diag[:, i] x[i] + upper[:, i] x[i + 1] = rhs[:, i]``;
    ``lower[:, 0]`` and ``upper[:, -1]`` are ignored. Both are stable without pivoting for
    the diagonally dominant systems of this module.

    Args:
        lower, diag, upper, rhs: shape (B, n).

    Returns:
        x, shape (B, n).
    """
    if diag.device.type == "cpu" and all(x.dtype == torch.float64 for x in (lower, diag, upper, rhs)):
        out = torch.empty_like(rhs, memory_format=torch.contiguous_format)
        _thomas(*(x.contiguous().numpy() for x in (lower, diag, upper, rhs)), out.numpy())
        return out
    return solve_tridiagonal_pcr(lower, diag, upper, rhs)


@njit(cache=True, error_model="numpy")
def _thomas(lower, diag, upper, rhs, out):
    batch, size = diag.shape
    scratch = np.empty(size)
    for b in range(batch):
        pivot = diag[b, 0]
        scratch[0] = upper[b, 0] / pivot if size > 1 else 0.0
        out[b, 0] = rhs[b, 0] / pivot
        for i in range(1, size):
            pivot = diag[b, i] - lower[b, i] * scratch[i - 1]
            scratch[i] = upper[b, i] / pivot if i < size - 1 else 0.0
            out[b, i] = (rhs[b, i] - lower[b, i] * out[b, i - 1]) / pivot
        for i in range(size - 2, -1, -1):
            out[b, i] -= scratch[i] * out[b, i + 1]


def solve_tridiagonal_pcr(lower: Tensor, diag: Tensor, upper: Tensor, rhs: Tensor) -> Tensor:
    """Solves batched tridiagonal systems by parallel cyclic reduction (any device).

    Row i reads ``lower[:, i] x[i - 1] + diag[:, i] x[i] + upper[:, i] x[i + 1] = rhs[:, i]``;
    ``lower[:, 0]`` and ``upper[:, -1]`` are ignored. Stable for diagonally dominant
    systems. Runs on the inputs' device in ceil(log2 n) batched elementwise steps.

    Args:
        lower, diag, upper, rhs: shape (B, n).

    Returns:
        x, shape (B, n).
    """
    size = diag.shape[1]
    lower = torch.cat([torch.zeros_like(lower[:, :1]), lower[:, 1:]], dim=1)
    upper = torch.cat([upper[:, :-1], torch.zeros_like(upper[:, :1])], dim=1)
    stride = 1
    while stride < size:
        def before(x: Tensor, fill: float) -> Tensor:
            return torch.nn.functional.pad(x[:, : size - stride], (stride, 0), value=fill)

        def after(x: Tensor, fill: float) -> Tensor:
            return torch.nn.functional.pad(x[:, stride:], (0, stride), value=fill)

        from_before = lower / before(diag, 1.0)
        from_after = upper / after(diag, 1.0)
        diag, rhs, lower, upper = (
            diag - before(upper, 0.0) * from_before - after(lower, 0.0) * from_after,
            rhs - before(rhs, 0.0) * from_before - after(rhs, 0.0) * from_after,
            -before(lower, 0.0) * from_before,
            -after(upper, 0.0) * from_after,
        )
        stride *= 2
    return rhs / diag


def _group_sum(values: Tensor, group: Tensor, size: int) -> Tensor:
    out = torch.zeros(values.shape[0], size, dtype=values.dtype, device=values.device)
    return out.scatter_add_(1, group, values)


def local_model(reference: Signal, problem: GDTWProblem, active: ActiveSet, products: InnerProducts) -> LocalModel:
    """Builds the quadratic model of f on the active face, from the solver's inner products
    (no feature vector is read).

    Args:
        reference: reference signals (times are read).
        problem: the resolved problem.
        active: the active set, from :func:`detect_active_set`.
        products: the inner products the solver built its node costs from.
    """
    f64 = torch.float64
    batch, size = active.kind.shape
    device = active.kind.device
    segment = active.segment
    times = reference.times.to(f64)
    left = times.gather(1, segment)
    length = times.gather(1, segment + 1) - left
    step_sq = products.step_sq.gather(1, segment)
    delta_sq = step_sq.clamp(min=0.0)
    # <R_k - Q_i, R_k+1 - R_k> = <R_k, R_k+1> - ||R_k||^2 - <Q_i, R_k+1> + <Q_i, R_k>.
    ref_sq = products.ref_sq
    to_next = 0.5 * (ref_sq.gather(1, segment + 1) - ref_sq.gather(1, segment) - step_sq)
    cross = products.cross
    offset_dot = to_next - (cross.gather(2, (segment + 1)[..., None]) - cross.gather(2, segment[..., None]))[..., 0]

    dt = problem.dt
    coupling = torch.where(dt > 0, 2.0 * problem.lam[:, None] / torch.where(dt > 0, dt, 1.0), 0.0)
    diag = 2.0 * problem.weights * delta_sq / length.square()
    diag = diag + torch.nn.functional.pad(coupling, (1, 0)) + torch.nn.functional.pad(coupling, (0, 1))

    joined = active.slope != 0
    group = torch.cat([torch.zeros_like(segment[:, :1]), (~joined).long().cumsum(1)], dim=1)
    fixed = active.kind != FREE
    position = torch.arange(size, device=device).expand(batch, size)
    none = torch.full((batch, size), size, dtype=torch.long, device=device)
    first_fixed = none.scatter_reduce(1, group, torch.where(fixed, position, size), "amin")
    first_knot = none.scatter_reduce(1, group, position, "amin")
    has_fixed = first_fixed < size
    anchor = torch.where(has_fixed, first_fixed, first_knot).clamp(max=size - 1)
    group_diag = _group_sum(diag, group, size) - 2.0 * _group_sum(
        torch.where(joined, coupling, 0.0), group[:, :-1], size
    )
    # A free group without curvature (lambda = 0 on a flat stretch of reference) has no
    # unique optimum; like a pseudo-inverse, the solve leaves it where it is.
    scale = diag.abs().amax(1, keepdim=True) + torch.finfo(f64).tiny
    flat_group = ~has_fixed & (group_diag <= 1e-12 * scale)
    return LocalModel(
        active=active, left=left, length=length, delta_sq=delta_sq, offset_dot=offset_dot,
        diag=diag, coupling=coupling, group=group, group_diag=group_diag, held=has_fixed | flat_group,
        anchor=anchor, has_fixed=has_fixed,
    )


def _reduced_solve(model: LocalModel, rhs: Tensor) -> Tensor:
    """Z (Z^T H Z)^{-1} Z^T rhs: zero on held groups, shape (B, m)."""
    size = rhs.shape[1]
    group, held, coupling, group_diag = model.group, model.held, model.coupling, model.group_diag
    joined = model.active.slope != 0
    between = _group_sum(torch.where(joined, 0.0, coupling), group[:, :-1], size)
    off = torch.where(~held[:, :-1] & ~held[:, 1:], -between[:, :-1], 0.0)
    solution = solve_tridiagonal(
        torch.nn.functional.pad(off, (1, 0)),
        torch.where(held, 1.0, group_diag),
        torch.nn.functional.pad(off, (0, 1)),
        torch.where(held, 0.0, _group_sum(rhs, group, size)),
    )
    return torch.where(held.gather(1, group), 0.0, solution.gather(1, group))


def _hessian_times(model: LocalModel, x: Tensor) -> Tensor:
    out = model.diag * x
    out[:, :-1] -= model.coupling * x[:, 1:]
    out[:, 1:] -= model.coupling * x[:, :-1]
    return out


def _slope_excess(problem: GDTWProblem, warp: Tensor) -> Tensor:
    """u_i = (dphi_i - e dt_i) / dt_i, shape (B, m - 1); 0 on padding."""
    dt = problem.dt
    safe_dt = torch.where(dt > 0, dt, 1.0)
    return torch.where(dt > 0, (warp.diff(dim=1) - problem.expected_slope[:, None] * dt) / safe_dt, 0.0)


def warp_vjp(
    grad_warp: Tensor,
    reference: Signal,
    query: Signal,
    problem: GDTWProblem,
    model: LocalModel,
    warp: Tensor,
    needs: tuple[bool, bool, bool, bool, bool, bool],
    knots_are_samples: bool = False,
) -> WarpGradients:
    """dJ/dz from dJ/dphi at a GDTW solution (the maths is in the module docstring).

    Args:
        grad_warp: dJ/dphi, shape (B, m).
        reference: reference signals (values, times and lengths are read).
        query: query signals (times and lengths are read).
        problem: the resolved problem.
        model: the local model at ``warp``.
        warp: the solution phi*, shape (B, m), float64.
        needs: whether to compute the gradient of (reference values, query values, lambda,
            slope_min, slope_max, band).
        knots_are_samples: the knots are the query's own sample times, so Q at the knots is
            the query's values (its gradient is then s_i delta_i itself, no interpolation).

    Returns:
        :class:`WarpGradients`: the values' gradients in their dtype, the rest float64.
    """
    need_ref, need_query, need_lam, need_smin, need_smax, need_band = needs
    batch, size = warp.shape
    f64 = torch.float64
    device = warp.device
    v = torch.where(problem.knot_mask, grad_warp.to(f64), 0.0)
    adjoint = _reduced_solve(model, v)
    grads: dict[str, Tensor] = {}

    if need_ref or need_query:
        alpha = (warp - model.left) / model.length
        scaled = 2.0 * adjoint * problem.weights / model.length  # s_i
        knot_values = problem.query_at_knots.detach()
        grad_reference, grad_knots = value_gradients(
            reference.values.detach(), knot_values.to(reference.values.dtype), model.active.segment,
            scaled, alpha, need_ref, need_query,
        )
        if need_ref:
            grads["reference_values"] = grad_reference
        if need_query and knots_are_samples:
            grads["query_values"] = grad_knots
        elif need_query:
            # Q(t_i) interpolates the query samples on either side of t_i.
            query_size = query.max_length
            q_index, q_fraction = query.segments(problem.knots)
            q_fraction = q_fraction.to(grad_knots.dtype)[..., None]
            flat = (q_index + torch.arange(batch, device=device)[:, None] * query_size).flatten()
            dim = grad_knots.shape[-1]
            grad_query = torch.zeros(batch * query_size, dim, dtype=grad_knots.dtype, device=device)
            grad_query.index_add_(0, flat, (grad_knots * (1.0 - q_fraction)).reshape(-1, dim))
            grad_query.index_add_(0, flat + 1, (grad_knots * q_fraction).reshape(-1, dim))
            grads["query_values"] = grad_query.reshape(batch, query_size, dim)
    if need_lam:
        grads["lam"] = -2.0 * (_slope_excess(problem, warp) * adjoint.diff(dim=1)).sum(1)

    if need_smin or need_smax or need_band:
        reaction = v - _hessian_times(model, adjoint)
        group = model.group
        total = _group_sum(reaction, group, size)
        running = reaction.cumsum(1)
        position = torch.arange(size, device=device).expand(batch, size)
        first = torch.full((batch, size), size, dtype=torch.long, device=device).scatter_reduce(
            1, group, position, "amin"
        ).gather(1, group)
        prefix = running - torch.where(first > 0, running.gather(1, (first - 1).clamp(min=0)), 0.0)
        interval_group = group[:, :-1]
        after_anchor = position[:, :-1] >= model.anchor.gather(1, interval_group)
        suffix = total.gather(1, interval_group) - prefix[:, :-1]
        grad_step = torch.where(after_anchor, suffix, -prefix[:, :-1])
        per_slope = grad_step * problem.expected_slope[:, None] * problem.dt
        if need_smin:
            grads["slope_min"] = torch.where(model.active.slope == -1, per_slope, 0.0)
        if need_smax:
            grads["slope_max"] = torch.where(model.active.slope == 1, per_slope, 0.0)
        if need_band:
            span = (reference.end - reference.start).to(f64)
            anchor_kind = model.active.kind.gather(1, model.anchor).long()
            sign = (anchor_kind == BAND_UPPER).to(f64) - (anchor_kind == BAND_LOWER).to(f64)
            used = model.has_fixed & (position <= group.amax(1, keepdim=True))
            grads["band"] = torch.where(used, sign * total, 0.0).sum(1) * span
    return WarpGradients(**grads)
