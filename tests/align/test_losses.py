"""Alignment losses: Soft-DTW / OTAM against a textbook double loop and against DTW as
gamma -> 0, DILATE, Along-GT and warp-error losses; float64 gradcheck for each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqvpr.align import GDTWConfig, Signal, dtw, gdtw_objective
from seqvpr.align.dtw import pairwise_sq_distances
from seqvpr.align.losses import (
    along_gt_loss,
    dilate_loss,
    otam_loss,
    soft_alignment,
    soft_dtw,
    soft_dtw_loss,
    warp_error_loss,
)

F64 = torch.float64


def _textbook_soft_dtw(cost: np.ndarray, gamma: float, subsequence: bool) -> float:
    """Cuturi & Blondel's recursion, one cell at a time; subsequence (OTAM): the same on the
    cost padded with a zero row above and below."""
    if subsequence:
        zero = np.zeros((1, cost.shape[1]))
        cost = np.concatenate([zero, cost, zero])
    rows, cols = cost.shape
    table = np.full((rows + 1, cols + 1), np.inf)
    table[0, 0] = 0.0

    def softmin(*values):
        values = np.array(values)
        low = values.min()
        if not np.isfinite(low):
            return np.inf
        return low - gamma * np.log(np.exp(-(values - low) / gamma).sum())

    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            table[i, j] = cost[i - 1, j - 1] + softmin(table[i - 1, j - 1], table[i - 1, j], table[i, j - 1])
    return table[rows, cols]


def _signals(seed: int = 0, batch: int = 2, rows: int = 5, cols: int = 8, dim: int = 3):
    gen = torch.Generator().manual_seed(seed)
    reference = Signal(
        torch.arange(cols, dtype=F64).expand(batch, -1).contiguous(),
        torch.randn(batch, cols, dim, dtype=F64, generator=gen).requires_grad_(),
    )
    query = Signal(
        torch.arange(rows, dtype=F64).expand(batch, -1).contiguous(),
        torch.randn(batch, rows, dim, dtype=F64, generator=gen).requires_grad_(),
    )
    return reference, query


# -------------------------------------------------------------------------------- Soft-DTW
@pytest.mark.parametrize("subsequence", [False, True])
def test_soft_dtw_matches_textbook_recursion(subsequence):
    cost = torch.rand(3, 4, 6, dtype=F64, generator=torch.Generator().manual_seed(1))
    values = soft_dtw(cost, gamma=0.5, subsequence=subsequence)
    assert values.shape == (3,)
    expected = [_textbook_soft_dtw(c.numpy(), 0.5, subsequence) for c in cost]
    torch.testing.assert_close(values, torch.tensor(expected, dtype=F64))


@pytest.mark.parametrize("subsequence", [False, True])
def test_soft_dtw_tends_to_dtw(subsequence):
    reference, query = _signals(seed=2)
    exact = dtw(reference, query, subsequence=subsequence).cost
    gaps = [float((soft_dtw_loss(reference, query, gamma, subsequence) - exact).detach().abs().max()) for gamma in (1.0, 0.1, 1e-3)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2


def test_soft_dtw_respects_lengths():
    reference, query = _signals(seed=3)
    lengths = (torch.tensor([5, 3]), torch.tensor([8, 6]))
    cost = pairwise_sq_distances(query.values, reference.values)
    for subsequence in (False, True):
        batched = soft_dtw(cost, 0.3, subsequence, *lengths)
        alone = soft_dtw(cost[1:, :3, :6], 0.3, subsequence)
        torch.testing.assert_close(batched[1:], alone)


def test_otam_is_subsequence_soft_dtw():
    reference, query = _signals(seed=4)
    torch.testing.assert_close(otam_loss(reference, query, 0.2), soft_dtw_loss(reference, query, 0.2, subsequence=True))
    # Free ends never cost more than a path forced through both corners.
    assert bool((otam_loss(reference, query, 0.2) <= soft_dtw_loss(reference, query, 0.2)).all())


@pytest.mark.parametrize("subsequence", [False, True])
def test_soft_dtw_gradcheck(subsequence):
    cost = torch.rand(2, 3, 5, dtype=F64, generator=torch.Generator().manual_seed(5)).requires_grad_()
    assert torch.autograd.gradcheck(lambda c: soft_dtw(c, 0.4, subsequence), (cost,))
    assert torch.autograd.gradgradcheck(lambda c: soft_dtw(c, 0.4, subsequence), (cost,))


def test_soft_dtw_loss_gradcheck_on_signals():
    reference, query = _signals(seed=6, rows=3, cols=4)

    def loss(ref_values, query_values):
        return soft_dtw_loss(Signal(reference.times, ref_values), Signal(query.times, query_values), 0.5)

    assert torch.autograd.gradcheck(loss, (reference.values, query.values))


def test_soft_alignment_tends_to_the_dtw_path():
    reference, query = _signals(seed=7)
    cost = pairwise_sq_distances(query.values, reference.values).detach()
    alignment = soft_alignment(cost, gamma=1e-3)
    for item, path in enumerate(dtw(reference, query).paths):
        hard = torch.zeros_like(alignment[item])
        hard[path[:, 0], path[:, 1]] = 1.0
        torch.testing.assert_close(alignment[item], hard, atol=1e-3, rtol=0)


# --------------------------------------------------------------------------------- DILATE
def test_dilate_with_alpha_one_is_soft_dtw():
    reference, query = _signals(seed=8)
    penalty = torch.rand(2, 5, 8, dtype=F64)
    torch.testing.assert_close(dilate_loss(reference, query, penalty, alpha=1.0, gamma=0.3),
                               soft_dtw_loss(reference, query, 0.3))


def test_dilate_temporal_term_is_the_penalty_along_the_soft_path():
    reference, query = _signals(seed=9)
    penalty = (torch.arange(5, dtype=F64)[:, None] - torch.arange(8, dtype=F64)[None] * 0.5).square().expand(2, -1, -1)
    cost = pairwise_sq_distances(query.values, reference.values)
    alignment = soft_alignment(cost.detach(), 0.3)
    expected = 0.25 * soft_dtw(cost, 0.3) + 0.75 * (alignment * penalty).sum((1, 2)) / (5 * 8)
    torch.testing.assert_close(dilate_loss(reference, query, penalty, alpha=0.25, gamma=0.3), expected)


def test_dilate_temporal_term_is_normalised_by_each_items_valid_size():
    reference, query = _signals(seed=9)
    reference = Signal(reference.times, reference.values, torch.tensor([8, 6]))
    query = Signal(query.times, query.values, torch.tensor([5, 3]))
    penalty = torch.rand(2, 5, 8, dtype=F64, generator=torch.Generator().manual_seed(3))
    batched = dilate_loss(reference, query, penalty, alpha=0.0, gamma=0.3, subsequence=True)
    alone = dilate_loss(
        Signal(reference.times[1:, :6], reference.values[1:, :6]), Signal(query.times[1:, :3], query.values[1:, :3]),
        penalty[1:, :3, :6], alpha=0.0, gamma=0.3, subsequence=True,
    )
    torch.testing.assert_close(batched[1:], alone)
    # A constant penalty c gives c times the soft path's total weight over n N.
    constant = dilate_loss(reference, query, torch.full((2, 5, 8), 2.0, dtype=F64), alpha=0.0, gamma=1e-3)
    path_cells = torch.tensor([len(p) for p in dtw(reference, query).paths], dtype=F64)
    torch.testing.assert_close(constant, 2.0 * path_cells / torch.tensor([40.0, 18.0], dtype=F64), atol=1e-3, rtol=0)


@pytest.mark.parametrize("subsequence", [False, True])
def test_dilate_gradcheck(subsequence):
    reference, query = _signals(seed=10, rows=3, cols=4)
    penalty = torch.rand(2, 3, 4, dtype=F64, generator=torch.Generator().manual_seed(0))

    def loss(ref_values, query_values):
        return dilate_loss(Signal(reference.times, ref_values), Signal(query.times, query_values), penalty,
                           alpha=0.3, gamma=0.5, subsequence=subsequence)

    assert torch.autograd.gradcheck(loss, (reference.values, query.values))


# ------------------------------------------------------------------------------- Along-GT
def test_along_gt_is_the_objective_at_the_true_warp():
    reference, query = _signals(seed=11)
    target = torch.linspace(1.0, 5.0, 5, dtype=F64).expand(2, -1)
    config = GDTWConfig(subsequence=True, lam=0.2)
    torch.testing.assert_close(along_gt_loss(reference, query, target, config),
                               gdtw_objective(reference, query, target, config))

    def loss(ref_values, query_values):
        return along_gt_loss(Signal(reference.times, ref_values), Signal(query.times, query_values), target, config)

    assert torch.autograd.gradcheck(loss, (reference.values, query.values))


# ----------------------------------------------------------------------------- warp error
def test_warp_error_known_values():
    warp = torch.tensor([[0.0, 1.0, 3.0], [1.0, 1.0, 9.0]], dtype=F64)
    target = torch.tensor([[0.0, 2.0, 1.0], [1.0, 1.5, 0.0]], dtype=F64)
    lengths = torch.tensor([3, 2])
    torch.testing.assert_close(warp_error_loss(warp, target, lengths, "max"), torch.tensor([4.0, 0.25], dtype=F64))
    torch.testing.assert_close(warp_error_loss(warp, target, lengths, "mean"), torch.tensor([5 / 3, 0.125], dtype=F64))
    huber = warp_error_loss(warp, target, lengths, "mean", "huber", huber_delta=1.0)
    torch.testing.assert_close(huber, torch.tensor([(0 + 0.5 + 1.5) / 3, 0.125 / 2], dtype=F64))
    positions = torch.zeros(1, 2, 2, dtype=F64)
    moved = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]], dtype=F64)
    torch.testing.assert_close(warp_error_loss(moved, positions, reduction="max"), torch.tensor([25.0], dtype=F64))


@pytest.mark.parametrize("reduction", ["max", "mean"])
@pytest.mark.parametrize("penalty", ["squared", "huber"])
def test_warp_error_gradcheck(reduction, penalty):
    gen = torch.Generator().manual_seed(12)
    warp = torch.randn(3, 4, dtype=F64, generator=gen).requires_grad_()
    target = torch.randn(3, 4, dtype=F64, generator=gen)
    assert torch.autograd.gradcheck(
        lambda w: warp_error_loss(w, target, torch.tensor([4, 3, 2]), reduction, penalty, huber_delta=0.7), (warp,)
    )


def test_huber_gradient_is_finite_at_zero_error():
    warp = torch.zeros(1, 3, 2, dtype=F64, requires_grad=True)
    warp_error_loss(warp, torch.zeros(1, 3, 2, dtype=F64), penalty="huber").sum().backward()
    assert bool(torch.isfinite(warp.grad).all())


# ------------------------------------------------------------------------------ bad input
def test_bad_input_raises():
    reference, query = _signals()
    cost = torch.rand(2, 5, 8)
    with pytest.raises(ValueError, match="gamma"):
        soft_dtw(cost, gamma=0.0)
    with pytest.raises(ValueError, match="cost"):
        soft_dtw(cost[0])
    with pytest.raises(ValueError, match="query_lengths"):
        soft_dtw(cost, query_lengths=torch.tensor([6, 2]))
    with pytest.raises(ValueError, match="alpha"):
        dilate_loss(reference, query, torch.rand(2, 5, 8, dtype=F64), alpha=1.5)
    with pytest.raises(ValueError, match="penalty"):
        dilate_loss(reference, query, torch.rand(2, 8, 5, dtype=F64))
    with pytest.raises(ValueError, match="reduction"):
        warp_error_loss(torch.zeros(2, 3), torch.zeros(2, 3), reduction="sum")
    with pytest.raises(ValueError, match="same shape"):
        warp_error_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="Signal"):
        soft_dtw_loss(reference.values, query)
