"""Encoder checkpoints: the seqvpr format, and import of published NetVLAD checkpoints.

seqvpr format (a ``torch.save`` file that loads with ``weights_only=True``)::

    {"format": "seqvpr.netvlad_encoder", "version": 1,
     "config": EncoderConfig.to_dict(),          # ints, floats, strings, lists
     "state_dict": {"backbone.N.weight": ..., "netvlad.conv.weight": (K, D, 1, 1),
                    "netvlad.centroids": (K, D), ["pca.weight": (P, K·D), "pca.bias": (P,)]}}

Published families (design.md §3.1), recognised by their exact state-dict key set after a
leading ``module.`` (DataParallel) on every key is stripped; all use flatten order k·D + d and
ImageNet input statistics; the VGG16 layers keep torchvision's ``features`` indices:

- ``pytorch-netvlad`` (Nanne): ``state_dict`` → ``encoder.N.*``, ``pool.conv.weight``,
  ``pool.centroids``.
- ``patch-netvlad``: the same plus ``WPCA.0.weight`` (P, K·D, 1, 1) and ``WPCA.0.bias`` (P,).
- ``gmberton`` (deep-visual-geo-localization-benchmark; the DecDTW authors' base model):
  ``model_state_dict`` → ``module.backbone.N.*``, ``module.aggregation.{conv.weight,centroids}``.
- ``decdtw-lightning``: ``state_dict`` → ``model.module.backbone.N.*``,
  ``model.module.aggregation.*``.
- ``openibl`` / ``openibl-pca``: ``state_dict`` → ``base_model.base.N.*``, ``net_vlad.*``
  and, when whitened, ``pca_layer.weight`` (P, K·D, 1, 1), ``pca_layer.bias`` (P,).

The MATLAB release (a struct ``.mat``, flatten order d·K + k) is read by
:mod:`seqvpr.vpr.matlab`; :func:`load_encoder` sends ``.mat`` files there.

Old checkpoints pickle numpy scalars (a recall, a best score); those load through an
explicit allow-list of numpy globals, never by unpickling arbitrary objects.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqvpr.config import config_from_dict
from seqvpr.io import atomic_path
from seqvpr.vpr.encoder import _LAST_CONV_OF_BLOCK, EncoderConfig, NetVLADEncoder

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointFamily",
    "FAMILIES",
    "save_encoder",
    "load_encoder",
    "import_checkpoint",
    "safe_torch_load",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "seqvpr.netvlad_encoder"
CHECKPOINT_VERSION = 1

# numpy globals that old checkpoints pickle for scalars and small arrays (recalls, best
# scores); the strings are the names numpy 1.x wrote (numpy 2 moved `numpy.core` to
# `numpy._core`). `_reconstruct` only builds an empty array of an allowed class.
_NUMPY_SAFE_GLOBALS: list[Any] = [
    np.dtype,
    np.ndarray,
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
    np._core.multiarray.scalar,
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    np._core.multiarray._reconstruct,
    *(getattr(np.dtypes, name) for name in np.dtypes.__all__ if name.endswith("DType")),
]


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
        conv_indices = [i for i in range(_LAST_CONV_OF_BLOCK[blocks] + 1) if _is_conv_index(i)]
        keys = {f"{self.backbone_prefix}{i}.{p}" for i in conv_indices for p in ("weight", "bias")}
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


def _is_conv_index(index: int) -> bool:
    # VGG16 `features`: blocks of (conv, relu)×n then pool; conv layers sit at these indices.
    return index in {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28}


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with numpy scalars and dtypes allowed, nothing else.

    Raises:
        ValueError: the file needs other globals (arbitrary pickled objects).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = next(
            (line.strip() for line in str(error).splitlines() if "Unsupported global" in line),
            str(error).splitlines()[0],
        )
        raise ValueError(
            f"{path}: refusing to unpickle objects other than tensors, containers and numpy "
            f"scalars/arrays ({refused}). Re-save only the model's state_dict, e.g. "
            f"torch.save({{'state_dict': model.state_dict()}}, path)."
        ) from error


def save_encoder(encoder: NetVLADEncoder, path: str | Path) -> Path:
    """Write the encoder (config + weights) in the seqvpr checkpoint format, atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": encoder.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
    }
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path


