import numpy as np
import pytest
import torch
import torchvision

from seqvpr.config import config_from_dict
from seqvpr.errors import ConfigError
from seqvpr.vpr import PRESETS, EncoderConfig, NetVLADEncoder, images_to_tensor

from .reference_netvlad import reference_descriptors, vgg16_features


def test_presets_dimensions():
    assert PRESETS["netvlad-vgg16"].output_dim == 64 * 512 == 32768
    assert (PRESETS["netvlad-vgg16"].image_width, PRESETS["netvlad-vgg16"].image_height) == (240, 180)
    assert PRESETS["small"].output_dim == 16 * 256


def test_config_dict_round_trip_and_unknown_keys():
    config = EncoderConfig(num_clusters=8, pca_dim=100)
    assert config_from_dict(EncoderConfig, config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['clusters'\] for EncoderConfig"):
        config_from_dict(EncoderConfig, {"clusters": 8})
    with pytest.raises(ValueError, match="backbone_blocks"):
        EncoderConfig(backbone_blocks=6)


def test_full_backbone_is_vgg16_features_minus_relu_and_pool():
    encoder = NetVLADEncoder()
    reference = list(torchvision.models.vgg16().features.children())[:-2]
    assert len(encoder.backbone) == len(reference) == 29
    for ours, theirs in zip(encoder.backbone, reference):
        assert type(ours) is type(theirs)
        if isinstance(ours, torch.nn.Conv2d):
            assert ours.weight.shape == theirs.weight.shape
    assert isinstance(encoder.backbone[28], torch.nn.Conv2d)  # conv5_3, no ReLU after it


def test_full_size_forward_shape_and_norm():
    torch.manual_seed(0)
    encoder = NetVLADEncoder().eval()
    with torch.no_grad():
        descriptors = encoder(torch.rand(2, 3, 180, 240))
    assert descriptors.shape == (2, 32768)
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2))


def test_small_encoder_matches_independent_computation(small_encoder, images):
    backbone_state = small_encoder.backbone.state_dict()
    expected = reference_descriptors(
        images, vgg16_features(3, backbone_state),
        small_encoder.netvlad.conv.weight.detach(), small_encoder.netvlad.centroids.detach(),
    )
    with torch.no_grad():
        actual = small_encoder(images)
    assert actual.shape == (4, 4096)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_fit_pca_whitens_training_vlads(small_encoder, images):
    batches = [images, images.flip(2), images.flip(3)]
    layer = small_encoder.fit_pca(batches, output_dim=4)
    with torch.no_grad():
        vlads = torch.cat([small_encoder.vlad(b) for b in batches]).double()
        whitened = layer.project(vlads.float()).double()
        assert small_encoder(images).shape == (4, 4)
    torch.testing.assert_close(whitened.T @ whitened / 12, torch.eye(4, dtype=torch.float64), atol=1e-2, rtol=0)


def test_initialize_clusters_from_images(small_encoder, images):
    init = small_encoder.initialize_clusters([images], per_image=40, seed=0)
    assert init.centroids.shape == (16, 256) and init.alpha > 0
    np.testing.assert_allclose(small_encoder.netvlad.centroids.detach().numpy(), init.centroids)
    weight = small_encoder.netvlad.conv.weight.detach()[:, :, 0, 0]
    torch.testing.assert_close(weight.norm(dim=1), torch.full((16,), init.alpha))


def test_images_to_tensor_resizes_and_scales(small_config):
    image = np.zeros((100, 150, 3), dtype=np.uint8)
    image[..., 0] = 255  # red
    batch = images_to_tensor([image, image], small_config)
    assert batch.shape == (2, 3, 32, 48) and batch.dtype == torch.float32
    torch.testing.assert_close(batch[:, 0], torch.ones(2, 32, 48))
    torch.testing.assert_close(batch[:, 1:], torch.zeros(2, 2, 32, 48))
    with pytest.raises(ValueError, match="uint8 RGB"):
        images_to_tensor([np.zeros((10, 10), dtype=np.uint8)], small_config)
