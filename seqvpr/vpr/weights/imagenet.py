"""torchvision's ImageNet VGG16 weights for the encoder's backbone.

The file is torchvision's ``vgg16-397923af.pth`` (``VGG16_Weights.IMAGENET1K_V1``), a
state dict with ``features.N.*`` keys at the layer indices of :mod:`seqvpr.vpr.vgg`.
It comes from torch's hub cache (downloaded on first use) or from a path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from seqvpr.errors import SeqvprError
from seqvpr.vpr.encoder import NetVLADEncoder
from seqvpr.vpr.weights.checkpoint import check_finite_weights, safe_torch_load

__all__ = ["IMAGENET_VGG16_URL", "WeightsNotFoundError", "load_imagenet_backbone", "load_torchvision_backbone"]

LOGGER = logging.getLogger(__name__)

IMAGENET_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


class WeightsNotFoundError(SeqvprError):
    """Pretrained weights are neither on disk nor downloadable from here."""


def load_imagenet_backbone(encoder: NetVLADEncoder, weights_path: str | Path | None = None) -> None:
    """Load torchvision's ImageNet VGG16 weights into the encoder's backbone.

    Without ``weights_path`` the file comes from torch's hub cache, downloaded on first
    use (needs internet). Offline, download ``IMAGENET_VGG16_URL`` elsewhere and pass the
    file as ``weights_path``.

    Raises:
        WeightsNotFoundError: not cached and the download failed.
    """
    if weights_path is not None:
        load_torchvision_backbone(encoder, weights_path)
        return
    try:
        state = torch.hub.load_state_dict_from_url(
            IMAGENET_VGG16_URL, progress=True, check_hash=True, map_location="cpu", weights_only=True
        )
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_VGG16_URL).name
        raise WeightsNotFoundError(
            f"could not download the ImageNet VGG16 weights from {IMAGENET_VGG16_URL} ({error}). "
            f"Download that file on a machine with internet access and either pass it "
            f"explicitly (`seqvpr extract --backbone-weights PATH`, or "
            f"`load_imagenet_backbone(encoder, PATH)`) or copy it to {cache}."
        ) from error
    _load_vgg_features(encoder, state, source=IMAGENET_VGG16_URL)


def load_torchvision_backbone(encoder: NetVLADEncoder, path: str | Path) -> None:
    """Load a torchvision-format VGG16 state_dict file (``features.N.*`` keys) into the backbone."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"VGG16 weights file {path} does not exist")
    state = safe_torch_load(path)
    if not isinstance(state, Mapping):
        raise SeqvprError(f"{path}: expected a VGG16 state_dict, got {type(state).__name__}")
    _load_vgg_features(encoder, state, source=str(path))


def _load_vgg_features(encoder: NetVLADEncoder, state: Mapping[str, torch.Tensor], source: str) -> None:
    wanted = {f"features.{key}": key for key in encoder.backbone.state_dict()}
    missing = sorted(k for k in wanted if k not in state)
    if missing:
        raise SeqvprError(f"{source}: not a torchvision VGG16 state_dict, missing keys {missing}")
    backbone_state = {wanted[k]: state[k] for k in wanted}
    check_finite_weights({k: state[k] for k in wanted}, source)
    encoder.backbone.load_state_dict(backbone_state, strict=True)
    LOGGER.info("loaded VGG16 backbone weights from %s", source)
