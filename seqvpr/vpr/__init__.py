"""Visual place recognition: the NetVLAD-VGG16 encoder, its checkpoints, and retrieval.

- :mod:`seqvpr.vpr.encoder`: :class:`EncoderConfig`, :class:`NetVLADEncoder`, ImageNet weights.
- :mod:`seqvpr.vpr.netvlad`: the NetVLAD layer and its k-means initialisation.
- :mod:`seqvpr.vpr.pca`: PCA-whitening fitted on training descriptors.
- :mod:`seqvpr.vpr.vgg`: the VGG16 layer layout shared by the encoder and the weights readers.
- :mod:`seqvpr.vpr.weights`: seqvpr checkpoints, published and MATLAB NetVLAD weights, ImageNet VGG16.
- :mod:`seqvpr.vpr.localize`: localization of a query sequence on a reference (DTW, GDTW, independent).
- :mod:`seqvpr.vpr.retrieval`: faiss nearest-neighbour search over reference descriptors.

faiss and torchvision are imported where they are used, not by ``import seqvpr.vpr``.
"""

from seqvpr.vpr.encoder import PRESETS, EncoderConfig, NetVLADEncoder, image_to_tensor, images_to_tensor
from seqvpr.vpr.netvlad import ClusterInit, NetVLAD, initialize_clusters
from seqvpr.vpr.pca import PCAWhitening, fit_pca_whitening
from seqvpr.vpr.retrieval import IndexConfig, ReferenceIndex, SearchResult
from seqvpr.vpr.weights import (
    FAMILIES,
    CheckpointFamily,
    WeightsNotFoundError,
    load_encoder,
    load_imagenet_backbone,
    load_torchvision_backbone,
    read_published_checkpoint,
    save_encoder,
)

__all__ = [
    "EncoderConfig",
    "PRESETS",
    "NetVLADEncoder",
    "WeightsNotFoundError",
    "image_to_tensor",
    "images_to_tensor",
    "load_imagenet_backbone",
    "load_torchvision_backbone",
    "NetVLAD",
    "ClusterInit",
    "initialize_clusters",
    "PCAWhitening",
    "fit_pca_whitening",
    "CheckpointFamily",
    "FAMILIES",
    "save_encoder",
    "load_encoder",
    "read_published_checkpoint",
    "IndexConfig",
    "ReferenceIndex",
    "SearchResult",
]
