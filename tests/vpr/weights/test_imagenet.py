"""torchvision VGG16 weights into the encoder's backbone, from a file or (offline) with a clear error."""

import urllib.error

import pytest
import torch
import torchvision

from seqvpr.vpr import EncoderConfig, NetVLADEncoder
from seqvpr.vpr.weights import WeightsNotFoundError, load_imagenet_backbone, load_torchvision_backbone


def test_torchvision_weights_file_loads_into_backbone(tmp_path, small_encoder, images):
    torch.manual_seed(5)
    vgg = torchvision.models.vgg16()
    torch.save(vgg.state_dict(), tmp_path / "vgg16.pth")
    load_torchvision_backbone(small_encoder, tmp_path / "vgg16.pth")
    for index in (0, 2, 5, 7, 10, 12, 14):
        torch.testing.assert_close(small_encoder.backbone[index].weight, vgg.features[index].weight)
    # and through the ImageNet entry point with an explicit file
    full = NetVLADEncoder(EncoderConfig(image_width=64, image_height=48))
    load_imagenet_backbone(full, tmp_path / "vgg16.pth")
    torch.testing.assert_close(full.backbone[28].bias, vgg.features[28].bias)


def test_torchvision_file_with_wrong_keys_is_rejected(tmp_path, small_encoder):
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"missing keys \['features.0.bias'"):
        load_torchvision_backbone(small_encoder, tmp_path / "bad.pth")


def test_imagenet_offline_error_says_how_to_provide_the_file(monkeypatch, small_encoder):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsNotFoundError, match=r"vgg16-397923af\.pth.*--backbone-weights PATH"):
        load_imagenet_backbone(small_encoder)
