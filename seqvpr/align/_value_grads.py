r"""The D-dimensional part of DecDTW's backward pass: gradients of the feature values.

Per knot i in reference segment k = k_i, at fraction alpha = alpha_i of the segment, with
s = s_i = 2 a_i w_i / h_i (a the adjoint; :mod:`seqvpr.align._implicit` derives it), the
values' gradients are

    dJ/dR_k   += s (2 - 2 alpha) R_k - s (1 - 2 alpha) R_k+1 - s Q_i
    dJ/dR_k+1 += -s (1 - 2 alpha) R_k - 2 alpha s R_k+1 + s Q_i
    dJ/dQ_i   += s (R_k+1 - R_k)

so row j of the reference gradient is c_j R_j + u_j R_j+1 + u_j-1 R_j-1 plus +-s_i Q_i for the
knots whose segment starts or ends at j: a symmetric tridiagonal map of the reference plus a
sparse one of the query. Two implementations, tested against each other and a per-knot loop:

- :func:`value_gradients_cpu` (the CPU path): one parallel numba pass over the output rows.
  Each gradient row is written once, in one sweep that reads R_j-1, R_j, R_j+1 and the first
  two query rows that enter it; dJ/dQ_i is formed while R_k and R_k+1 are still in cache.
  Rows no knot touches are zero-filled without reading anything (a 10-frame query touches
  about 11 of 25 reference rows). Nothing of size D is allocated but the outputs.
- :func:`value_gradients_torch` (other devices): the same sums as five elementwise passes and
  two ``index_add_``.

The backward pass is memory-bound: at D = 32768 it writes 36 MB of gradients for a batch of
8, which costs about as much as the forward's one read of the descriptors. The dense
formulation this replaced (gather both endpoints of every knot's segment, multiply by an
(N x 2m) coefficient matrix) cost 3-4 times as much (``tools/bench/backward.py``).
"""

from __future__ import annotations

import torch
from numba import njit, prange
from torch import Tensor

__all__ = ["reference_coefficients", "value_gradients", "value_gradients_cpu", "value_gradients_torch"]


def reference_coefficients(segment: Tensor, scaled: Tensor, alpha: Tensor, ref_size: int) -> tuple[Tensor, Tensor]:
    """The tridiagonal coefficients of the reference gradient.

    Args:
        segment: k_i, shape (B, m), int64.
        scaled: s_i, shape (B, m), float64 (0 where a knot takes no gradient).
        alpha: alpha_i, shape (B, m), float64.
        ref_size: N, the padded reference length.

    Returns:
        ``(diag (B, N), off (B, N - 1))``: row j gets ``diag_j R_j + off_j R_j+1 + off_j-1 R_j-1``.
    """
    batch = segment.shape[0]
    diag = torch.zeros(batch, ref_size, dtype=scaled.dtype, device=scaled.device)
    diag.scatter_add_(1, segment, scaled * (2.0 - 2.0 * alpha))
    diag.scatter_add_(1, segment + 1, -2.0 * alpha * scaled)
    off = torch.zeros(batch, ref_size - 1, dtype=scaled.dtype, device=scaled.device)
    off.scatter_add_(1, segment, -scaled * (1.0 - 2.0 * alpha))
    return diag, off


