"""Import of the MATLAB NetVLAD release (Arandjelović et al.) as exported to a struct ``.mat``.

The layout is the one hloc reads (exported with netvlad_tf_open's ``net_class2struct.m``;
e.g. ``Pitts30K_struct.mat``): ``net.layers`` is a cell array whose entry i is torchvision
VGG16 ``features`` layer i for i ≤ 28, each convolution with ``weights = {W (S, S, IN, OUT),
b (OUT)}``; ``net.layers{31}`` (index 30) is NetVLAD with ``weights = {w (D, K), −c (D, K)}``
(assignment weights and the *negated* centroids); ``net.layers{34}`` (index 33), when
present, is the whitening with ``weights = {W (1, 1, K·D, P), b (P)}``;
``net.meta.normalization.averageImage`` holds the RGB mean in 0..255.

Conventions of these weights, kept in the resulting :class:`EncoderConfig`: flatten order
d·K + k (``channel_major``), input RGB scaled to 0..255 minus the average colour, std 1.
The file is read with :func:`scipy.io.loadmat` (no pickles).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seqvpr.errors import SeqvprError
from seqvpr.vpr.encoder import EncoderConfig
from seqvpr.vpr.vgg import LAST_CONV_OF_BLOCK

__all__ = ["read_matlab_netvlad"]

NETVLAD_LAYER = 30
WHITENING_LAYER = 33


def read_matlab_netvlad(
    path: str | Path, *, image_width: int = 240, image_height: int = 180
) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    """The encoder config and state dict of a MATLAB NetVLAD-VGG16 struct ``.mat``.

    Args:
        path: the ``.mat`` file.
        image_width: input width for the config (the file records none).
        image_height: input height.

    Returns:
        The config and the state dict in :class:`~seqvpr.vpr.encoder.NetVLADEncoder` keys,
        with PCA-whitening when the file has it.

    Raises:
        SeqvprError: the file is missing, lacks ``net.layers`` / ``net.meta.normalization`` or a layer
            has an unexpected shape; names the layer.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"checkpoint {path} does not exist")
    try:
        net = loadmat(path, struct_as_record=False, squeeze_me=True)["net"]
        layers = list(net.layers)
        average = np.asarray(net.meta.normalization.averageImage, dtype=np.float64)
    except (KeyError, AttributeError, TypeError, ValueError, OSError, MatReadError) as error:
        raise SeqvprError(f"{path}: not a MATLAB NetVLAD struct file (needs net.layers and "
                         f"net.meta.normalization.averageImage): {error}") from error
    if len(layers) <= NETVLAD_LAYER:
        raise SeqvprError(f"{path}: net.layers has {len(layers)} entries, NetVLAD is expected at index {NETVLAD_LAYER}")

    def weights(index: int) -> list[np.ndarray]:
        values = getattr(layers[index], "weights", None)
        if values is None or len(values) != 2:
            raise SeqvprError(f"{path}: net.layers[{index}] has no (weight, bias) pair")
        return [np.asarray(v, dtype=np.float32) for v in values]

    state: dict[str, torch.Tensor] = {}
    for index in range(LAST_CONV_OF_BLOCK[5] + 1):
        if getattr(layers[index], "weights", None) is None or len(layers[index].weights) == 0:
            continue
        kernel, bias = weights(index)
        if kernel.ndim != 4:
            raise SeqvprError(f"{path}: net.layers[{index}] weight has shape {kernel.shape}, expected (S, S, IN, OUT)")
        state[f"backbone.{index}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
        state[f"backbone.{index}.bias"] = torch.from_numpy(np.atleast_1d(bias))
    assignment, negated_centroids = weights(NETVLAD_LAYER)
    if assignment.ndim != 2 or assignment.shape != negated_centroids.shape:
        raise SeqvprError(
            f"{path}: net.layers[{NETVLAD_LAYER}] must hold two (D, K) arrays, got "
            f"{assignment.shape} and {negated_centroids.shape}"
        )
    state["netvlad.conv.weight"] = torch.from_numpy(assignment.T.copy())[:, :, None, None]
    state["netvlad.centroids"] = torch.from_numpy(-negated_centroids.T)
    pca_dim = None
    if len(layers) > WHITENING_LAYER and len(getattr(layers[WHITENING_LAYER], "weights", ())) == 2:
        projection, offset = weights(WHITENING_LAYER)
        projection = projection.reshape(-1, projection.shape[-1])  # (1, 1, IN, OUT) -> (IN, OUT)
        state["pca.weight"] = torch.from_numpy(projection.T.copy())
        state["pca.bias"] = torch.from_numpy(np.atleast_1d(offset).reshape(-1))
        pca_dim = projection.shape[1]
    config = EncoderConfig(
        num_clusters=assignment.shape[1],
        image_width=image_width,
        image_height=image_height,
        pca_dim=pca_dim,
        flatten_order="channel_major",
        pixel_scale=255.0,
        pixel_mean=tuple(average.reshape(-1, 3).mean(axis=0)),  # (1, 1, 3) or a whole image
        pixel_std=(1.0, 1.0, 1.0),
    )
    return config, state