def load_encoder(
    path: str | Path, *, image_width: int | None = None, image_height: int | None = None
) -> NetVLADEncoder:
    """Load a seqvpr checkpoint or import a published one (family detected from its keys).

    Args:
        path: checkpoint file; a ``.mat`` file is read as the MATLAB NetVLAD release
            (:mod:`seqvpr.vpr.matlab`).
        image_width: input width to use for a published checkpoint (they do not record
            one; default 240). Ignored for seqvpr checkpoints unless given.
        image_height: likewise (default 180).

    Returns:
        The encoder in eval mode, on the CPU.
    """
    size = {
        key: value
        for key, value in (("image_width", image_width), ("image_height", image_height))
        if value is not None
    }
    if Path(path).suffix.lower() == ".mat":
        from seqvpr.vpr.matlab import import_matlab_netvlad

        return import_matlab_netvlad(path, **size)
    checkpoint = safe_torch_load(path)
    if isinstance(checkpoint, Mapping) and checkpoint.get("format") == CHECKPOINT_FORMAT:
        if checkpoint.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"{path}: seqvpr checkpoint version {checkpoint.get('version')!r} is not "
                f"supported (this seqvpr reads version {CHECKPOINT_VERSION})"
            )
        config = config_from_dict(EncoderConfig, {**checkpoint["config"], **size}, f"{path}: config")
        encoder = NetVLADEncoder(config)
        _load_state(encoder, checkpoint["state_dict"], source=str(path))
        return encoder.eval()
    encoder, family = import_checkpoint(checkpoint, source=str(path), **size)
    logger.info("imported %s as a %s checkpoint", path, family.name)
    return encoder


def import_checkpoint(
    checkpoint: Any, *, source: str = "checkpoint", image_width: int = 240, image_height: int = 180
) -> tuple[NetVLADEncoder, CheckpointFamily]:
    """Build an encoder from a published checkpoint's contents.

    Args:
        checkpoint: the object ``torch.load`` returned (a dict with a state dict under the
            family's container key).
        source: name used in error messages (the file).
        image_width: input width for the config.
        image_height: input height for the config.

    Returns:
        The encoder (eval mode) and the family that matched.

    Raises:
        ValueError: no family matches; lists the missing and unexpected keys of the closest.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{source}: expected a dict checkpoint, got {type(checkpoint).__name__}")
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
            return _build_from_family(state, family, blocks, source, image_width, image_height), family
        mismatch = len(missing) + len(unexpected)
        if best is None or mismatch < best[0]:
            best = (mismatch, family, missing, unexpected)
    if best is None:
        containers = sorted({f.container for f in FAMILIES})
        raise ValueError(
            f"{source}: not a NetVLAD checkpoint seqvpr knows: no state dict under any of "
            f"{containers}; top-level keys are {sorted(map(str, checkpoint))}"
        )
    _, family, missing, unexpected = best
    raise ValueError(
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
    blocks = [b for b, conv in _LAST_CONV_OF_BLOCK.items() if conv >= last]
    return min(blocks) if blocks else 5


def _build_from_family(
    state: Mapping[str, torch.Tensor],
    family: CheckpointFamily,
    blocks: int,
    source: str,
    image_width: int,
    image_height: int,
) -> NetVLADEncoder:
    centroids = state[f"{family.netvlad_prefix}centroids"]
    if centroids.ndim != 2:
        raise ValueError(
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
    encoder = NetVLADEncoder(config)
    _load_state(encoder, converted, source=source)
    return encoder.eval()


def _load_state(encoder: NetVLADEncoder, state: Mapping[str, torch.Tensor], source: str) -> None:
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{source}: missing keys {missing}; unexpected keys {unexpected}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(
                f"{source}: {key} has shape {tuple(value.shape)}, the config needs {tuple(own[key].shape)}"
            )
    encoder.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
