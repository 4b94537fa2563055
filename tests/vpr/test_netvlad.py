import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqvpr.vpr import NetVLAD, initialize_clusters
from seqvpr.vpr.netvlad import ClusterInit, assignment_alpha


def _random_layer(order="cluster_major", clusters=5, dim=8):
    torch.manual_seed(3)
    layer = NetVLAD(clusters, dim, order)
    with torch.no_grad():
        layer.conv.weight.normal_()
        layer.centroids.normal_()
    return layer


def test_shape_and_unit_norms(device, dtype):
    layer = _random_layer().to(device, dtype)
    features = torch.randn(3, 8, 4, 6, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    descriptors = layer(features)
    assert descriptors.shape == (3, 40) and descriptors.dtype == dtype and descriptors.device.type == device.type
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(3, device=device, dtype=dtype))
    # intra-normalisation: each cluster block has the same norm 1/sqrt(K) before the global L2
    blocks = descriptors.view(3, 5, 8).norm(dim=2)
    torch.testing.assert_close(blocks, torch.full((3, 5), 1 / np.sqrt(5), device=device, dtype=dtype))


def test_gradcheck(gradcheck):
    layer = _random_layer(clusters=3, dim=4).double()
    features = torch.randn(2, 4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    features.requires_grad_(True)
    centroids = layer.centroids.detach().clone().requires_grad_(True)

    def descriptors(features, centroids):
        return torch.func.functional_call(layer, {"centroids": centroids, "conv.weight": layer.conv.weight},
                                          (features,))

    assert gradcheck(descriptors, features, centroids)
    with pytest.raises(TypeError, match="need float64"):
        gradcheck(descriptors, features.float().detach().requires_grad_(True), centroids)


@pytest.mark.parametrize("order", ["cluster_major", "channel_major"])
def test_matches_loop_oracle_and_flatten_order(order):
    layer = _random_layer(order)
    features = torch.randn(2, 8, 3, 5)
    # the per-cluster residual loop of the published implementations
    local = F.normalize(features, dim=1)
    soft = F.conv2d(local, layer.conv.weight).flatten(2).softmax(1)
    vlad = torch.stack(
        [((local.flatten(2) - layer.centroids[k].view(1, 8, 1)) * soft[:, k : k + 1]).sum(-1) for k in range(5)],
        dim=1,
    )
    vlad = F.normalize(vlad, dim=2)
    if order == "channel_major":
        vlad = vlad.transpose(1, 2)
    expected = F.normalize(vlad.reshape(2, -1), dim=1)
    torch.testing.assert_close(layer(features), expected, atol=1e-6, rtol=1e-5)
    # element [k, d] sits at k·D + d (cluster major) or d·K + k (channel major)
    normalised = F.normalize(vlad if order == "cluster_major" else vlad.transpose(1, 2), dim=2)
    k, d = 3, 6
    index = k * 8 + d if order == "cluster_major" else d * 5 + k
    ratio = layer(features)[:, index] / normalised[:, k, d]
    torch.testing.assert_close(ratio, torch.full((2,), ratio[0].item()))


def test_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        _random_layer()(torch.randn(1, 7, 2, 2))


def test_gradients_flow_to_assignment_and_centroids():
    layer = _random_layer()
    layer(torch.randn(2, 8, 3, 3)).sum().backward()
    assert layer.conv.weight.grad.abs().sum() > 0
    assert layer.centroids.grad.abs().sum() > 0


def _clustered(seed=0, clusters=4, dim=16, per_cluster=300, spread=0.05):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = np.repeat(centres, per_cluster, axis=0) + spread * rng.standard_normal((clusters * per_cluster, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), centres


def test_kmeans_init_recovers_clusters_and_documented_alpha():
    descriptors, centres = _clustered()
    init = initialize_clusters(descriptors, 4, seed=0)
    assert init.centroids.shape == (4, 16)
    # each true centre has a k-means centroid within the noise level
    directions = init.centroids / np.linalg.norm(init.centroids, axis=1, keepdims=True)
    assert (centres @ directions.T).max(axis=1).min() > 0.99
    # α = −log(0.01) / mean(top1 − top2), computed here by sorting
    dots = np.sort(descriptors @ directions.T, axis=1)
    expected_alpha = -np.log(0.01) / np.mean(dots[:, -1] - dots[:, -2])
    assert init.alpha == pytest.approx(expected_alpha, rel=1e-5)
    assert assignment_alpha(descriptors, init.centroids) == pytest.approx(expected_alpha, rel=1e-5)
    # deterministic for a seed
    again = initialize_clusters(descriptors, 4, seed=0)
    np.testing.assert_array_equal(again.centroids, init.centroids)


def test_set_clusters_writes_alpha_scaled_directions():
    layer = NetVLAD(2, 3)
    centroids = np.array([[3.0, 0.0, 4.0], [0.0, 2.0, 0.0]], dtype=np.float32)
    layer.set_clusters(ClusterInit(centroids=centroids, alpha=10.0))
    torch.testing.assert_close(layer.centroids.detach(), torch.from_numpy(centroids))
    expected = torch.tensor([[6.0, 0.0, 8.0], [0.0, 10.0, 0.0]])
    torch.testing.assert_close(layer.conv.weight.detach()[:, :, 0, 0], expected)
    with pytest.raises(ValueError, match="centroids must have shape"):
        layer.set_clusters(ClusterInit(centroids=centroids[:1], alpha=1.0))


def test_kmeans_init_rejects_too_few_descriptors():
    with pytest.raises(ValueError, match="num_clusters"):
        initialize_clusters(np.ones((3, 4), dtype=np.float32), 4)
