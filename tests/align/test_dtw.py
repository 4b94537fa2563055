"""Classic DTW against a textbook DP and tslearn."""

import math

import numpy as np
import pytest
import torch
from helpers import random_signal_pair

from seqvpr.align import Signal, dtw


def textbook_dtw(query, reference, subsequence):
    n, count = len(query), len(reference)
    cost = [[float(((q - r) ** 2).sum()) for r in reference] for q in query]
    acc = [[math.inf] * count for _ in range(n)]
    for i in range(n):
        for j in range(count):
            if i == 0 and (subsequence or j == 0):
                acc[i][j] = cost[i][j]
                continue
            best = min(
                acc[i - 1][j - 1] if i and j else math.inf,
                acc[i - 1][j] if i else math.inf,
                acc[i][j - 1] if j else math.inf,
            )
            acc[i][j] = cost[i][j] + best
    return min(acc[-1]) if subsequence else acc[-1][-1]


def path_cost(query, reference, path):
    return float(sum(((query[i] - reference[j]) ** 2).sum() for i, j in path))


@pytest.mark.parametrize("subsequence", [False, True])
def test_matches_textbook_dp(subsequence):
    rng = np.random.default_rng(subsequence)
    for _ in range(20):
        reference, query = random_signal_pair(rng, batch=3, reference_length=int(rng.integers(2, 15)),
                                              query_length=int(rng.integers(2, 10)), smooth=False)
        result = dtw(reference, query, subsequence=subsequence)
        for b in range(3):
            q, r = query.values[b].numpy(), reference.values[b].numpy()
            expected = textbook_dtw(q, r, subsequence)
            assert float(result.cost[b]) == pytest.approx(expected, rel=1e-12)
            path = result.paths[b]
            assert path_cost(q, r, path) == pytest.approx(expected, rel=1e-12)
            steps = np.diff(path, axis=0)
            assert set(map(tuple, steps)) <= {(1, 0), (0, 1), (1, 1)}
            assert path[0, 0] == 0 and path[-1, 0] == len(q) - 1
            if not subsequence:
                assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (len(q) - 1, len(r) - 1)


def test_matches_tslearn():
    tslearn_metrics = pytest.importorskip("tslearn.metrics")
    rng = np.random.default_rng(42)
    for _ in range(10):
        reference, query = random_signal_pair(rng, batch=1, reference_length=int(rng.integers(5, 30)),
                                              query_length=int(rng.integers(3, 12)), smooth=False)
        q, r = query.values[0].numpy(), reference.values[0].numpy()
        full = dtw(reference, query)
        path, distance = tslearn_metrics.dtw_path(q, r)
        assert float(full.cost[0]) == pytest.approx(distance**2, rel=1e-10)
        assert [tuple(p) for p in full.paths[0]] == [tuple(p) for p in path]
        sub = dtw(reference, query, subsequence=True)
        path, distance = tslearn_metrics.dtw_subsequence_path(q, r)
        assert float(sub.cost[0]) == pytest.approx(distance**2, rel=1e-10)
        assert path_cost(q, r, path) == pytest.approx(float(sub.cost[0]), rel=1e-10)


def test_warp_is_mean_matched_reference_time():
    reference = Signal(torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([[0.0], [1.0], [1.0], [5.0]]))
    query = Signal(torch.tensor([10.0, 11.0, 12.0]), torch.tensor([[0.0], [1.0], [5.0]]))
    result = dtw(reference, query)
    assert [tuple(p) for p in result.paths[0]] == [(0, 0), (1, 1), (1, 2), (2, 3)]
    assert result.warp[0].tolist() == [0.0, 1.5, 3.0]
    assert float(result.cost[0]) == 0.0


def test_shifted_copy_is_found_by_subsequence_dtw():
    rng = np.random.default_rng(1)
    reference, _ = random_signal_pair(rng, batch=2, reference_length=25, dim=8, smooth=False)
    query = Signal(reference.times[:, 5:15] + 50.0, reference.values[:, 5:15])
    result = dtw(reference, query, subsequence=True)
    torch.testing.assert_close(result.warp, reference.times[:, 5:15])
    assert float(result.cost.abs().max()) < 1e-9


def test_variable_lengths():
    rng = np.random.default_rng(2)
    pairs = [random_signal_pair(rng, reference_length=n, query_length=k) for n, k in [(9, 4), (5, 7)]]
    reference = Signal.from_sequences([(r.times[0], r.values[0]) for r, _ in pairs])
    query = Signal.from_sequences([(q.times[0], q.values[0]) for _, q in pairs])
    batched = dtw(reference, query)
    for index, (item_reference, item_query) in enumerate(pairs):
        single = dtw(item_reference, item_query)
        assert float(batched.cost[index]) == pytest.approx(float(single.cost[0]))
        np.testing.assert_array_equal(batched.paths[index], single.paths[0])


def test_mismatched_dims_raise():
    rng = np.random.default_rng(0)
    reference, _ = random_signal_pair(rng, dim=3)
    _, query = random_signal_pair(rng, dim=5)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        dtw(reference, query)
