r"""Alignment losses: the paper's baselines (Soft-DTW, OTAM, DILATE, Along-GT) and the
warp-error losses DecDTW trains on.

Soft-DTW (Cuturi & Blondel 2017). For a cost matrix C (n x N), the soft-minimum
softmin_gamma(x) = -gamma log sum_k exp(-x_k / gamma) replaces the minimum of DTW:

    R[i, j] = C[i, j] + softmin_gamma(R[i-1, j-1], R[i-1, j], R[i, j-1]),   R[-1, -1] = 0,

and the discrepancy is R[n-1, N-1]; it tends to the DTW cost as gamma -> 0. Subsequence
(OTAM, Cao et al. 2020, as the DecDTW authors use it): the cost matrix is padded with a zero
row before the first query row and after the last one, and the same recursion runs on the
padded matrix. The path runs along a zero row for free, so it may enter and leave the
reference anywhere; as gamma -> 0 the value tends to the subsequence DTW cost.

The recursion runs over anti-diagonals (i + j = d), each a batched vector operation, and
is differentiated by autograd (also twice, which DILATE needs).

DILATE (Le Guen & Thome 2019): alpha * softDTW(C) + (1 - alpha) * <A, Omega> / (n N), where
A = dsoftDTW/dC is the soft alignment (expected path) matrix and Omega a penalty matrix
that scores each (query, reference) pair against the ground truth; the temporal term is
normalised by the matrix size, as in the DILATE authors' and the DecDTW authors' code.

Along-GT: the GDTW objective f evaluated at the ground-truth warp - the feature cost along
the true alignment, which a feature extractor can lower without improving the alignment.

Warp errors: mean or max over knots of the squared or Huber error between a predicted and a
ground-truth warp (or any per-knot quantity derived from it, such as positions).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqvpr.align.dtw import pairwise_sq_distances
from seqvpr.align.gdtw import GDTWConfig, gdtw_objective
from seqvpr.align.signal import Signal

__all__ = [
    "along_gt_loss",
    "dilate_loss",
    "otam_loss",
    "soft_alignment",
    "soft_dtw",
    "soft_dtw_loss",
    "warp_error_loss",
]

# Stands in for +inf outside the matrix: finite, so soft-minima and their gradients stay
# finite (exp underflows to exactly 0).
_FAR = 1e10


def _lengths(name: str, lengths: Tensor | None, batch: int, full: int, device: torch.device) -> Tensor:
    if lengths is None:
        return torch.full((batch,), full, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.shape != (batch,) or lengths.is_floating_point():
        raise ValueError(f"{name} must be an integer tensor of shape ({batch},), got {tuple(lengths.shape)}")
    if bool((lengths < 1).any()) or bool((lengths > full).any()):
        raise ValueError(f"{name} must lie in [1, {full}], got {lengths.tolist()}")
    return lengths.long()


def _check_gamma(gamma: float) -> None:
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")


def soft_dtw(
    cost: Tensor,
    gamma: float = 1.0,
    subsequence: bool = False,
    query_lengths: Tensor | None = None,
    reference_lengths: Tensor | None = None,
) -> Tensor:
    """Soft-DTW discrepancy of a batch of cost matrices.

    Args:
        cost: local costs C[b, i, j] between query sample i and reference sample j,
            shape (B, n, N).
        gamma: smoothing gamma > 0.
        subsequence: free start and end along the reference: the OTAM discrepancy, Soft-DTW
            of the cost padded with a zero row before and after the query's rows.
        query_lengths, reference_lengths: valid rows / columns per item, shape (B,);
            default n and N.

    Returns:
        The discrepancy, shape (B,); differentiable (twice) with respect to ``cost``.

    Raises:
        ValueError: if gamma <= 0, ``cost`` is not 3-D, or a length is out of range.
    """
    _check_gamma(gamma)
    if cost.dim() != 3:
        raise ValueError(f"cost must have shape (B, n, N), got {tuple(cost.shape)}")
    batch, rows, cols = cost.shape
    device = cost.device
    query_lengths = _lengths("query_lengths", query_lengths, batch, rows, device)
    reference_lengths = _lengths("reference_lengths", reference_lengths, batch, cols, device)

    if subsequence:
        zero = cost.new_zeros(batch, 1, cols)
        padded = torch.cat([zero, cost, zero], 1)
        # An item with fewer valid rows gets its closing zero row right after its last one.
        row = torch.arange(rows + 2, device=device)[None, :, None]
        padded = torch.where(row == (query_lengths + 1)[:, None, None], 0.0, padded)
        return _soft_dtw_full(padded, gamma, query_lengths + 2, reference_lengths)
    return _soft_dtw_full(cost, gamma, query_lengths, reference_lengths)


def _soft_dtw_full(cost: Tensor, gamma: float, query_lengths: Tensor, reference_lengths: Tensor) -> Tensor:
    """R[n_b - 1, N_b - 1] of the Soft-DTW recursion, by anti-diagonals (i + j = d), each a
    batched vector operation; R[-1, -1] = 0 and cells outside the matrix are far."""
    batch, rows, cols = cost.shape
    device = cost.device
    diagonals = rows + cols - 1
    row = torch.arange(rows, device=device)
    col = torch.arange(diagonals, device=device)[:, None] - row[None]  # (diagonals, n)
    inside = (col >= 0) & (col < cols)
    skewed = cost.gather(2, col.clamp(0, cols - 1).T[None].expand(batch, -1, -1)).transpose(1, 2)
    skewed = torch.where(inside[None], skewed, _FAR)  # (B, diagonals, n): C[i, d - i]

    far = cost.new_full((batch, 1), _FAR)
    zero = cost.new_zeros((batch, 1))
    previous2 = previous = far.expand(batch, rows)
    values = []
    for d in range(diagonals):
        candidates = torch.stack(
            [
                torch.cat([zero if d == 0 else far, previous2[:, :-1]], 1),  # R[i - 1, j - 1]
                torch.cat([far, previous[:, :-1]], 1),  # R[i - 1, j]
                previous,  # R[i, j - 1]
            ],
            -1,
        )
        current = skewed[:, d] - gamma * torch.logsumexp(-candidates / gamma, dim=-1)
        values.append(current)
        previous2, previous = previous, current
    table = torch.stack(values, 1)  # (B, diagonals, n): R[i, d - i]
    last_row = query_lengths - 1
    index = (last_row + reference_lengths - 1)[:, None, None]
    return table.gather(1, index.expand(-1, 1, rows))[:, 0].gather(1, last_row[:, None])[:, 0]


def soft_alignment(
    cost: Tensor,
    gamma: float = 1.0,
    subsequence: bool = False,
    query_lengths: Tensor | None = None,
    reference_lengths: Tensor | None = None,
) -> Tensor:
    """The soft alignment matrix A = d softDTW / dC (the expected DTW path), differentiable.

    Args: as :func:`soft_dtw`.

    Returns:
        A, shape (B, n, N), entries in [0, 1]; it tends to the DTW path's 0/1 matrix as
        gamma -> 0.
    """
    source = cost if cost.requires_grad else cost.detach().requires_grad_()
    with torch.enable_grad():
        value = soft_dtw(source, gamma, subsequence, query_lengths, reference_lengths)
        (alignment,) = torch.autograd.grad(value.sum(), source, create_graph=cost.requires_grad)
    return alignment


def _signal_cost(reference: Signal, query: Signal) -> Tensor:
    if not isinstance(reference, Signal) or not isinstance(query, Signal):
        raise ValueError("reference and query must be seqvpr.align.Signal objects")
    if reference.batch_size != query.batch_size or reference.dim != query.dim:
        raise ValueError(
            f"signals do not match: reference (B={reference.batch_size}, D={reference.dim}), "
            f"query (B={query.batch_size}, D={query.dim})"
        )
    return pairwise_sq_distances(query.values, reference.values)


def soft_dtw_loss(reference: Signal, query: Signal, gamma: float = 1.0, subsequence: bool = False) -> Tensor:
    """Soft-DTW discrepancy on squared Euclidean feature distances, shape (B,).

    Args:
        reference: B reference signals, values (B, N, D).
        query: B query signals, values (B, n, D).
        gamma: smoothing gamma > 0.
        subsequence: free start and end along the reference (see :func:`otam_loss`).
    """
    return soft_dtw(_signal_cost(reference, query), gamma, subsequence, query.lengths, reference.lengths)


def otam_loss(reference: Signal, query: Signal, gamma: float = 1.0) -> Tensor:
    """OTAM: Soft-DTW of the squared feature distances padded with a zero row before and after
    the query, so that the query may start and end anywhere along the reference, shape (B,).
    The same as ``soft_dtw_loss(reference, query, gamma, subsequence=True)``."""
    return soft_dtw_loss(reference, query, gamma, subsequence=True)


def dilate_loss(
    reference: Signal,
    query: Signal,
    penalty: Tensor,
    alpha: float = 0.5,
    gamma: float = 0.1,
    subsequence: bool = False,
) -> Tensor:
    """DILATE: alpha * Soft-DTW + (1 - alpha) * <soft alignment, penalty> / (n N), shape (B,).

    n and N are each item's valid query and reference lengths; with ``subsequence`` the shape
    term is the OTAM discrepancy and the soft alignment is that of the unpadded cost.

    Args:
        reference: B reference signals, values (B, N, D).
        query: B query signals, values (B, n, D).
        penalty: Omega[b, i, j], the penalty for matching query sample i to reference
            sample j (e.g. squared time or position error against the ground truth),
            shape (B, n, N).
        alpha: weight of the shape term, in [0, 1].
        gamma: smoothing gamma > 0.
        subsequence: free start and end along the reference.

    Raises:
        ValueError: if alpha is outside [0, 1], gamma <= 0 or the penalty's shape differs
            from (B, n, N).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    cost = _signal_cost(reference, query)
    if penalty.shape != cost.shape:
        raise ValueError(f"penalty must have shape {tuple(cost.shape)} (B, n, N), got {tuple(penalty.shape)}")
    lengths = (query.lengths, reference.lengths)
    shape = soft_dtw(cost, gamma, subsequence, *lengths)
    if alpha == 1.0:
        return shape
    alignment = soft_alignment(cost, gamma, subsequence, *lengths)
    size = (query.lengths * reference.lengths).to(alignment.dtype)
    temporal = (alignment * penalty.to(alignment.dtype)).sum((1, 2)) / size
    return alpha * shape + (1.0 - alpha) * temporal