def value_gradients_torch(
    reference: Tensor, knot_values: Tensor, segment: Tensor, scaled: Tensor, alpha: Tensor,
    need_reference: bool, need_knots: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The values' gradients with torch operations (any device).

    Args:
        reference: R, shape (B, N, D). knot_values: Q_i, shape (B, m, D), same dtype.
        segment, scaled, alpha: k_i (int64), s_i and alpha_i (float64), shape (B, m).
        need_reference, need_knots: which gradients to form.

    Returns:
        ``(dJ/dR (B, N, D) or None, dJ/dQ_i (B, m, D) or None)`` in the values' dtype.
    """
    batch, ref_size, dim = reference.shape
    dtype = reference.dtype
    rows = reference.reshape(-1, dim)
    start = (segment + torch.arange(batch, device=segment.device)[:, None] * ref_size).flatten()
    grad_reference = grad_knots = None
    if need_reference:
        diag, off = (x.to(dtype)[..., None] for x in reference_coefficients(segment, scaled, alpha, ref_size))
        grad_reference = reference * diag
        grad_reference[:, :-1].addcmul_(off, reference[:, 1:])
        grad_reference[:, 1:].addcmul_(off, reference[:, :-1])
        weighted = (knot_values * scaled.to(dtype)[..., None]).reshape(-1, dim)
        flat = grad_reference.view(-1, dim)
        flat.index_add_(0, start, weighted, alpha=-1)
        flat.index_add_(0, start + 1, weighted)
    if need_knots:
        grad_knots = rows.index_select(0, start + 1).sub_(rows.index_select(0, start))
        grad_knots = grad_knots.mul_(scaled.to(dtype).reshape(-1, 1)).reshape(batch, -1, dim)
    return grad_reference, grad_knots


@njit(cache=True, error_model="numpy", inline="always")
def _reference_row(reference, knot_values, segment, scaled, diag, off, grad_reference, grad_knots, b, j):
    """Row j of item b: dJ/dR_j in one pass over the row, and dJ/dQ_i for the knots whose
    segment starts at j while R_j and R_j+1 are in cache."""
    ref_size, dim = reference.shape[1], reference.shape[2]
    size = segment.shape[1]
    out = grad_reference[b, j]
    here, up, down = diag[b, j], off[b, j + 1], off[b, j]
    centre = reference[b, j]
    after = reference[b, min(j + 1, ref_size - 1)]  # a missing neighbour has a zero coefficient
    before = reference[b, max(j - 1, 0)]
    # The first two query rows that enter row j join the main pass; more take extra passes.
    first = second = -1
    first_coef = second_coef = here - here  # zeros of the values' dtype
    extra = False
    for i in range(size):
        k, s = segment[b, i], scaled[b, i]
        if s == 0.0 or (k != j and k + 1 != j):
            continue
        coef = -s if k == j else s
        if first < 0:
            first, first_coef = i, coef
        elif second < 0:
            second, second_coef = i, coef
        else:
            extra = True
    if first < 0:
        if here == 0.0 and up == 0.0 and down == 0.0:
            out[:] = 0.0
        else:
            for d in range(dim):
                out[d] = here * centre[d] + up * after[d] + down * before[d]
    else:
        q1 = knot_values[b, first]
        q2 = knot_values[b, max(second, first)]  # second_coef is zero when there is none
        for d in range(dim):
            out[d] = here * centre[d] + up * after[d] + down * before[d] + first_coef * q1[d] + second_coef * q2[d]
    if extra:
        for i in range(second + 1, size):
            k, s = segment[b, i], scaled[b, i]
            if s == 0.0 or (k != j and k + 1 != j):
                continue
            coef = -s if k == j else s
            source = knot_values[b, i]
            for d in range(dim):
                out[d] += coef * source[d]
    if grad_knots.shape[0] > 0 and j < ref_size - 1:
        for i in range(size):
            if segment[b, i] == j:
                _knot_row(grad_knots[b, i], scaled[b, i], centre, after)


@njit(cache=True, error_model="numpy", inline="always")
def _knot_row(out, s, left, right):
    if s == 0.0:
        out[:] = 0.0
    else:
        for d in range(out.shape[0]):
            out[d] = s * (right[d] - left[d])


@njit(cache=True, parallel=True, error_model="numpy")
def _value_gradients(reference, knot_values, segment, scaled, diag, off, grad_reference, grad_knots):
    # Parallel over (item, reference row); each output element is written once. off is padded
    # with a zero at both ends: row j couples to j + 1 by off[b, j + 1] and to j - 1 by
    # off[b, j]. All coefficients have the values' dtype, so the loops stay in it.
    batch, ref_size, dim = reference.shape
    size = segment.shape[1]
    if grad_reference.shape[0] > 0:
        for row in prange(batch * ref_size):
            b, j = row // ref_size, row % ref_size
            _reference_row(reference, knot_values, segment, scaled, diag, off, grad_reference, grad_knots, b, j)
    else:
        for row in prange(batch * size):
            b, i = row // size, row % size
            k = segment[b, i]
            _knot_row(grad_knots[b, i], scaled[b, i], reference[b, k], reference[b, k + 1])


def value_gradients_cpu(
    reference: Tensor, knot_values: Tensor, segment: Tensor, scaled: Tensor, alpha: Tensor,
    need_reference: bool, need_knots: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """:func:`value_gradients_torch` in one numba pass (CPU tensors, float32 or float64)."""
    batch, ref_size, dim = reference.shape
    dtype = reference.dtype
    diag, off = reference_coefficients(segment, scaled, alpha, ref_size)
    empty = torch.empty(0, 0, 0, dtype=dtype)
    grad_reference = torch.empty_like(reference, memory_format=torch.contiguous_format) if need_reference else empty
    grad_knots = torch.empty_like(knot_values, memory_format=torch.contiguous_format) if need_knots else empty
    _value_gradients(
        reference.detach().contiguous().numpy(),
        knot_values.detach().contiguous().numpy(),
        segment.contiguous().numpy(),
        scaled.to(dtype).contiguous().numpy(),
        diag.to(dtype).numpy(),
        torch.nn.functional.pad(off, (1, 1)).to(dtype).numpy(),
        grad_reference.numpy(),
        grad_knots.numpy(),
    )
    return (grad_reference if need_reference else None), (grad_knots if need_knots else None)


def value_gradients(
    reference: Tensor, knot_values: Tensor, segment: Tensor, scaled: Tensor, alpha: Tensor,
    need_reference: bool, need_knots: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The values' gradients: the numba pass for float32/float64 CPU tensors, torch otherwise.

    Arguments and result as in :func:`value_gradients_torch`.
    """
    if (
        reference.device.type == "cpu"
        and reference.dtype in (torch.float32, torch.float64)
        and knot_values.dtype == reference.dtype
    ):
        return value_gradients_cpu(reference, knot_values, segment, scaled, alpha, need_reference, need_knots)
    return value_gradients_torch(reference, knot_values, segment, scaled, alpha, need_reference, need_knots)
