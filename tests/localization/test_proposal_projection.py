"""The map's proposal index over descriptors projected onto their principal directions."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from seqvpr.errors import SeqvprError
from seqvpr.localization import MapConfig, MapPart, load_map, write_map

DIM = 64


def _part(rng, values):
    count = len(values)
    return MapPart("t", "x", np.arange(count, dtype=float), np.stack([np.arange(count, dtype=float),
                                                                     np.zeros(count)], axis=1),
                   np.zeros(count), values)


def test_the_projection_spans_the_principal_subspace_and_the_index_holds_the_projected_rows(tmp_path):
    rng = np.random.default_rng(0)
    subspace = np.linalg.qr(rng.normal(size=(DIM, 8)))[0]
    values = rng.normal(size=(500, 8)) * np.linspace(3, 1, 8) @ subspace.T + 0.02 * rng.normal(size=(500, DIM))
    written = write_map(tmp_path / "m", [_part(rng, values)], zone="30U", fingerprint="f", encoder={},
                        config=MapConfig(centre=False, proposal_dim=8))
    loaded = load_map(tmp_path / "m")
    assert yaml.safe_load((tmp_path / "m" / "map.yaml").read_text())["proposal_dim"] == 8
    projection = np.asarray(loaded.projection, dtype=np.float64)
    assert projection.shape == (DIM, 8)
    np.testing.assert_allclose(projection.T @ projection, np.eye(8), atol=1e-5)
    # Oracle: the top 8 right singular vectors of the stored rows (numpy SVD) span the same space.
    stored = np.asarray(loaded.descriptors, dtype=np.float64)
    top = np.linalg.svd(stored, full_matrices=False)[2][:8].T
    cosines = np.linalg.svd(top.T @ projection, compute_uv=False)  # cosines of the principal angles
    assert cosines.min() > 0.999
    # The index holds normalise(descriptor @ P): faiss top-1 is numpy's argmax over those.
    indexed = stored @ projection
    indexed /= np.linalg.norm(indexed, axis=1, keepdims=True)
    queries = stored[::7] + 0.05 * rng.normal(size=stored[::7].shape)
    vectors = loaded.proposal_vectors(queries)
    np.testing.assert_allclose(vectors, (queries @ projection) / np.linalg.norm(queries @ projection, axis=1,
                                                                               keepdims=True), atol=1e-5)
    assert loaded.index.search(vectors, k=1).indices[:, 0].tolist() == np.argmax(vectors @ indexed.T, axis=1).tolist()
    assert written.index.search(loaded.proposal_vectors(stored[[3, 250]]), k=1).indices[:, 0].tolist() == [3, 250]


def test_whole_descriptors_are_indexed_when_the_projection_would_not_shrink_them(tmp_path):
    rng = np.random.default_rng(1)
    for proposal_dim in (None, DIM, 4 * DIM):
        folder = tmp_path / f"m{proposal_dim}"
        written = write_map(folder, [_part(rng, rng.normal(size=(50, DIM)))], zone="30U", fingerprint="f",
                            encoder={}, config=MapConfig(proposal_dim=proposal_dim))
        assert written.projection is None and not (folder / "projection.npy").exists()
        assert yaml.safe_load((folder / "map.yaml").read_text())["proposal_dim"] is None
        np.testing.assert_array_equal(written.proposal_vectors(written.descriptors[:3]), written.descriptors[:3])


def test_a_short_map_gets_a_complete_orthonormal_basis(tmp_path):
    rng = np.random.default_rng(2)
    written = write_map(tmp_path / "m", [_part(rng, rng.normal(size=(10, DIM)))], zone="30U", fingerprint="f",
                        encoder={}, config=MapConfig(proposal_dim=16))
    projection = np.asarray(written.projection, dtype=np.float64)
    np.testing.assert_allclose(projection.T @ projection, np.eye(16), atol=1e-5)
    # Ten rows span at most ten directions, all inside the projection: nothing of them is lost.
    stored = np.asarray(written.descriptors, dtype=np.float64)
    np.testing.assert_allclose(np.linalg.norm(stored @ projection, axis=1), 1.0, atol=1e-5)


def test_a_map_without_its_projection_file_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(3)
    write_map(tmp_path / "m", [_part(rng, rng.normal(size=(40, DIM)))], zone="30U", fingerprint="f", encoder={},
              config=MapConfig(proposal_dim=8))
    (tmp_path / "m" / "projection.npy").unlink()
    with pytest.raises(SeqvprError, match=r"projection\.npy is missing"):
        load_map(tmp_path / "m")
    np.save(tmp_path / "m" / "projection.npy", np.zeros((DIM, 9), dtype=np.float32))
    with pytest.raises(SeqvprError, match=r"projection\.npy: shape \(64, 9\)"):
        load_map(tmp_path / "m")


def _exact_top(stored, queries, k):
    """Oracle: the k rows with the largest inner products, by a full numpy scan."""
    return np.argsort(-(queries @ stored.T), axis=1, kind="stable")[:, :k]


def test_neighbours_rank_the_shortlist_exactly_and_find_the_exact_top_k(tmp_path):
    rng = np.random.default_rng(4)
    subspace = np.linalg.qr(rng.normal(size=(DIM, 12)))[0]
    values = rng.normal(size=(600, 12)) @ subspace.T + 0.05 * rng.normal(size=(600, DIM))
    loaded = write_map(tmp_path / "m", [_part(rng, values)], zone="30U", fingerprint="f", encoder={},
                       config=MapConfig(centre=False, proposal_dim=12))
    stored = np.asarray(loaded.descriptors, dtype=np.float64)
    queries = (stored[::9] + 0.1 * rng.normal(size=stored[::9].shape)).astype(np.float32)
    found = loaded.neighbours(queries, k=5)
    assert found.shape == (len(queries), 5) and found.dtype == np.int64
    # Within what faiss shortlisted, the order is the exact one of the whole descriptors...
    shortlist = loaded.index.search(loaded.proposal_vectors(queries), 32).indices
    for query, rows, candidates in zip(queries, found, shortlist):
        exact = candidates[np.argsort(-(stored[candidates] @ query), kind="stable")[:5]]
        assert rows.tolist() == exact.tolist()
    # ...and where the descriptors' variance lives in the indexed directions, it is the
    # exact top 5 of a full scan.
    assert (found == _exact_top(stored, queries.astype(np.float64), 5)).all()


def test_the_rerank_recovers_neighbours_that_the_projection_alone_misses(tmp_path):
    # Unstructured descriptors: 8 of 64 directions keep little of them, so the projected
    # top 5 is often wrong, while the exact re-rank of a 32-row shortlist is right more often.
    rng = np.random.default_rng(5)
    loaded = write_map(tmp_path / "m", [_part(rng, rng.normal(size=(400, DIM)))], zone="30U", fingerprint="f",
                       encoder={}, config=MapConfig(centre=False, proposal_dim=8))
    stored = np.asarray(loaded.descriptors, dtype=np.float64)
    queries = (stored[::4] + 0.3 * rng.normal(size=stored[::4].shape) / np.sqrt(DIM)).astype(np.float32)
    truth = _exact_top(stored, queries.astype(np.float64), 5)
    projected_only = loaded.index.search(loaded.proposal_vectors(queries), 5).indices

    def recall(found):
        return np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, truth)])

    reranked = loaded.neighbours(queries, k=5)
    assert recall(reranked) > recall(projected_only) + 0.2
    assert (reranked[:, 0] == np.arange(0, 400, 4)).mean() > 0.9  # the query's own frame first


def test_neighbours_of_a_whole_descriptor_index_are_its_search(tmp_path):
    rng = np.random.default_rng(6)
    loaded = write_map(tmp_path / "m", [_part(rng, rng.normal(size=(80, DIM)))], zone="30U", fingerprint="f",
                       encoder={}, config=MapConfig(centre=False, proposal_dim=None))
    queries = rng.normal(size=(7, DIM)).astype(np.float32)
    assert (loaded.neighbours(queries, 4) == loaded.index.search(queries, 4).indices).all()
    assert (loaded.neighbours(queries, 4) == _exact_top(np.asarray(loaded.descriptors), queries, 4)).all()
