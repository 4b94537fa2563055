"""PCA-whitening of global descriptors, fitted by seqvpr.

Given training descriptors v_1..v_N ∈ R^D with mean μ, the sample covariance
Σ = (1/N) Σ_n (v_n − μ)(v_n − μ)ᵀ = U Λ Uᵀ (eigenvalues descending). Whitening to P dimensions
keeps the top P eigenpairs:

    y = L2normalise( Λ_P^{-1/2} U_Pᵀ (v − μ) ) = L2normalise( W v + b ),
    W = Λ_P^{-1/2} U_Pᵀ  (P, D),   b = −W μ  (P,)

which is exactly the layer Patch-NetVLAD (``WPCA``) and OpenIBL (``pca_layer``) ship: a 1×1
convolution on the (D, 1, 1) descriptor followed by L2 normalisation. When N < D (the usual
case: 32768-d descriptors, a few thousand training images) the eigenvectors come from the
N×N Gram matrix: if Xᵀ X u = λ u for the centred data X (D, N), then X u / ‖X u‖ is an
eigenvector of X Xᵀ with the same eigenvalue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PCAWhitening", "fit_pca_whitening"]


class PCAWhitening(nn.Module):
    """Affine projection followed by L2 normalisation: y = (W v + b) / ‖W v + b‖.

    Args:
        input_dim: D.
        output_dim: P.

    Attributes:
        weight: W, shape (P, D).
        bias: b, shape (P,).
    """

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(output_dim, input_dim))
        self.bias = nn.Parameter(torch.zeros(output_dim))

    @property
    def input_dim(self) -> int:
        return self.weight.shape[1]

    @property
    def output_dim(self) -> int:
        return self.weight.shape[0]

    def project(self, descriptors: torch.Tensor) -> torch.Tensor:
        """W v + b without the final normalisation, shape (B, D) → (B, P)."""
        return F.linear(descriptors, self.weight, self.bias)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """Whiten and L2-normalise.

        Args:
            descriptors: shape (B, D).

        Returns:
            shape (B, P), unit L2 norm per row.
        """
        if descriptors.ndim != 2 or descriptors.shape[1] != self.input_dim:
            raise ValueError(
                f"descriptors must have shape (B, {self.input_dim}), got {tuple(descriptors.shape)}"
            )
        return F.normalize(self.project(descriptors), p=2, dim=1)


@torch.no_grad()
def fit_pca_whitening(
    descriptors: torch.Tensor, output_dim: int = 4096, *, eps: float = 1e-9
) -> PCAWhitening:
    """Fit PCA-whitening on training descriptors (float64 internally).

    Args:
        descriptors: training descriptors, shape (N, D).
        output_dim: P ≤ min(N − 1, D) (the centred data has rank at most N − 1).
        eps: added to the eigenvalues before the inverse square root.

    Returns:
        A float32 :class:`PCAWhitening` with W = Λ^{-1/2} Uᵀ and b = −W μ, so that the
        whitened training descriptors W v + b have identity covariance.
    """
    descriptors = torch.as_tensor(descriptors)
    if descriptors.ndim != 2:
        raise ValueError(f"descriptors must have shape (N, D), got {tuple(descriptors.shape)}")
    count, dim = descriptors.shape
    if not 1 <= output_dim <= min(count - 1, dim):
        raise ValueError(
            f"output_dim must be in [1, min(N - 1, D)] = [1, {min(count - 1, dim)}] for "
            f"{count} descriptors of dimension {dim}, got {output_dim}"
        )
    data = descriptors.to(torch.float64)
    mean = data.mean(dim=0)
    centred = data - mean
    if count < dim:
        gram = centred @ centred.T / count  # (N, N), same non-zero eigenvalues as Σ
        eigenvalues, vectors = torch.linalg.eigh(gram)
        eigenvalues, vectors = eigenvalues.flip(0)[:output_dim], vectors.flip(1)[:, :output_dim]
        components = F.normalize(centred.T @ vectors, p=2, dim=0)  # (D, P)
    else:
        covariance = centred.T @ centred / count
        eigenvalues, vectors = torch.linalg.eigh(covariance)
        eigenvalues, components = eigenvalues.flip(0)[:output_dim], vectors.flip(1)[:, :output_dim]
    weight = components.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]
    layer = PCAWhitening(dim, output_dim)
    layer.weight.copy_(weight)
    layer.bias.copy_(-(weight @ mean))
    return layer
