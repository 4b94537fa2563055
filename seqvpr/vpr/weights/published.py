"""Published NetVLAD-VGG16 checkpoints: the families seqvpr recognises and their key layouts.

A family is recognised by its exact state-dict key set after a leading ``module.``
(DataParallel) on every key is stripped; all use flatten order k·D + d and ImageNet input
statistics; the VGG16 layers keep torchvision's ``features`` indices (:mod:`seqvpr.vpr.vgg`):

- ``pytorch-netvlad`` (Nanne): ``state_dict`` → ``encoder.N.*``, ``pool.conv.weight``,
  ``pool.centroids``.
- ``patch-netvlad``: the same plus ``WPCA.0.weight`` (P, K·D, 1, 1) and ``WPCA.0.bias`` (P,).
- ``gmberton`` (deep-visual-geo-localization-benchmark; the DecDTW authors' base model):
  ``model_state_dict`` → ``module.backbone.N.*``, ``module.aggregation.{conv.weight,centroids}``.
- ``decdtw-lightning``: ``state_dict`` → ``model.module.backbone.N.*``,
  ``model.module.aggregation.*``.
- ``openibl`` / ``openibl-pca``: ``state_dict`` → ``base_model.base.N.*``, ``net_vlad.*``
  and, when whitened, ``pca_layer.weight`` (P, K·D, 1, 1), ``pca_layer.bias`` (P,).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from seqvpr.errors import SeqvprError
from seqvpr.vpr.encoder import EncoderConfig
from seqvpr.vpr.vgg import LAST_CONV_OF_BLOCK, conv_indices

__all__ = ["CheckpointFamily", "FAMILIES", "read_published_checkpoint"]


@dataclass(frozen=True)
class CheckpointFamily:
    """Key layout of one published NetVLAD-VGG16 checkpoint family.

    Attributes:
        name: short name used in logs and errors.
        container: top-level key holding the state dict.
        backbone_prefix: prefix of the VGG16 ``features`` layers (torchvision indices).
        netvlad_prefix: prefix of ``conv.weight`` (K, D, 1, 1) and ``centroids`` (K, D).
        pca_prefix: prefix of the whitening conv ``weight`` (P, K·D, 1, 1) and ``bias``
            (P,), or None if the family has none.
    """

    name: str
    container: str
    backbone_prefix: str
    netvlad_prefix: str
    pca_prefix: str | None = None

    def expected_keys(self, blocks: int) -> set[str]:
        keys = {f"{self.backbone_prefix}{i}.{p}" for i in conv_indices(blocks) for p in ("weight", "bias")}
        keys |= {f"{self.netvlad_prefix}conv.weight", f"{self.netvlad_prefix}centroids"}
        if self.pca_prefix is not None:
            keys |= {f"{self.pca_prefix}weight", f"{self.pca_prefix}bias"}
        return keys


FAMILIES: tuple[CheckpointFamily, ...] = (
    CheckpointFamily("pytorch-netvlad", "state_dict", "encoder.", "pool."),
    CheckpointFamily("patch-netvlad", "state_dict", "encoder.", "pool.", "WPCA.0."),
    CheckpointFamily("gmberton", "model_state_dict", "backbone.", "aggregation."),
    CheckpointFamily("decdtw-lightning", "state_dict", "model.module.backbone.", "model.module.aggregation."),
    CheckpointFamily("openibl", "state_dict", "base_model.base.", "net_vlad."),
    CheckpointFamily("openibl-pca", "state_dict", "base_model.base.", "net_vlad.", "pca_layer."),
)


def read_published_checkpoint(
    checkpoint: Any, *, source: str = "checkpoint", image_width: int = 240, image_height: int = 180
) -> tuple[EncoderConfig, dict[str, torch.Tensor], CheckpointFamily]:
    """The encoder config and state dict of a published checkpoint's contents.

    Args:
        checkpoint: the object ``torch.load`` returned (a dict with a state dict under the
            family's container key).
        source: name used in error messages (the file).
        image_width: input width for the config (published checkpoints record none).
        image_height: input height for the config.

    Returns:
        The config, the state dict in :class:`~seqvpr.vpr.encoder.NetVLADEncoder` keys,
        and the family that matched.

    Raises:
        SeqvprError: no family matches; lists the missing and unexpected keys of the closest.
    """
    if not isinstance(checkpoint, Mapping):
        raise SeqvprError(f"{source}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    best: tuple[int, CheckpointFamily, list[str], list[str]] | None = None
    for family in FAMILIES:
        state = checkpoint.get(family.container)
        if not isinstance(state, Mapping):
            continue
        state = _strip_data_parallel(state)
        blocks = _backbone_blocks(state, family.backbone_prefix)
        expected = family.expected_keys(blocks)
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if not missing and not unexpected:
            config, converted = _convert(state, family, blocks, source, image_width, image_height)
            return config, converted, family
        mismatch = len(missing) + len(unexpected)
        if best is None or mismatch < best[0]:
            best = (mismatch, family, missing, unexpected)
    if best is None:
        containers = sorted({f.container for f in FAMILIES})
        raise SeqvprError(
            f"{source}: not a NetVLAD checkpoint seqvpr knows: no state dict under any of "
            f"{containers}; top-level keys are {sorted(map(str, checkpoint))}"
        )
    _, family, missing, unexpected = best
    raise SeqvprError(
        f"{source}: matches no known checkpoint family ({', '.join(f.name for f in FAMILIES)}). "
        f"Closest is {family.name}: missing keys {missing}; unexpected keys {unexpected}"
    )


def _strip_data_parallel(state: Mapping[str, Any]) -> dict[str, Any]:
    if state and all(str(key).startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


def _backbone_blocks(state: Mapping[str, Any], prefix: str) -> int:
    indices = []
    for key in state:
        if key.startswith(prefix) and key.endswith(".weight"):
            index = key[len(prefix): -len(".weight")]
            if index.isdigit():
                indices.append(int(index))
    last = max(indices, default=-1)
    blocks = [b for b, conv in LAST_CONV_OF_BLOCK.items() if conv >= last]
    return min(blocks) if blocks else 5


def _convert(
    state: Mapping[str, torch.Tensor],
    family: CheckpointFamily,
    blocks: int,
    source: str,
    image_width: int,
    image_height: int,
) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    centroids = state[f"{family.netvlad_prefix}centroids"]
    if centroids.ndim != 2:
        raise SeqvprError(
            f"{source}: {family.netvlad_prefix}centroids must have shape (K, D), got {tuple(centroids.shape)}"
        )
    pca_dim = None
    converted: dict[str, torch.Tensor] = {
        "netvlad.centroids": centroids,
        "netvlad.conv.weight": state[f"{family.netvlad_prefix}conv.weight"],
    }
    for key, value in state.items():
        if key.startswith(family.backbone_prefix):
            converted[f"backbone.{key[len(family.backbone_prefix):]}"] = value
    if family.pca_prefix is not None:
        weight = state[f"{family.pca_prefix}weight"]
        if weight.ndim == 4 and weight.shape[2:] == (1, 1):
            weight = weight[:, :, 0, 0]
        converted["pca.weight"] = weight
        converted["pca.bias"] = state[f"{family.pca_prefix}bias"]
        pca_dim = weight.shape[0]
    config = EncoderConfig(
        backbone_blocks=blocks,
        num_clusters=centroids.shape[0],
        image_width=image_width,
        image_height=image_height,
        pca_dim=pca_dim,
    )
    return config, converted