def along_gt_loss(reference: Signal, query: Signal, target: Tensor, config: GDTWConfig | None = None) -> Tensor:
    """Along-GT: the GDTW objective f at the ground-truth warp, shape (B,).

    Args:
        reference: B reference signals.
        query: B query signals.
        target: ground-truth reference times at the knots, shape (B, m).
        config: the problem's options (knots, lambda, subsequence / e).
    """
    return gdtw_objective(reference, query, target, config or GDTWConfig())


def warp_error_loss(
    warp: Tensor,
    target: Tensor,
    lengths: Tensor | None = None,
    reduction: str = "max",
    penalty: str = "squared",
    huber_delta: float = 1.0,
) -> Tensor:
    """Error between a predicted and a ground-truth warp, per item.

    Args:
        warp: predicted values at the knots, shape (B, m) or (B, m, C) (e.g. positions,
            whose per-knot error is the Euclidean distance over C).
        target: ground truth, same shape.
        lengths: valid knots per item, shape (B,); default all m.
        reduction: ``"max"`` or ``"mean"`` over the valid knots.
        penalty: ``"squared"`` (e^2) or ``"huber"`` (e^2 / 2 below ``huber_delta``,
            delta (|e| - delta / 2) above).
        huber_delta: the Huber threshold, > 0.

    Returns:
        The loss, shape (B,).

    Raises:
        ValueError: on mismatched shapes or unknown options.
    """
    if warp.shape != target.shape or warp.dim() not in (2, 3):
        raise ValueError(
            f"warp and target must have the same shape (B, m) or (B, m, C), got {tuple(warp.shape)} "
            f"and {tuple(target.shape)}"
        )
    if reduction not in ("max", "mean"):
        raise ValueError(f"reduction must be 'max' or 'mean', got {reduction!r}")
    if penalty not in ("squared", "huber"):
        raise ValueError(f"penalty must be 'squared' or 'huber', got {penalty!r}")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be > 0, got {huber_delta!r}")
    batch, size = warp.shape[:2]
    lengths = _lengths("lengths", lengths, batch, size, warp.device)
    difference = warp - target.to(warp.dtype)
    squared = difference.square() if warp.dim() == 2 else difference.square().sum(-1)
    if penalty == "squared":
        error = squared
    else:
        # |e| from e^2 with a gradient that stays finite at e = 0.
        small = squared <= huber_delta**2
        magnitude = torch.sqrt(torch.where(small, huber_delta**2, squared))
        error = torch.where(small, 0.5 * squared, huber_delta * (magnitude - 0.5 * huber_delta))
    valid = torch.arange(size, device=warp.device)[None] < lengths[:, None]
    if reduction == "max":
        return torch.where(valid, error, -torch.inf).amax(1)
    return torch.where(valid, error, 0.0).sum(1) / lengths.to(error.dtype)
