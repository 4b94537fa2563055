"""Import of published checkpoint families, each built here with that family's exact keys."""

import argparse

import numpy as np
import pytest
import torch

from seqvpr.errors import SeqvprError
from seqvpr.vpr.weights import (
    FAMILIES,
    encoder_from_weights,
    load_encoder,
    read_published_checkpoint,
    safe_torch_load,
    save_encoder,
)

from ..reference_netvlad import LAST_CONV, reference_descriptors, vgg16_features

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
CHANNELS = {0: 64, 2: 64, 5: 128, 7: 128, 10: 256, 12: 256, 14: 256, 17: 512, 19: 512, 21: 512, 24: 512, 26: 512, 28: 512}


def _random_tensors(blocks, clusters, pca_dim, seed):
    """Random VGG16 conv weights ('N.weight'), assignment (K, D, 1, 1), centroids, WPCA."""
    generator = torch.Generator().manual_seed(seed)
    backbone = {}
    previous = 3
    for index in CONV_INDICES:
        if index > LAST_CONV[blocks]:
            break
        out = CHANNELS[index]
        backbone[f"{index}.weight"] = torch.randn(out, previous, 3, 3, generator=generator) * (2 / (9 * previous)) ** 0.5
        backbone[f"{index}.bias"] = 0.01 * torch.randn(out, generator=generator)
        previous = out
    tensors = {
        "backbone": backbone,
        "assignment": torch.randn(clusters, previous, 1, 1, generator=generator) * 5,
        "centroids": torch.randn(clusters, previous, generator=generator) * 0.1,
    }
    if pca_dim:
        tensors["pca_weight"] = torch.randn(pca_dim, clusters * previous, 1, 1, generator=generator)
        tensors["pca_bias"] = torch.randn(pca_dim, generator=generator)
    return tensors


def _layout(family, tensors):
    """The checkpoint dict exactly as each family's training code saves it."""
    def prefixed(backbone_prefix, netvlad_prefix, pca_prefix=None):
        state = {f"{backbone_prefix}{k}": v for k, v in tensors["backbone"].items()}
        state[f"{netvlad_prefix}conv.weight"] = tensors["assignment"]
        state[f"{netvlad_prefix}centroids"] = tensors["centroids"]
        if pca_prefix:
            state[f"{pca_prefix}weight"] = tensors["pca_weight"]
            state[f"{pca_prefix}bias"] = tensors["pca_bias"]
        return state

    if family == "pytorch-netvlad":  # Nanne: numpy scalar best_score, optimizer state
        return {"epoch": 3, "state_dict": prefixed("encoder.", "pool."), "best_score": np.float64(0.91),
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}}
    if family == "patch-netvlad":
        return {"epoch": 1, "state_dict": prefixed("encoder.", "pool.", "WPCA.0."), "num_clusters": 16}
    if family == "gmberton":  # DataParallel-wrapped
        return {"epoch_num": 5, "model_state_dict": prefixed("module.backbone.", "module.aggregation."),
                "recalls": np.array([80.0, 90.0]), "best_r5": np.float64(90.0), "not_improved_num": 0}
    if family == "decdtw-lightning":
        return {"epoch": 2, "global_step": 100, "pytorch-lightning_version": "1.9.0",
                "state_dict": prefixed("model.module.backbone.", "model.module.aggregation."),
                "hyper_parameters": {"lr": 1e-4, "lam": 0.1}}
    if family == "openibl-pca":  # DistributedDataParallel-wrapped
        return {"epoch": 4, "best_recall5": 0.9,
                "state_dict": prefixed("module.base_model.base.", "module.net_vlad.", "module.pca_layer.")}
    raise AssertionError(family)


CASES = [  # family, backbone blocks, clusters, PCA dim
    ("pytorch-netvlad", 5, 64, None),  # the paper's full-size layout
    ("patch-netvlad", 3, 16, 32),
    ("gmberton", 3, 16, None),
    ("decdtw-lightning", 3, 16, None),
    ("openibl-pca", 3, 8, 24),
]


