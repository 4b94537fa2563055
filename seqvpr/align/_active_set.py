r"""The exact local optimum of the GDTW objective near the DP answer (a primal active-set method).

With the warp's knots phi_1..phi_m, the objective

    f(phi) = sum_i w_i ||R(phi_i) - Q_i||^2 + lambda sum_i (phi_{i+1} - phi_i - e dt_i)^2 / dt_i

is piecewise quadratic: R is linear inside each reference segment [tau_k, tau_k+1], so on a
*cell* (one segment per knot) f is a convex quadratic with a tridiagonal Hessian, and it has a
kink wherever a knot crosses a reference sample time tau_k. The constraints are linear:
box-and-band bounds l_i <= phi_i <= u_i, slope bounds step_min_i <= phi_{i+1} - phi_i <=
step_max_i, and in full mode the pinned ends.

The solver keeps a *working set* of equalities: knots held at a bound (lower, upper, a pinned
end) or at a reference sample time (a vertex), and knot intervals held at a slope bound.
Intervals held at a slope bound tie their knots into groups that move rigidly; a group with a
held knot stays put. Each iteration

1. takes the Newton step of the cell's quadratic on the face of the working set (one
   tridiagonal solve over the free groups);
2. if the step is not negligible, moves along it as far as every constraint and every free
   knot's segment allow; the first constraint that blocks joins the working set (a knot that
   reaches the end of its segment is held at that vertex);
3. otherwise it is at the minimiser of the face and checks the optimality conditions of every
   working constraint, each by the one-sided derivative of f when that constraint alone is
   released (other knots fixed): a knot held at a lower bound needs d f / d(up) >= 0, one at an
   upper bound d f / d(down) >= 0, an interval at its lower slope bound needs the derivative
   with respect to a longer step to be >= 0, at its upper bound <= 0, and a knot held at a
   vertex tau_k stays only while the one-sided derivatives there bracket zero (moving either
   way raises f). The constraint that fails worst is released - a vertex into the segment its
   descending side points to - and the loop continues. When none fails, phi is a KKT point.

Every step lowers f (convex on a cell, continuous across cells), the working set stays linearly
independent (a blocking constraint is never implied by the others), and a few rounds suffice
when the DP answer is close: the initial working set holds the knots the DP put within a grid
spacing of a bound or a vertex (and the pinned ends); wrong guesses are released by step 3.

An item whose iteration count runs out (10 m + 100 rounds) or whose numbers stop being finite
keeps the DP answer (``status`` says which); :func:`local_optimum` then gives it the active set
guessed from the grid spacing (:func:`seqvpr.align._implicit.detect_active_set`), and the
DecDTW layer logs a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from seqvpr.align import _implicit as implicit
from seqvpr.align.gdtw import GDTWResult
from seqvpr.align.signal import Signal

__all__ = ["CONVERGED", "FREE", "ITERATION_LIMIT", "LOWER", "NOT_FINITE", "PIN", "UPPER", "VERTEX",
           "FaceInputs", "FaceResult", "LocalOptimum", "local_optimum", "solve_faces"]

# Why a knot is held.
FREE, LOWER, UPPER, PIN, VERTEX = range(5)
# Per-item outcome.
CONVERGED, ITERATION_LIMIT, NOT_FINITE = range(3)


class FaceInputs(NamedTuple):
    """One batch of resolved GDTW problems and their DP answers (float64 numpy arrays).

    Times are relative to each item's first reference sample (so that rounding does not
    depend on the clock's epoch).

    Attributes:
        ref_times: tau_k, shape (B, N). ref_lengths: valid samples (B,), int64.
        lengths: valid knots (B,), int64.
        cross: <Q_i, R_k>, shape (B, m, N). ref_sq: ||R_k||^2, (B, N).
        step_sq: ||R_k+1 - R_k||^2, (B, N - 1).
        weights: trapezoid weights w_i, (B, m). dt: knot spacing, (B, m - 1).
        lam: lambda, (B,). shift: expected steps e dt_i, (B, m - 1).
        step_min, step_max: slope bounds on phi_{i+1} - phi_i, (B, m - 1); step_max may be inf.
        lower, upper: box-and-band bounds of each knot, (B, m).
        pinned: full alignment (phi_1 = tau_1 and phi_m = tau_N).
        start: the DP answer, (B, m).
        spacing: the final grid spacing per knot, (B, m): the initial working set holds the
            knots that lie within it of a bound or a vertex.
    """

    ref_times: np.ndarray
    ref_lengths: np.ndarray
    lengths: np.ndarray
    cross: np.ndarray
    ref_sq: np.ndarray
    step_sq: np.ndarray
    weights: np.ndarray
    dt: np.ndarray
    lam: np.ndarray
    shift: np.ndarray
    step_min: np.ndarray
    step_max: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    pinned: bool
    start: np.ndarray
    spacing: np.ndarray


class FaceResult(NamedTuple):
    """The local optimum and its working set.

    Attributes:
        warp: phi, shape (B, m) (relative times, like the inputs).
        hold: per knot, ``FREE``, ``LOWER``, ``UPPER``, ``PIN`` or ``VERTEX``, (B, m) int8.
        segment: reference segment k of each knot's local quadratic, (B, m) int64 (for a
            knot held at a vertex, the segment that starts there).
        slope: per interval, -1 at step_min, +1 at step_max, 0 free, (B, m - 1) int8.
        status: ``CONVERGED``, ``ITERATION_LIMIT`` or ``NOT_FINITE`` per item, (B,) int64.
        iterations: working-set iterations per item, (B,) int64.
    """

    warp: np.ndarray
    hold: np.ndarray
    segment: np.ndarray
    slope: np.ndarray
    status: np.ndarray
    iterations: np.ndarray


@njit(cache=True, inline="always")
def _segment_right(tau, x):
    """Largest k <= N - 2 with tau_k <= x (the segment a knot at x enters moving up)."""
    k = np.searchsorted(tau, x, side="right") - 1
    return min(max(k, 0), tau.shape[0] - 2)


@njit(cache=True, inline="always")
def _segment_left(tau, x):
    """Smallest k >= 0 with x <= tau_k+1 (the segment a knot at x enters moving down)."""
    k = np.searchsorted(tau, x, side="left") - 1
    return min(max(k, 0), tau.shape[0] - 2)


@njit(cache=True, inline="always")
def _data_slope(cross_i, ref_sq, step_sq, tau, weight, k, x):
    """d/dphi of w ||R(phi) - Q||^2 at phi = x on segment k, and its curvature."""
    length = tau[k + 1] - tau[k]
    offset_dot = 0.5 * (ref_sq[k + 1] - ref_sq[k] - step_sq[k]) - cross_i[k + 1] + cross_i[k]
    delta_sq = max(step_sq[k], 0.0)
    alpha = (x - tau[k]) / length
    return 2.0 * weight * (offset_dot + alpha * delta_sq) / length, 2.0 * weight * delta_sq / (length * length)


@njit(cache=True, error_model="numpy")
def _solve_item(tau, cross, ref_sq, step_sq, w, dt, lam, shift, step_min, step_max, lower, upper,
                pinned, spacing, phi, hold, seg, slope):
    """Working-set iterations for one item (arrays already cut to its valid lengths).

    ``phi`` holds the DP answer on entry and the local optimum on exit. Returns
    ``(status, iterations)``.
    """
    n = phi.shape[0]
    count = tau.shape[0]
    span = tau[count - 1] - tau[0]
    coupling = np.zeros(max(n - 1, 1))
    for i in range(n - 1):
        coupling[i] = 2.0 * lam / dt[i] if dt[i] > 0.0 else 0.0

    # Initial working set: pinned ends, and knots within a grid spacing of a bound or vertex.
    for i in range(n):
        phi[i] = min(max(phi[i], lower[i]), upper[i])
    start = phi.copy()
    for i in range(n - 1):
        slope[i] = 0
    for i in range(n):
        hold[i] = FREE
        seg[i] = _segment_right(tau, phi[i])
        if pinned and (i == 0 or i == n - 1):
            hold[i] = PIN
            phi[i] = tau[0] if i == 0 else tau[count - 1]
            seg[i] = 0 if i == 0 else count - 2
        elif phi[i] - lower[i] <= spacing[i]:
            hold[i] = LOWER
            phi[i] = lower[i]
            seg[i] = _segment_right(tau, phi[i])
        elif upper[i] - phi[i] <= spacing[i]:
            hold[i] = UPPER
            phi[i] = upper[i]
            seg[i] = _segment_left(tau, phi[i])
        else:
            k = seg[i]
            vertex = k + 1 if tau[k + 1] - phi[i] < phi[i] - tau[k] else k
            if 1 <= vertex <= count - 2 and abs(phi[i] - tau[vertex]) <= spacing[i] and w[i] > 0.0:
                hold[i] = VERTEX
                phi[i] = tau[vertex]
                seg[i] = vertex
    # Snapping must not break a slope bound the DP answer met; otherwise start from the DP answer.
    worse = False
    for i in range(n - 1):
        before = max(step_min[i] - (start[i + 1] - start[i]), (start[i + 1] - start[i]) - step_max[i], 0.0)
        after = max(step_min[i] - (phi[i + 1] - phi[i]), (phi[i + 1] - phi[i]) - step_max[i], 0.0)
        if after > before + 1e-12 * (1.0 + span):
            worse = True
    if worse:
        for i in range(n):
            phi[i] = start[i]
            if hold[i] != PIN:
                hold[i] = FREE
                seg[i] = _segment_right(tau, phi[i])

    group = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    held = np.empty(n, dtype=np.int64)
    grad = np.empty(n)
    right = np.empty(n)  # one-sided derivatives of vertex-held knots
    left = np.empty(n)
    curv = np.empty(n)
    diag = np.empty(n)
    rhs = np.empty(n)
    off = np.zeros(n)
    scratch = np.empty(n)
    y = np.empty(n)
    step = np.empty(n)
    limit = 10 * n + 100
    iteration = 0
    while iteration < limit:
        iteration += 1
        # Groups: maximal runs tied by held slopes; held[g] = its held knot or -1.
        groups = 0
        for i in range(n):
            if i == 0 or slope[i - 1] == 0:
                first[groups] = i
                held[groups] = -1
                groups += 1
            group[i] = groups - 1
            last[groups - 1] = i
            if hold[i] != FREE:
                held[groups - 1] = i
        # Gradient and curvature of f at phi on each knot's segment.
        scale = 0.0
        for i in range(n):
            if hold[i] == VERTEX:
                v = seg[i]
                right[i] = _data_slope(cross[i], ref_sq, step_sq, tau, w[i], v, tau[v])[0]
                left[i] = _data_slope(cross[i], ref_sq, step_sq, tau, w[i], v - 1, tau[v])[0]
                data, curv[i] = right[i], 0.0
                scale = max(scale, abs(right[i]), abs(left[i]))
            else:
                data, curv[i] = _data_slope(cross[i], ref_sq, step_sq, tau, w[i], seg[i], phi[i])
                scale = max(scale, abs(data))
            regulariser = 0.0
            if i > 0 and dt[i - 1] > 0.0:
                excess = (phi[i] - phi[i - 1] - shift[i - 1]) / dt[i - 1]
                regulariser += 2.0 * lam * excess
                scale = max(scale, abs(2.0 * lam * excess))
            if i < n - 1 and dt[i] > 0.0:
                regulariser -= 2.0 * lam * (phi[i + 1] - phi[i] - shift[i]) / dt[i]
            # A vertex-held knot's data slope is one-sided: kept apart in right / left.
            grad[i] = regulariser + (0.0 if hold[i] == VERTEX else data)
        # Newton step on the face: (Z^T H Z) y = Z^T grad over the free groups.
        for g in range(groups):
            diag[g] = 0.0
            rhs[g] = 0.0
            off[g] = 0.0
            for i in range(first[g], last[g] + 1):
                diag[g] += curv[i] + (coupling[i - 1] if i > 0 else 0.0) + (coupling[i] if i < n - 1 else 0.0)
                if i < last[g]:
                    diag[g] -= 2.0 * coupling[i]
                rhs[g] += grad[i]
            if g + 1 < groups and held[g] < 0 and held[g + 1] < 0:
                off[g] = -coupling[last[g]]
        curvature_scale = 0.0
        for g in range(groups):
            curvature_scale = max(curvature_scale, abs(diag[g]))
        flat_tol = 1e-13 * curvature_scale + 1e-300
        for g in range(groups):
            if held[g] >= 0:
                diag[g], rhs[g] = 1.0, 0.0
        # Thomas algorithm over the groups (a held group is an identity row with rhs 0).
        for g in range(groups):
            flat = held[g] < 0 and diag[g] <= flat_tol
            if flat:
                # No curvature and no coupling (lambda = 0 on a flat stretch): slide to a bound.
                diag[g] = 1.0
                rhs[g] = 0.0 if abs(rhs[g]) <= 1e-9 * scale + 1e-300 else (2.0 * span + 1.0) * np.sign(rhs[g])
        for g in range(groups):
            pivot = diag[g] - (off[g - 1] * scratch[g - 1] if g > 0 else 0.0)
            scratch[g] = off[g] / pivot
            y[g] = (rhs[g] - (off[g - 1] * y[g - 1] if g > 0 else 0.0)) / pivot
        for g in range(groups - 2, -1, -1):
            y[g] -= scratch[g] * y[g + 1]
        largest = 0.0
        for i in range(n):
            step[i] = -y[group[i]] if held[group[i]] < 0 else 0.0
            largest = max(largest, abs(step[i]))
        if not np.isfinite(largest):
            phi[:] = start
            return NOT_FINITE, iteration

        if largest > 1e-13 * (1.0 + span):
            # Ratio test: the longest step that keeps every constraint and segment.
            alpha = 1.0
            kind = -1
            where = -1
            target = 0.0
            for i in range(n):
                p = step[i]
                if p > 0.0:
                    a = (upper[i] - phi[i]) / p
                    if a < alpha:
                        alpha, kind, where, target = a, UPPER, i, upper[i]
                    vertex = seg[i] + 1
                    if vertex <= count - 2:
                        a = (tau[vertex] - phi[i]) / p
                        if a < alpha:
                            alpha, kind, where, target = a, VERTEX, i, float(vertex)
                elif p < 0.0:
                    a = (lower[i] - phi[i]) / p
                    if a < alpha:
                        alpha, kind, where, target = a, LOWER, i, lower[i]
                    vertex = seg[i]
                    if vertex >= 1:
                        a = (tau[vertex] - phi[i]) / p
                        if a < alpha:
                            alpha, kind, where, target = a, VERTEX, i, float(vertex)
            for i in range(n - 1):
                if slope[i] != 0:
                    continue
                change = step[i + 1] - step[i]
                gap = phi[i + 1] - phi[i]
                if change < 0.0:
                    a = (gap - step_min[i]) / -change
                    if a < alpha:
                        alpha, kind, where = a, -2, i
                elif change > 0.0 and np.isfinite(step_max[i]):
                    a = (step_max[i] - gap) / change
                    if a < alpha:
                        alpha, kind, where = a, -3, i
            alpha = max(alpha, 0.0)
            for i in range(n):
                phi[i] += alpha * step[i]
            if kind == VERTEX:
                vertex = int(target)
                hold[where] = VERTEX
                phi[where] = tau[vertex]
                seg[where] = vertex
            elif kind == LOWER or kind == UPPER:
                hold[where] = kind
                phi[where] = target
            elif kind == -2:
                slope[where] = -1
            elif kind == -3:
                slope[where] = 1
            continue

        # At the face's minimiser: release the working constraint whose condition fails worst.
        tol = 1e-9 * scale + 1e-300
        worst = tol
        release = -1  # knot index, or n + interval index
        direction = 0
        for g in range(groups):
            h = held[g]
            total = 0.0
            for i in range(first[g], last[g] + 1):
                total += grad[i]
            if h >= 0:
                if hold[h] == LOWER and -total > worst:
                    worst, release, direction = -total, h, 1
                elif hold[h] == UPPER and total > worst:
                    worst, release, direction = total, h, -1
                elif hold[h] == VERTEX:
                    if -(total + right[h]) > worst:
                        worst, release, direction = -(total + right[h]), h, 1
                    if total + left[h] > worst:
                        worst, release, direction = total + left[h], h, -1
            # Held slopes inside the group: the derivative of f with respect to a longer step
            # moves the part of the group without the held knot.
            prefix = 0.0
            for i in range(first[g], last[g]):
                prefix += grad[i]
                longer = -prefix if (h >= 0 and h > i) else total - prefix
                if slope[i] == -1 and -longer > worst:
                    worst, release, direction = -longer, n + i, 0
                elif slope[i] == 1 and longer > worst:
                    worst, release, direction = longer, n + i, 0
        if release < 0:
            return CONVERGED, iteration
        if release >= n:
            slope[release - n] = 0
        else:
            if hold[release] == VERTEX and direction < 0:
                seg[release] -= 1
            elif hold[release] == LOWER:
                seg[release] = _segment_right(tau, phi[release])
            elif hold[release] == UPPER:
                seg[release] = _segment_left(tau, phi[release])
            hold[release] = FREE
    phi[:] = start
    return ITERATION_LIMIT, iteration


def _solve_faces_py(inputs, warp, hold, segment, slope, status, iterations):
    for b in prange(inputs.lengths.shape[0]):
        n = inputs.lengths[b]
        count = inputs.ref_lengths[b]
        phi = inputs.start[b, :n].copy()
        knot_hold = np.empty(n, dtype=np.int8)
        knot_segment = np.empty(n, dtype=np.int64)
        knot_slope = np.empty(max(n - 1, 1), dtype=np.int8)
        status[b], iterations[b] = _solve_item(
            inputs.ref_times[b, :count], inputs.cross[b, :n, :count], inputs.ref_sq[b, :count],
            inputs.step_sq[b, :count - 1], inputs.weights[b, :n], inputs.dt[b, :n - 1], inputs.lam[b],
            inputs.shift[b, :n - 1], inputs.step_min[b, :n - 1], inputs.step_max[b, :n - 1],
            inputs.lower[b, :n], inputs.upper[b, :n], inputs.pinned, inputs.spacing[b, :n],
            phi, knot_hold, knot_segment, knot_slope,
        )
        warp[b, :n] = phi
        warp[b, n:] = phi[n - 1]
        hold[b, :n] = knot_hold
        segment[b, :n] = knot_segment
        segment[b, n:] = knot_segment[n - 1]
        slope[b, :n - 1] = knot_slope[:n - 1]


_solve_faces_parallel = njit(cache=True, parallel=True, error_model="numpy")(_solve_faces_py)
_solve_faces_serial = njit(cache=True, error_model="numpy")(_solve_faces_py)


def solve_faces(inputs: FaceInputs) -> FaceResult:
    """Runs the working-set iterations for every item (in parallel threads for large batches).

    Padding knots (past ``lengths``) repeat the last valid warp value and are ``FREE``.
    """
    batch, size = inputs.start.shape
    warp = np.empty((batch, size))
    hold = np.zeros((batch, size), dtype=np.int8)
    segment = np.zeros((batch, size), dtype=np.int64)
    slope = np.zeros((batch, max(size - 1, 0)), dtype=np.int8)
    status = np.zeros(batch, dtype=np.int64)
    iterations = np.zeros(batch, dtype=np.int64)
    parallel = batch > 1 and int(inputs.lengths.sum()) >= 2000
    kernel = _solve_faces_parallel if parallel else _solve_faces_serial
    kernel(inputs, warp, hold, segment, slope, status, iterations)
    return FaceResult(warp, hold, segment, slope, status, iterations)


@dataclass(frozen=True)
class LocalOptimum:
    """The exact local optimum near a GDTW solver's answer, with its active set.

    Attributes:
        warp: phi*, shape (B, m), float64; items that fell back keep the solver's answer.
        active: the active constraints at phi* (:class:`seqvpr.align._implicit.ActiveSet`).
        status: ``CONVERGED``, ``ITERATION_LIMIT`` or ``NOT_FINITE`` per item, (B,) int64.
        iterations: working-set iterations per item, (B,) int64.
    """

    warp: Tensor
    active: implicit.ActiveSet
    status: Tensor
    iterations: Tensor


def _numpy(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float64).numpy())


def local_optimum(reference: Signal, result: GDTWResult, band: Tensor | None) -> LocalOptimum:
    """Moves the solver's answer to the exact local optimum and finds its active set.

    Args:
        reference: the reference signals the solver aligned to (times and lengths are read).
        result: the solver's result (its problem, warp, grid spacing and inner products).
        band: beta, shape (B,) float64, or None when there is no band.

    Returns:
        The :class:`LocalOptimum`. Items whose iterations did not converge keep the solver's
        answer and the active set guessed from the grid spacing
        (:func:`seqvpr.align._implicit.detect_active_set`).
    """
    problem, products = result.problem, result.inner_products
    device = result.warp.device
    times = reference.times.to(torch.float64)
    origin = times[:, :1]
    lower, upper, lower_kind, upper_kind = implicit.knot_bounds(reference, problem, band)
    magnitude = times.abs().amax(1, keepdim=True)
    rounding = 4.0 * torch.finfo(torch.float64).eps * (1.0 + magnitude)
    spacing = result.grid_spacing + rounding
    inputs = FaceInputs(
        ref_times=_numpy(times - origin), ref_lengths=reference.lengths.cpu().numpy(),
        lengths=problem.lengths.cpu().numpy(), cross=_numpy(products.cross), ref_sq=_numpy(products.ref_sq),
        step_sq=_numpy(products.step_sq), weights=_numpy(problem.weights), dt=_numpy(problem.dt),
        lam=_numpy(problem.lam), shift=_numpy(problem.expected_slope[:, None] * problem.dt),
        step_min=_numpy(problem.step_min), step_max=_numpy(problem.step_max),
        lower=_numpy(lower - origin), upper=_numpy(upper - origin), pinned=not problem.subsequence,
        start=_numpy(result.warp - origin), spacing=_numpy(spacing),
    )
    solved = solve_faces(inputs)

    def tensor(array: np.ndarray) -> Tensor:
        return torch.from_numpy(array).to(device)

    warp = tensor(solved.warp) + origin
    hold = tensor(solved.hold)
    kind = torch.full_like(hold, implicit.FREE)
    kind = torch.where(hold == LOWER, lower_kind, kind)
    kind = torch.where(hold == UPPER, upper_kind, kind)
    kind = torch.where(hold == PIN, implicit.PIN, kind)
    kind = torch.where(hold == VERTEX, implicit.KINK, kind)
    kind = torch.where(problem.knot_mask, kind, implicit.PADDING).to(torch.int8)
    slope = tensor(solved.slope).to(torch.int8)
    active = implicit.ActiveSet(slope=slope, kind=kind, segment=tensor(solved.segment))
    status = tensor(solved.status)
    failed = status != CONVERGED
    if bool(failed.any()):
        guess = implicit.detect_active_set(reference, problem, result.warp, spacing, band)
        keep = failed[:, None]
        warp = torch.where(keep, result.warp, warp)
        active = implicit.ActiveSet(*(
            torch.where(keep, getattr(guess, name), getattr(active, name))
            for name in ("slope", "kind", "segment")
        ))
    return LocalOptimum(warp=warp, active=active, status=status, iterations=tensor(solved.iterations))
