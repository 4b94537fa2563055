"""An independent, loop-based NetVLAD-VGG16 used as the oracle in the tests.

Written the way the published repositories write it (per-cluster residual loop, the
whitening as a 1×1 convolution on the (K·D, 1, 1) descriptor) and built from
``torchvision.models.vgg16().features`` rather than from seqvpr's encoder.
"""

import copy
import functools

import torch
import torch.nn.functional as F
import torchvision

LAST_CONV = {3: 14, 5: 28}


def vgg16_features(blocks: int, state: dict[str, torch.Tensor]) -> torch.nn.Sequential:
    """torchvision VGG16 features cut after the last conv of `blocks`, loaded from `state` ('N.weight')."""
    features = copy.deepcopy(_vgg16_features_template())
    cut = torch.nn.Sequential(*list(features.children())[: LAST_CONV[blocks] + 1])
    cut.load_state_dict(state, strict=True)
    return cut.eval()


@functools.cache
def _vgg16_features_template() -> torch.nn.Sequential:
    return torchvision.models.vgg16().features


@torch.no_grad()
def reference_descriptors(
    images, backbone, assignment_weight, centroids, *, pca_weight=None, pca_bias=None,
    channel_major=False, scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
):
    """Descriptors (B, K·D) or (B, P) computed straight from checkpoint tensors."""
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    features = backbone((images * scale - mean) / std)
    batch, channels = features.shape[:2]
    clusters = centroids.shape[0]
    local = F.normalize(features, p=2, dim=1)
    soft = F.softmax(F.conv2d(local, assignment_weight).view(batch, clusters, -1), dim=1)
    flat = local.view(batch, channels, -1)
    vlad = torch.zeros(batch, clusters, channels)
    for k in range(clusters):
        residual = flat - centroids[k].view(1, channels, 1)
        vlad[:, k] = (residual * soft[:, k : k + 1]).sum(dim=-1)
    vlad = F.normalize(vlad, p=2, dim=2)
    if channel_major:
        vlad = vlad.transpose(1, 2)
    vlad = F.normalize(vlad.reshape(batch, -1), p=2, dim=1)
    if pca_weight is None:
        return vlad
    if pca_weight.ndim == 2:
        pca_weight = pca_weight[:, :, None, None]
    whitened = F.conv2d(vlad[:, :, None, None], pca_weight, pca_bias).flatten(1)
    return F.normalize(whitened, p=2, dim=1)