@pytest.mark.parametrize("family, blocks, clusters, pca_dim", CASES)
def test_family_import_matches_independent_computation(tmp_path, family, blocks, clusters, pca_dim):
    tensors = _random_tensors(blocks, clusters, pca_dim, seed=len(family))
    path = tmp_path / f"{family}.pth.tar"
    torch.save(_layout(family, tensors), path)

    encoder = load_encoder(path, image_width=48, image_height=32)

    assert encoder.config.backbone_blocks == blocks and encoder.config.num_clusters == clusters
    assert encoder.config.pca_dim == pca_dim and encoder.config.flatten_order == "cluster_major"
    images = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    expected = reference_descriptors(
        images, vgg16_features(blocks, tensors["backbone"]), tensors["assignment"], tensors["centroids"],
        pca_weight=tensors.get("pca_weight"), pca_bias=tensors.get("pca_bias"),
    )
    with torch.no_grad():
        actual = encoder(images)
    assert actual.shape == expected.shape == (2, pca_dim or clusters * (512 if blocks == 5 else 256))
    torch.testing.assert_close(actual, expected, atol=2e-5, rtol=1e-4)


def test_each_family_is_identified():
    for family in ("pytorch-netvlad", "patch-netvlad", "gmberton", "decdtw-lightning", "openibl-pca"):
        tensors = _random_tensors(3, 4, 6, seed=0)
        _, _, matched = read_published_checkpoint(_layout(family, tensors))
        assert matched.name == family
    assert {f.name for f in FAMILIES} >= {"pytorch-netvlad", "patch-netvlad", "gmberton", "decdtw-lightning", "openibl"}


def test_unknown_layout_lists_missing_and_unexpected_keys():
    tensors = _random_tensors(3, 4, None, seed=0)
    checkpoint = _layout("pytorch-netvlad", tensors)
    state = checkpoint["state_dict"]
    state["pool.conv.bias"] = torch.zeros(4)
    del state["pool.centroids"]
    with pytest.raises(SeqvprError, match=r"Closest is pytorch-netvlad: missing keys \['pool.centroids'\]; "
                                         r"unexpected keys \['pool.conv.bias'\]"):
        read_published_checkpoint(checkpoint, source="odd.pth")
    with pytest.raises(SeqvprError, match="no state dict under any of"):
        read_published_checkpoint({"weights": {}}, source="odd.pth")


def test_wrong_tensor_shape_names_the_key():
    tensors = _random_tensors(3, 4, None, seed=0)
    checkpoint = _layout("gmberton", tensors)
    checkpoint["model_state_dict"]["module.aggregation.conv.weight"] = torch.zeros(4, 255, 1, 1)
    config, state, _ = read_published_checkpoint(checkpoint)
    with pytest.raises(SeqvprError, match=r"odd.pth: netvlad.conv.weight has shape \(4, 255, 1, 1\)"):
        encoder_from_weights(config, state, "odd.pth")


def test_numpy_scalars_load_but_arbitrary_objects_do_not(tmp_path):
    torch.save({"best_score": np.float64(0.5), "recalls": np.arange(3)}, tmp_path / "numpy.pth")
    loaded = safe_torch_load(tmp_path / "numpy.pth")
    assert loaded["best_score"] == 0.5 and loaded["recalls"].tolist() == [0, 1, 2]
    torch.save({"args": argparse.Namespace(lr=1.0)}, tmp_path / "namespace.pth")
    with pytest.raises(SeqvprError, match=r"refusing to unpickle.*argparse.Namespace"):
        safe_torch_load(tmp_path / "namespace.pth")


def test_save_load_round_trip_identical(tmp_path, small_encoder, images):
    small_encoder.fit_pca([images, images.flip(3)], output_dim=5)
    path = save_encoder(small_encoder, tmp_path / "encoder.pt")
    loaded = load_encoder(path)
    assert loaded.config == small_encoder.config and loaded.config.pca_dim == 5
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), small_encoder(images), atol=0, rtol=0)
    # the file is plain tensors and containers
    assert torch.load(path, weights_only=True)["format"] == "seqvpr.netvlad_encoder"
