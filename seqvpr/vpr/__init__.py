"""Visual place recognition: the NetVLAD-VGG16 encoder, its checkpoints, and retrieval.

- :mod:`seqvpr.vpr.encoder`: :class:`EncoderConfig`, :class:`NetVLADEncoder`, ImageNet weights.
- :mod:`seqvpr.vpr.netvlad`: the NetVLAD layer and its k-means initialisation.
- :mod:`seqvpr.vpr.pca`: PCA-whitening fitted on training descriptors.
- :mod:`seqvpr.vpr.checkpoints`: the seqvpr checkpoint format and published-checkpoint import.
- :mod:`seqvpr.vpr.matlab`: import of the MATLAB NetVLAD release (struct ``.mat``).
- :mod:`seqvpr.vpr.retrieval`: faiss nearest-neighbour search over reference descriptors.

faiss and torchvision are imported where they are used, not by ``import seqvpr.vpr``.
"""

from seqvpr.vpr.checkpoints import FAMILIES, CheckpointFamily, import_checkpoint, load_encoder, save_encoder
from seqvpr.vpr.encoder import (
    PRESETS,
    EncoderConfig,
    NetVLADEncoder,
    WeightsNotFoundError,
    images_to_tensor,
    load_imagenet_backbone,
    load_torchvision_backbone,
)
from seqvpr.vpr.netvlad import ClusterInit, NetVLAD, initialize_clusters
from seqvpr.vpr.pca import PCAWhitening, fit_pca_whitening
from seqvpr.vpr.retrieval import IndexConfig, ReferenceIndex, SearchResult

__all__ = [
    "EncoderConfig",
    "PRESETS",
    "NetVLADEncoder",
    "WeightsNotFoundError",
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
    "import_checkpoint",
    "IndexConfig",
    "ReferenceIndex",
    "SearchResult",
]
