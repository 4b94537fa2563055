"""NetVLAD aggregation (Arandjelović et al., CVPR 2016) and its k-means initialisation.

Given a dense feature map x ∈ R^{D×H×W} (conv5_3 of VGG16 for the paper's model), with
local descriptors x_i (one per location, L2-normalised over channels), NetVLAD computes

    a_k(x_i) = softmax_k(w_k · x_i)                    soft assignment (1×1 conv, no bias)
    V_k      = Σ_i a_k(x_i) (x_i − c_k)                residual to centroid c_k, k = 1..K
    V_k     ← V_k / ‖V_k‖                              intra-normalisation
    v        = flatten(V) / ‖flatten(V)‖               global L2, length K·D

Flatten order: ``"cluster_major"`` puts V[k, d] at k·D + d (every PyTorch release of
NetVLAD); ``"channel_major"`` puts it at d·K + k (the MATLAB original, as hloc reads it).

Initialisation (as Nanne's pytorch-NetVlad and the MATLAB code do it): centroids c = k-means
centres of L2-normalised training descriptors; assignment weights w_k = α · c_k / ‖c_k‖ with
α = −log(0.01) / mean_i(top1_i − top2_i), top1/top2 the two largest dot products of a
training descriptor with the normalised centres, so that on average the best cluster gets
100× the weight of the runner-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FlattenOrder", "NetVLAD", "ClusterInit", "initialize_clusters", "assignment_alpha"]

FlattenOrder = Literal["cluster_major", "channel_major"]
FLATTEN_ORDERS = ("cluster_major", "channel_major")


class NetVLAD(nn.Module):
    """NetVLAD pooling layer.

    Args:
        num_clusters: K, the number of centroids.
        dim: D, the channels of the input feature map.
        flatten_order: ``"cluster_major"`` (index k·D + d) or ``"channel_major"`` (d·K + k).

    Attributes:
        conv: the soft-assignment 1×1 convolution, weight shape (K, D, 1, 1), no bias.
        centroids: the cluster centres c, shape (K, D).
    """

    def __init__(
        self, num_clusters: int, dim: int, flatten_order: FlattenOrder = "cluster_major"
    ) -> None:
        super().__init__()
        if flatten_order not in FLATTEN_ORDERS:
            raise ValueError(f"flatten_order must be one of {FLATTEN_ORDERS}, got {flatten_order!r}")
        self.num_clusters = num_clusters
        self.dim = dim
        self.flatten_order = flatten_order
        self.conv = nn.Conv2d(dim, num_clusters, kernel_size=1, bias=False)
        self.centroids = nn.Parameter(torch.rand(num_clusters, dim))

    @property
    def output_dim(self) -> int:
        return self.num_clusters * self.dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Aggregate a feature map into one descriptor per image.

        Args:
            features: feature map, shape (B, D, H, W).

        Returns:
            L2-normalised VLAD descriptors, shape (B, K·D).
        """
        if features.ndim != 4 or features.shape[1] != self.dim:
            raise ValueError(
                f"features must have shape (B, {self.dim}, H, W), got {tuple(features.shape)}"
            )
        local = F.normalize(features, p=2, dim=1)
        assignment = self.conv(local).flatten(2).softmax(dim=1)  # (B, K, HW)
        local = local.flatten(2)  # (B, D, HW)
        # Σ_i a_k(x_i)(x_i − c_k) = Σ_i a_k(x_i) x_i − (Σ_i a_k(x_i)) c_k
        vlad = torch.bmm(assignment, local.transpose(1, 2))  # (B, K, D)
        vlad = vlad - assignment.sum(dim=2, keepdim=True) * self.centroids.unsqueeze(0)
        vlad = F.normalize(vlad, p=2, dim=2)
        if self.flatten_order == "channel_major":
            vlad = vlad.transpose(1, 2)
        return F.normalize(vlad.flatten(1), p=2, dim=1)

    @torch.no_grad()
    def set_clusters(self, init: ClusterInit) -> None:
        """Load centroids and α-scaled assignment weights from a :class:`ClusterInit`."""
        if init.centroids.shape != (self.num_clusters, self.dim):
            raise ValueError(
                f"centroids must have shape ({self.num_clusters}, {self.dim}), "
                f"got {tuple(init.centroids.shape)}"
            )
        centroids = torch.as_tensor(init.centroids, dtype=self.centroids.dtype)
        self.centroids.copy_(centroids)
        weight = init.alpha * F.normalize(centroids, p=2, dim=1)
        self.conv.weight.copy_(weight[:, :, None, None])


@dataclass(frozen=True)
class ClusterInit:
    """Result of :func:`initialize_clusters`.

    Attributes:
        centroids: k-means centres, shape (K, D), float32.
        alpha: scale of the assignment weights (dimensionless).
    """

    centroids: np.ndarray
    alpha: float


def assignment_alpha(descriptors: np.ndarray, centroids: np.ndarray) -> float:
    """α = −log(0.01) / mean(top1 − top2) of descriptor · normalised-centroid products.

    Args:
        descriptors: L2-normalised local descriptors, shape (N, D).
        centroids: cluster centres, shape (K, D), K ≥ 2.
    """
    directions = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    dots = descriptors @ directions.T  # (N, K)
    top2 = np.partition(dots, dots.shape[1] - 2, axis=1)[:, -2:]
    gap = float(np.mean(top2[:, 1] - top2[:, 0]))
    if not gap > 0:
        raise ValueError("the descriptors do not separate the clusters (top-2 gap is zero)")
    return -math.log(0.01) / gap


def initialize_clusters(
    descriptors: np.ndarray, num_clusters: int, *, iterations: int = 100, seed: int = 0
) -> ClusterInit:
    """Cluster L2-normalised local descriptors with faiss k-means and compute α.

    Args:
        descriptors: local descriptors, shape (N, D), N ≥ num_clusters; they are
            L2-normalised here (a copy) if they are not already.
        num_clusters: K.
        iterations: k-means iterations.
        seed: k-means seed (results are deterministic for a given seed and input).

    Returns:
        The centroids and α.
    """
    from seqvpr.vpr._faiss import import_faiss

    faiss = import_faiss()
    descriptors = np.asarray(descriptors, dtype=np.float32)
    if descriptors.ndim != 2 or descriptors.shape[0] < num_clusters or num_clusters < 2:
        raise ValueError(
            f"need descriptors of shape (N, D) with N >= num_clusters >= 2, got "
            f"{descriptors.shape} for num_clusters={num_clusters}"
        )
    norms = np.linalg.norm(descriptors, axis=1, keepdims=True)
    descriptors = np.ascontiguousarray(descriptors / np.maximum(norms, 1e-12))
    kmeans = faiss.Kmeans(
        descriptors.shape[1], num_clusters, niter=iterations, seed=seed, verbose=False,
        max_points_per_centroid=descriptors.shape[0],
    )
    kmeans.train(descriptors)
    centroids = np.asarray(kmeans.centroids, dtype=np.float32).copy()
    return ClusterInit(centroids=centroids, alpha=assignment_alpha(descriptors, centroids))
