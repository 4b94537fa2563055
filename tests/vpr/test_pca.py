import pytest
import torch

from seqvpr.vpr import PCAWhitening, fit_pca_whitening


def _training(count, dim, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return torch.randn(count, dim, generator=generator, dtype=torch.float64) @ mixing + 3.0


@pytest.mark.parametrize("count, dim", [(200, 12), (10, 40)])  # covariance path, Gram path
def test_whitened_training_set_has_identity_covariance(count, dim):
    data = _training(count, dim)
    rank = min(count - 1, dim)
    layer = fit_pca_whitening(data, rank)
    assert isinstance(layer, PCAWhitening) and layer.weight.shape == (rank, dim)
    whitened = layer.project(data.float()).double()
    torch.testing.assert_close(whitened.mean(0), torch.zeros(rank, dtype=torch.float64), atol=1e-3, rtol=0)
    covariance = whitened.T @ whitened / count
    torch.testing.assert_close(covariance, torch.eye(rank, dtype=torch.float64), atol=2e-3, rtol=0)


def test_round_trip_reconstructs_centred_data():
    data = _training(100, 8)
    layer = fit_pca_whitening(data, 8)
    # W = Λ^{-1/2} Uᵀ with U orthogonal: at full rank W⁻¹ (W v + b) = v − μ
    whitened = layer.project(data.float()).double()
    reconstructed = torch.linalg.solve(layer.weight.double(), whitened.T).T
    torch.testing.assert_close(reconstructed, data - data.mean(0), atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("count, dim", [(30, 20), (12, 20)])  # covariance path, Gram path
def test_components_match_svd_of_centred_data(count, dim):
    data = _training(count, dim)
    layer = fit_pca_whitening(data, 5)
    _, singular, vt = torch.linalg.svd(data - data.mean(0), full_matrices=False)
    expected = vt[:5] / (singular[:5, None] / count**0.5)  # Λ^{-1/2} Uᵀ, λ = s² / N
    signs = torch.sign((layer.weight.double() * expected).sum(1, keepdim=True))
    torch.testing.assert_close(layer.weight.double() * signs, expected, atol=1e-4, rtol=1e-4)


def test_output_is_unit_norm_and_shape_checked():
    layer = fit_pca_whitening(_training(50, 10), 4)
    out = layer(torch.randn(3, 10))
    assert out.shape == (3, 4)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match=r"\(B, 10\)"):
        layer(torch.randn(3, 9))
    with pytest.raises(ValueError, match="output_dim"):
        fit_pca_whitening(_training(5, 10), 5)
