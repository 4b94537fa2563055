"""Classic and subsequence DTW on :class:`~seqvpr.align.Signal` batches (the paper's Base (D)).

For a query of n samples and a reference of N samples with local cost
C[i, j] = ||Q_i - R_j||^2, DTW finds the monotone, continuous path of cells from (0, 0) to
(n - 1, N - 1) with steps (1, 0), (0, 1), (1, 1) minimising the summed cost:

    D[i, j] = C[i, j] + min(D[i-1, j-1], D[i-1, j], D[i, j-1]).

Subsequence DTW lets the path start and end anywhere along the reference
(D[0, j] = C[0, j], cost = min_j D[n-1, j]). The local costs come from one batched matrix
product on the signals' device; the recursion and backtracking run on the CPU (numba),
one thread per pair. The warp is read out at the query samples as the mean reference time
of the cells the path matches to each query sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from seqvpr.align._dp import PARALLEL_WORK
from seqvpr.align.signal import Signal

__all__ = ["DTWResult", "dtw", "pairwise_sq_distances"]


@dataclass(frozen=True)
class DTWResult:
    """Solution of a batch of DTW problems.

    Attributes:
        cost: summed local cost along the optimal path, shape (B,), float64.
        paths: per item, the path as an int64 array (L, 2) of (query index,
            reference index) pairs, in order.
        warp: reference time matched to each query sample, shape (B, n), float64;
            padding repeats the last valid value.
        lengths: valid query samples per item, shape (B,).
    """

    cost: Tensor
    paths: list[np.ndarray]
    warp: Tensor
    lengths: Tensor


def pairwise_sq_distances(query: Tensor, reference: Tensor) -> Tensor:
    """||q_i - r_j||^2 for all pairs, shape (B, n, N), from inner products (clamped at 0)."""
    cross = torch.bmm(query, reference.transpose(1, 2))
    return (query.square().sum(-1)[..., None] + reference.square().sum(-1)[:, None] - 2 * cross).clamp(min=0)


@njit(cache=True)
def _accumulate(cost, n, count, subsequence):
    acc = np.full((n, count), np.inf)
    for j in range(count):
        if subsequence or j == 0:
            acc[0, j] = cost[0, j]
        else:
            acc[0, j] = cost[0, j] + acc[0, j - 1]
    for i in range(1, n):
        acc[i, 0] = cost[i, 0] + acc[i - 1, 0]
        for j in range(1, count):
            acc[i, j] = cost[i, j] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return acc


@njit(cache=True)
def _backtrack(acc, n, count, subsequence):
    j = np.argmin(acc[n - 1, :count]) if subsequence else count - 1
    i = n - 1
    path = np.empty((n + count, 2), dtype=np.int64)
    size = 0
    while True:
        path[size, 0] = i
        path[size, 1] = j
        size += 1
        if i == 0 and (subsequence or j == 0):
            break
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diagonal, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            if diagonal <= up and diagonal <= left:
                i, j = i - 1, j - 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
    return path[:size][::-1].copy()


def _solve_py(cost, reference_times, query_lengths, reference_lengths, subsequence, totals,
              path_store, path_sizes, warp):
    for b in prange(cost.shape[0]):
        n, count = query_lengths[b], reference_lengths[b]
        acc = _accumulate(cost[b], n, count, subsequence)
        path = _backtrack(acc, n, count, subsequence)
        totals[b] = acc[n - 1, path[-1, 1]]
        path_sizes[b] = path.shape[0]
        path_store[b, : path.shape[0]] = path
        # Warp at each query sample: mean time of the reference samples matched to it.
        matches = np.zeros(n)
        warp[b, :] = 0.0
        for step in range(path.shape[0]):
            warp[b, path[step, 0]] += reference_times[b, path[step, 1]]
            matches[path[step, 0]] += 1.0
        warp[b, :n] /= matches
        warp[b, n:] = warp[b, n - 1]


_solve_parallel = njit(cache=True, parallel=True)(_solve_py)
_solve_serial = njit(cache=True)(_solve_py)


def dtw(reference: Signal, query: Signal, subsequence: bool = False) -> DTWResult:
    """Aligns query samples to reference samples with classic DTW.

    Args:
        reference: B reference signals, values (B, N, D).
        query: B query signals, values (B, n, D).
        subsequence: let the query match any contiguous part of the reference.

    Returns:
        A :class:`DTWResult`.

    Raises:
        ValueError: on mismatched batch sizes, feature dimensions or devices.
    """
    from seqvpr.align.gdtw import _check_pair

    _check_pair(reference, query)
    with torch.no_grad():
        cost = pairwise_sq_distances(query.values, reference.values).double().cpu().numpy()
    query_lengths = query.lengths.cpu().numpy()
    reference_lengths = reference.lengths.cpu().numpy()
    batch = reference.batch_size
    totals = np.empty(batch)
    path_store = np.zeros((batch, query.max_length + reference.max_length, 2), dtype=np.int64)
    path_sizes = np.zeros(batch, dtype=np.int64)
    work = int((query_lengths * reference_lengths).sum())
    solve = _solve_parallel if batch > 1 and work >= PARALLEL_WORK else _solve_serial
    reference_times = reference.times.detach().to("cpu", torch.float64).numpy()
    warp = np.empty((batch, query.max_length))
    solve(cost, reference_times, query_lengths, reference_lengths, subsequence, totals, path_store,
          path_sizes, warp)
    return DTWResult(
        cost=torch.from_numpy(totals).to(device=query.device),
        paths=[path_store[b, : path_sizes[b]] for b in range(batch)],
        warp=torch.from_numpy(warp).to(device=query.device),
        lengths=query.lengths,
    )
