"""`exact_low_rank`: (m + 2)-d vectors with exactly the inner products GDTW reads from full descriptors."""

from __future__ import annotations

import numpy as np
import pytest

from seqvpr.localization import MapPart, write_map
from seqvpr.localization.proposal import _merged_runs, exact_low_rank


@pytest.fixture(scope="module")
def small_map(tmp_path_factory):
    rng = np.random.default_rng(3)
    frames = 400
    values = rng.normal(size=(frames, 64)) + np.linspace(0, 3, frames)[:, None]  # correlated neighbours
    part = MapPart("r", "x", np.arange(frames) * 0.5, np.zeros((frames, 2)), np.zeros(frames), values)
    return write_map(tmp_path_factory.mktemp("map") / "m", [part], zone="30U", fingerprint="f", encoder={})


# Overlapping, nested, adjacent, a few rows apart (joined), far apart (separate), a single row.
SLICES = [slice(100, 150), slice(120, 140), slice(150, 170), slice(180, 200), slice(300, 340), slice(5, 6),
          slice(130, 190)]


@pytest.mark.parametrize("rank", [10, 3])
def test_inner_products_equal_the_full_descriptors(small_map, rank):
    rng = np.random.default_rng(rank)
    basis = rng.normal(size=(rank, 64))
    query = rng.normal(size=(10, rank)) @ basis  # rank-deficient when rank < 10
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    query_coordinates, windows = exact_low_rank(small_map, SLICES, query.astype(np.float32))
    full = np.asarray(small_map.descriptors, dtype=np.float64)
    assert query_coordinates.shape[1] == min(rank, 10) + 2
    np.testing.assert_allclose(query_coordinates @ query_coordinates.T, query @ query.T, atol=1e-5)
    for rows, values in zip(SLICES, windows):
        reference = full[rows]
        assert values.shape == (rows.stop - rows.start, query_coordinates.shape[1])
        np.testing.assert_allclose(query_coordinates @ values.T, query @ reference.T, atol=1e-5)
        np.testing.assert_allclose(np.einsum("kd,kd->k", values, values), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.einsum("kd,kd->k", values[:-1], values[1:]),
                                   np.einsum("kd,kd->k", reference[:-1], reference[1:]), atol=1e-5)


def test_runs_cover_every_row_once_and_join_small_gaps():
    runs = _merged_runs(SLICES, gap=32)
    assert runs == [slice(5, 6), slice(100, 200), slice(300, 340)]
    covered = np.concatenate([np.arange(r.start, r.stop) for r in runs])
    assert len(covered) == len(np.unique(covered))
    assert set(np.concatenate([np.arange(s.start, s.stop) for s in SLICES])) <= set(covered)
    assert _merged_runs(SLICES, gap=0) == [slice(5, 6), slice(100, 200), slice(300, 340)]
    assert _merged_runs([slice(0, 10), slice(12, 20)], gap=1) == [slice(0, 10), slice(12, 20)]
    assert _merged_runs([slice(0, 10), slice(12, 20)], gap=2) == [slice(0, 20)]
