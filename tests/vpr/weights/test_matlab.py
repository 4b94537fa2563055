"""Import of the MATLAB NetVLAD struct .mat, built here in the layout hloc reads."""

import numpy as np
import pytest
import torch
from scipy.io import savemat

from seqvpr.vpr import load_encoder

from ..reference_netvlad import reference_descriptors, vgg16_features

CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256),
         17: (256, 512), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}


def _cell(*arrays):
    cell = np.empty(len(arrays), dtype=object)
    for i, array in enumerate(arrays):
        cell[i] = array
    return cell


def _write_mat(path, clusters=4, whitened_dim=16, seed=0):
    """A MatConvNet-style struct: conv weights (S, S, IN, OUT), NetVLAD {w, -c} (D, K), WPCA."""
    rng = np.random.default_rng(seed)
    layers = np.empty(34, dtype=object)
    torch_state = {}
    for index in range(34):
        layers[index] = {"name": f"layer{index}", "weights": _cell()}
    for index, (inputs, outputs) in CONVS.items():
        kernel = (rng.standard_normal((3, 3, inputs, outputs)) * np.sqrt(2 / (9 * inputs))).astype(np.float32)
        bias = (0.01 * rng.standard_normal(outputs)).astype(np.float32)
        layers[index] = {"name": f"conv{index}", "weights": _cell(kernel, bias)}
        torch_state[f"{index}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
        torch_state[f"{index}.bias"] = torch.from_numpy(bias)
    assignment = (5 * rng.standard_normal((512, clusters))).astype(np.float32)
    centroids = (0.1 * rng.standard_normal((512, clusters))).astype(np.float32)
    layers[30] = {"name": "netvlad", "weights": _cell(assignment, -centroids)}
    projection = rng.standard_normal((1, 1, 512 * clusters, whitened_dim)).astype(np.float32)
    offset = rng.standard_normal(whitened_dim).astype(np.float32)
    layers[33] = {"name": "WPCA", "weights": _cell(projection, offset)}
    average = np.array([[[122.7, 114.9, 101.6]]], dtype=np.float64)  # (1, 1, 3)
    savemat(path, {"net": {"layers": layers, "meta": {"normalization": {"averageImage": average}}}})
    return {
        "backbone": torch_state,
        "assignment": torch.from_numpy(assignment.T.copy())[:, :, None, None],
        "centroids": torch.from_numpy(centroids.T.copy()),
        "pca_weight": torch.from_numpy(projection[0, 0].T.copy()),
        "pca_bias": torch.from_numpy(offset),
        "mean": (122.7, 114.9, 101.6),
    }


def test_matlab_import_matches_hloc_convention(tmp_path):
    tensors = _write_mat(tmp_path / "Pitts30K_struct.mat")
    encoder = load_encoder(tmp_path / "Pitts30K_struct.mat", image_width=64, image_height=48)
    config = encoder.config
    assert (config.flatten_order, config.pixel_scale, config.pixel_std) == ("channel_major", 255.0, (1.0, 1.0, 1.0))
    assert config.pixel_mean == pytest.approx(tensors["mean"]) and config.pca_dim == 16
    images = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(4))
    expected = reference_descriptors(
        images, vgg16_features(5, tensors["backbone"]), tensors["assignment"], tensors["centroids"],
        pca_weight=tensors["pca_weight"], pca_bias=tensors["pca_bias"], channel_major=True,
        scale=255.0, mean=tensors["mean"], std=(1.0, 1.0, 1.0),
    )
    with torch.no_grad():
        torch.testing.assert_close(encoder(images), expected, atol=2e-5, rtol=1e-4)


def test_not_a_netvlad_mat_is_named(tmp_path):
    savemat(tmp_path / "other.mat", {"weights": np.zeros(3)})
    with pytest.raises(ValueError, match=r"other.mat: not a MATLAB NetVLAD struct file"):
        load_encoder(tmp_path / "other.mat")
