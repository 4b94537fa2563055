"""NetVLAD-VGG16 image encoder: configuration, model, image preparation.

The backbone is torchvision's VGG16 ``features`` cut after the last convolution of block
``backbone_blocks`` *without* its ReLU and max-pool. With all five blocks this is
``vgg16().features`` children ``[:-2]`` (indices 0..28, ending at conv5_3, 512 channels),
the backbone of NetVLAD and of DecDTW. Fewer blocks keep the same layer indices, so weights
load the same way; the small configuration (three blocks, 256 channels, 16 clusters, 120×90
input) is the same code at a fraction of the cost, for tests and the demo. Weights files
(ImageNet VGG16, seqvpr and published checkpoints) are read by :mod:`seqvpr.vpr.weights`.

Images enter the model as RGB floats in [0, 1], shape (B, 3, H, W); the model maps them to
``(pixel · pixel_scale − pixel_mean) / pixel_std`` (ImageNet statistics for PyTorch-trained
weights; scale 255 and the average image, std 1, for MATLAB-derived weights).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from seqvpr.vpr.netvlad import FLATTEN_ORDERS, ClusterInit, FlattenOrder, NetVLAD, initialize_clusters
from seqvpr.vpr.pca import PCAWhitening, fit_pca_whitening
from seqvpr.vpr.vgg import BLOCKS, CHANNELS_OF_BLOCK, build_vgg16_backbone

__all__ = [
    "EncoderConfig",
    "PRESETS",
    "NetVLADEncoder",
    "image_to_tensor",
    "images_to_tensor",
    "sample_local_descriptors",
]

LOGGER = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)



@dataclass(frozen=True)
class EncoderConfig:
    """Architecture and input convention of a :class:`NetVLADEncoder`.

    Attributes:
        backbone_blocks: VGG16 conv blocks kept (5 = up to conv5_3, the paper's model).
        num_clusters: NetVLAD clusters K; the descriptor has K × channels dimensions.
        image_width: input width in pixels that images are resized to (paper: 240).
        image_height: input height in pixels (paper: 180).
        pca_dim: output dimension of the PCA-whitening layer, or None for no PCA.
        flatten_order: ``"cluster_major"`` (k·D + d, PyTorch) or ``"channel_major"``
            (d·K + k, MATLAB-derived weights).
        pixel_scale: RGB values in [0, 1] are multiplied by this first (1 or 255).
        pixel_mean: per-channel mean subtracted after scaling (R, G, B).
        pixel_std: per-channel divisor after the mean (R, G, B).
    """

    backbone_blocks: int = 5
    num_clusters: int = 64
    image_width: int = 240
    image_height: int = 180
    pca_dim: int | None = None
    flatten_order: FlattenOrder = "cluster_major"
    pixel_scale: float = 1.0
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.backbone_blocks not in BLOCKS:
            raise ValueError(f"backbone_blocks must be 1..5, got {self.backbone_blocks}")
        if self.num_clusters < 2:
            raise ValueError(f"num_clusters must be >= 2, got {self.num_clusters}")
        if self.image_width < 16 or self.image_height < 16:
            raise ValueError(
                f"image size must be at least 16×16, got {self.image_width}×{self.image_height}"
            )
        if self.pca_dim is not None and not 1 <= self.pca_dim <= self.vlad_dim:
            raise ValueError(f"pca_dim must be in [1, {self.vlad_dim}] or None, got {self.pca_dim}")
        if self.flatten_order not in FLATTEN_ORDERS:
            raise ValueError(f"flatten_order must be one of {FLATTEN_ORDERS}, got {self.flatten_order!r}")
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if len(value) != 3:
                raise ValueError(f"{name} must have 3 values (R, G, B), got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))

    @property
    def channels(self) -> int:
        """Channels D of the backbone output (local descriptor dimension)."""
        return CHANNELS_OF_BLOCK[self.backbone_blocks]

    @property
    def vlad_dim(self) -> int:
        """K × D, the NetVLAD output dimension."""
        return self.num_clusters * self.channels

    @property
    def output_dim(self) -> int:
        """Dimension of the final descriptor (after PCA if any)."""
        return self.pca_dim if self.pca_dim is not None else self.vlad_dim

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (ints, floats, strings, lists) for checkpoints and YAML."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }


PRESETS: dict[str, EncoderConfig] = {
    # The paper's encoder: VGG16 to conv5_3, 64 clusters, 32768-d, 240×180 input.
    "netvlad-vgg16": EncoderConfig(),
    # Same code, fast enough for tests and the demo on a CPU: VGG16 to conv3_3 (256
    # channels), 16 clusters → 4096-d, 120×90 input.
    "small": EncoderConfig(backbone_blocks=3, num_clusters=16, image_width=120, image_height=90),
}


class NetVLADEncoder(nn.Module):
    """VGG16 backbone → NetVLAD → optional PCA-whitening.

    Args:
        config: architecture; weights start random (torch's default initialisation).

    Attributes:
        backbone: the truncated VGG16 ``features`` (torchvision layer indices).
        netvlad: the :class:`NetVLAD` layer.
        pca: the :class:`PCAWhitening` layer or None.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else EncoderConfig()
        self.backbone = build_vgg16_backbone(self.config.backbone_blocks)
        self.netvlad = NetVLAD(self.config.num_clusters, self.config.channels, self.config.flatten_order)
        self.pca: PCAWhitening | None = None
        if self.config.pca_dim is not None:
            self.pca = PCAWhitening(self.config.vlad_dim, self.config.pca_dim)
        scale = torch.tensor(self.config.pixel_scale)
        mean = torch.tensor(self.config.pixel_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.config.pixel_std).view(1, 3, 1, 1)
        self.register_buffer("_pixel_scale", scale, persistent=False)
        self.register_buffer("_pixel_mean", mean, persistent=False)
        self.register_buffer("_pixel_std", std, persistent=False)

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    def local_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone feature map.

        Args:
            images: RGB in [0, 1], shape (B, 3, H, W).

        Returns:
            shape (B, D, H', W'), D = ``config.channels`` (not normalised).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        # One memory layout whatever the caller's, so that a batch from any source (a file
        # reader, the dataset, a stacked list) gives the same descriptors to the last bit.
        images = images.contiguous(memory_format=torch.channels_last)
        normalised = (images * self._pixel_scale - self._pixel_mean) / self._pixel_std
        return self.backbone(normalised)

    def vlad(self, images: torch.Tensor) -> torch.Tensor:
        """NetVLAD descriptors before PCA, shape (B, K·D)."""
        return self.netvlad(self.local_features(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Global descriptors.

        Args:
            images: RGB in [0, 1], shape (B, 3, H, W) (any size; the configured size is what
                the weights were trained at, see :func:`images_to_tensor`).

        Returns:
            L2-normalised descriptors, shape (B, ``output_dim``).
        """
        descriptors = self.vlad(images)
        return self.pca(descriptors) if self.pca is not None else descriptors

    @torch.no_grad()
    def initialize_clusters(
        self,
        batches: Iterable[torch.Tensor],
        *,
        per_image: int = 100,
        max_descriptors: int = 50_000,
        seed: int = 0,
    ) -> ClusterInit:
        """Set the NetVLAD centroids and assignment by k-means on sampled local descriptors.

        Args:
            batches: image batches, each RGB in [0, 1], shape (B, 3, H, W).
            per_image: local descriptors sampled per image.
            max_descriptors: stop reading images once this many are sampled.
            seed: seed of the sampling and of k-means.

        Returns:
            The :class:`ClusterInit` that was loaded into the layer.
        """
        descriptors = sample_local_descriptors(
            self, batches, per_image=per_image, max_descriptors=max_descriptors, seed=seed
        )
        init = initialize_clusters(descriptors, self.config.num_clusters, seed=seed)
        self.netvlad.set_clusters(init)
        LOGGER.info(
            "initialised %d clusters from %d local descriptors (alpha=%.2f)",
            self.config.num_clusters, len(descriptors), init.alpha,
        )
        return init

    @torch.no_grad()
    def fit_pca(self, batches: Iterable[torch.Tensor], output_dim: int = 4096) -> PCAWhitening:
        """Fit PCA-whitening on the NetVLAD descriptors of training images and attach it.

        Args:
            batches: image batches, each RGB in [0, 1], shape (B, 3, H, W); more images
                than ``output_dim`` are needed.
            output_dim: P, the whitened dimension.

        Returns:
            The fitted layer, now ``self.pca``; ``self.config.pca_dim`` becomes P.
        """
        was_training = self.training
        self.eval()
        vlads = torch.cat([self.vlad(batch).cpu() for batch in batches])
        self.train(was_training)
        layer = fit_pca_whitening(vlads, output_dim)
        self.attach_pca(layer)
        return layer

    def attach_pca(self, layer: PCAWhitening | None) -> None:
        """Use ``layer`` as the PCA-whitening stage (None removes it); updates the config."""
        if layer is not None and layer.input_dim != self.config.vlad_dim:
            raise ValueError(
                f"PCA layer expects {layer.input_dim}-d input, the encoder makes "
                f"{self.config.vlad_dim}-d NetVLAD descriptors"
            )
        device = self.netvlad.centroids.device
        self.pca = layer.to(device) if layer is not None else None
        self.config = dataclasses.replace(
            self.config, pca_dim=layer.output_dim if layer is not None else None
        )


@torch.no_grad()
def sample_local_descriptors(
    encoder: NetVLADEncoder,
    batches: Iterable[torch.Tensor],
    *,
    per_image: int = 100,
    max_descriptors: int = 50_000,
    seed: int = 0,
) -> np.ndarray:
    """L2-normalised backbone descriptors at random locations of each image.

    Args:
        encoder: supplies the backbone and the input normalisation.
        batches: image batches, RGB in [0, 1], shape (B, 3, H, W).
        per_image: locations sampled per image (without replacement; all if fewer).
        max_descriptors: stop once this many are collected.
        seed: sampling seed.

    Returns:
        float32 array, shape (N, D).
    """
    generator = torch.Generator().manual_seed(seed)
    was_training = encoder.training
    encoder.eval()
    samples: list[torch.Tensor] = []
    count = 0
    for batch in batches:
        features = torch.nn.functional.normalize(encoder.local_features(batch), p=2, dim=1)
        local = features.flatten(2).transpose(1, 2).cpu()  # (B, H'W', D)
        for image_local in local:
            take = min(per_image, image_local.shape[0])
            chosen = torch.randperm(image_local.shape[0], generator=generator)[:take]
            samples.append(image_local[chosen])
            count += take
        if count >= max_descriptors:
            break
    encoder.train(was_training)
    if not samples:
        raise ValueError("no images to sample local descriptors from")
    return torch.cat(samples)[:max_descriptors].numpy().astype(np.float32)


def image_to_tensor(image: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
    """One RGB image as the encoder's input: resized, float32 RGB in [0, 1].

    Shrinking uses area interpolation, enlarging bilinear. Normalisation is the encoder's
    job (:class:`EncoderConfig` ``pixel_*``), not done here.

    Args:
        image: uint8 RGB, shape (H, W, 3).
        size: (width, height) to resize to, or None to keep the image's size.

    Returns:
        float32 RGB in [0, 1], shape (3, height, width).
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB of shape (H, W, 3), got {image.dtype} {image.shape}")
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        shrinking = image.shape[1] >= size[0] and image.shape[0] >= size[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, tuple(size), interpolation=interpolation)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32).div_(255.0)


def images_to_tensor(images: Sequence[np.ndarray], config: EncoderConfig) -> torch.Tensor:
    """Resize RGB images to the configured input size and stack them (:func:`image_to_tensor`).

    Args:
        images: uint8 RGB arrays, each shape (H_i, W_i, 3).
        config: gives ``image_width`` × ``image_height``.

    Returns:
        float32 RGB in [0, 1], shape (B, 3, image_height, image_width).
    """
    size = (config.image_width, config.image_height)
    if not images:
        return torch.empty(0, 3, size[1], size[0])
    return torch.stack([image_to_tensor(image, size) for image in images])
