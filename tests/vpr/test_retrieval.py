import numpy as np
import pytest

from seqvpr.vpr import IndexConfig, ReferenceIndex


def _has_gpu():
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _normalised(count, dim, seed):
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _clustered_set(count=4000, dim=64, queries=200, seed=0):
    """References around 50 centres; queries are noisy copies of random references."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    references = centres[rng.integers(0, 50, count)] + 0.5 * rng.standard_normal((count, dim))
    references /= np.linalg.norm(references, axis=1, keepdims=True)
    chosen = rng.integers(0, count, queries)
    query = references[chosen] + 0.05 * rng.standard_normal((queries, dim))
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    return references.astype(np.float32), query.astype(np.float32)


def _brute_force(references, queries, k):
    scores = queries.astype(np.float64) @ references.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def test_exact_search_matches_numpy_brute_force():
    references, queries = _normalised(3000, 32, seed=0), _normalised(50, 32, seed=1)
    index = ReferenceIndex.build(references)
    result = index.search(queries, 10)
    expected_scores, expected_indices = _brute_force(references, queries, 10)
    np.testing.assert_array_equal(result.indices, expected_indices)
    np.testing.assert_allclose(result.scores, expected_scores, atol=1e-5)
    assert result.indices.dtype == np.int64 and result.scores.shape == (50, 10)


def test_fewer_references_than_k_pads_with_minus_one():
    index = ReferenceIndex.build(_normalised(3, 8, seed=0))
    result = index.search(_normalised(2, 8, seed=1), 5)
    assert (result.indices[:, 3:] == -1).all() and np.isneginf(result.scores[:, 3:]).all()
    assert sorted(result.indices[0, :3].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("kind, minimum_recall", [("ivf", 0.95), ("ivfpq", 0.8)])
def test_ivf_recall_at_10_against_exact(kind, minimum_recall):
    references, queries = _clustered_set()
    exact = _brute_force(references, queries, 1)[1][:, 0]
    index = ReferenceIndex.build(references, IndexConfig(kind=kind, nprobe=8, pq_subquantizers=16, pq_bits=6))
    found = index.search(queries, 10).indices
    recall = np.mean([truth in row for truth, row in zip(exact, found)])
    print(f"{kind} recall@10 = {recall:.3f} (nlist={index.config.nlist}, nprobe=8)")
    assert recall >= minimum_recall


def test_save_load_keeps_index_and_map(tmp_path):
    references = _normalised(500, 16, seed=0)
    times = np.arange(500) * 0.25
    positions = np.stack([np.arange(500.0), 2 * np.arange(500.0)], axis=1) + [620000.0, 5735000.0]
    index = ReferenceIndex.build(
        references, IndexConfig(kind="ivf", nlist=8), times=times, positions=positions, utm_zone="30U"
    )
    queries = _normalised(20, 16, seed=3)
    index.save(tmp_path / "map.npz")
    loaded = ReferenceIndex.load(tmp_path / "map.npz")
    assert loaded.config == index.config and loaded.num_references == 500 and loaded.utm_zone == "30U"
    np.testing.assert_array_equal(loaded.times, times)
    np.testing.assert_array_equal(loaded.positions, positions)
    np.testing.assert_array_equal(loaded.search(queries, 5).indices, index.search(queries, 5).indices)
    with np.load(tmp_path / "map.npz", allow_pickle=False) as archive:
        assert set(archive.files) == {"index", "metadata", "times", "positions"}


def test_streaming_build_equals_one_shot():
    references = _normalised(1000, 16, seed=0)
    streamed = ReferenceIndex.empty(16, IndexConfig(kind="ivfpq", nlist=4, pq_subquantizers=4))
    streamed.train(references, seed=0)
    for start in range(0, 1000, 300):
        streamed.add(references[start : start + 300], times=np.arange(start, min(start + 300, 1000)) * 1.0)
    one_shot = ReferenceIndex.build(references, IndexConfig(kind="ivfpq", nlist=4, pq_subquantizers=4))
    queries = _normalised(10, 16, seed=5)
    np.testing.assert_array_equal(streamed.search(queries, 3).indices, one_shot.search(queries, 3).indices)
    np.testing.assert_array_equal(streamed.times, np.arange(1000.0))


def test_bad_inputs_name_the_problem():
    index = ReferenceIndex.build(_normalised(10, 8, seed=0), times=np.arange(10.0))
    with pytest.raises(ValueError, match=r"queries must have shape \(n, 8\), got \(2, 7\)"):
        index.search(np.zeros((2, 7)), 1)
    with pytest.raises(ValueError, match="times were given for earlier references"):
        index.add(_normalised(2, 8, seed=1))
    with pytest.raises(ValueError, match=r"times must have shape \(2,\)"):
        index.add(_normalised(2, 8, seed=1), times=np.zeros(3))
    with pytest.raises(ValueError, match="must divide"):
        ReferenceIndex.empty(10, IndexConfig(kind="ivfpq", nlist=2, pq_subquantizers=4))
    with pytest.raises(ValueError, match="kind must be"):
        IndexConfig(kind="hnsw")


@pytest.mark.skipif(_has_gpu(), reason="faiss-gpu with a GPU is present")
def test_cuda_without_faiss_gpu_says_which_extra():
    with pytest.raises(ValueError, match=r"seqvpr\[gpu\]"):
        ReferenceIndex.empty(8, IndexConfig(device="cuda"))


@pytest.mark.skipif(not _has_gpu(), reason="needs faiss-gpu and a GPU")
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_gpu_index_matches_cpu_and_saves(tmp_path, kind):
    references, queries = _clustered_set(count=2000, queries=20)
    cpu = ReferenceIndex.build(references, IndexConfig(kind=kind, nlist=16, device="cpu"))
    gpu = ReferenceIndex.build(references, IndexConfig(kind=kind, nlist=16, device="cuda"))
    np.testing.assert_array_equal(gpu.search(queries, 1).indices, cpu.search(queries, 1).indices)
    gpu.save(tmp_path / "gpu.npz")
    reloaded = ReferenceIndex.load(tmp_path / "gpu.npz", device="cpu")
    np.testing.assert_array_equal(reloaded.search(queries, 1).indices, gpu.search(queries, 1).indices)
