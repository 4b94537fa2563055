import torch

from seqvpr.align import GDTWConfig, gdtw
from seqvpr.align.synthetic import warped_pair


def test_noise_free_pair_is_recovered_by_gdtw():
    reference, query, true_warp = warped_pair(seed=3, batch=3, noise=0.0, dtype=torch.float64)
    assert query.values.shape == (3, 20, 16) and true_warp.shape == (3, 20)
    assert bool((true_warp >= reference.start[:, None]).all() and (true_warp <= reference.end[:, None]).all())
    # Query values are the reference's continuous function at the true warp; the reference
    # samples it every second, so its linear interpolation is close but not exact.
    interpolated = reference.at(true_warp)
    assert float((interpolated - query.values).abs().max()) < 0.3
    result = gdtw(reference, query, GDTWConfig(subsequence=True, lam=0.01))
    assert float((result.warp - true_warp).abs().mean()) < 0.1


def test_same_seed_same_pair():
    first = warped_pair(seed=7)
    second = warped_pair(seed=7)
    assert torch.equal(first[1].values, second[1].values) and torch.equal(first[2], second[2])
    assert not torch.equal(first[2], warped_pair(seed=8)[2])
