"""Weights files for the NetVLAD-VGG16 encoder.

- :mod:`seqvpr.vpr.weights.checkpoint`: the seqvpr checkpoint format, :func:`save_encoder`
  and :func:`load_encoder`, the one loader for every file below.
- :mod:`seqvpr.vpr.weights.published`: published checkpoint families (pytorch-NetVlad,
  Patch-NetVLAD, gmberton/DecDTW, DecDTW Lightning, OpenIBL), detected from their keys.
- :mod:`seqvpr.vpr.weights.matlab`: the MATLAB NetVLAD release as a struct ``.mat``.
- :mod:`seqvpr.vpr.weights.imagenet`: torchvision's ImageNet VGG16 for the backbone.

Every reader returns ``(EncoderConfig, state_dict)``; the VGG16 layer indices come from
:mod:`seqvpr.vpr.vgg`.
"""

from seqvpr.vpr.weights.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    encoder_checkpoint,
    encoder_from_weights,
    load_encoder,
    read_seqvpr_checkpoint,
    safe_torch_load,
    save_encoder,
)
from seqvpr.vpr.weights.imagenet import (
    IMAGENET_VGG16_URL,
    WeightsNotFoundError,
    load_imagenet_backbone,
    load_torchvision_backbone,
)
from seqvpr.vpr.weights.matlab import read_matlab_netvlad
from seqvpr.vpr.weights.published import FAMILIES, CheckpointFamily, read_published_checkpoint

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "encoder_checkpoint",
    "save_encoder",
    "load_encoder",
    "encoder_from_weights",
    "read_seqvpr_checkpoint",
    "safe_torch_load",
    "FAMILIES",
    "CheckpointFamily",
    "read_published_checkpoint",
    "read_matlab_netvlad",
    "IMAGENET_VGG16_URL",
    "WeightsNotFoundError",
    "load_imagenet_backbone",
    "load_torchvision_backbone",
]
