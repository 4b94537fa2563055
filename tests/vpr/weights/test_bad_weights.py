"""Weights files that cannot be used are refused with their name: NaN weights, damaged or
non-PyTorch files, a .mat file that is not the MATLAB NetVLAD release."""

import numpy as np
import pytest
import torch

from seqvpr.errors import SeqvprError
from seqvpr.vpr import PRESETS, NetVLADEncoder, load_encoder, save_encoder
from seqvpr.vpr.weights import load_imagenet_backbone


def small_encoder() -> NetVLADEncoder:
    torch.manual_seed(0)
    return NetVLADEncoder(PRESETS["small"]).eval()


def test_checkpoint_with_nan_weights_is_refused_naming_the_tensor(tmp_path):
    encoder = small_encoder()
    state_key = next(iter(encoder.state_dict()))
    save_encoder(encoder, tmp_path / "good.pt")
    with torch.no_grad():
        encoder.state_dict()[state_key].view(-1)[0] = float("nan")
    save_encoder(encoder, tmp_path / "nan.pt")
    assert load_encoder(tmp_path / "good.pt").config == encoder.config
    with pytest.raises(SeqvprError, match=rf"nan.pt: {state_key} holds .*not finite"):
        load_encoder(tmp_path / "nan.pt")


@pytest.mark.parametrize("damage", [lambda data: data[: len(data) // 2], lambda data: b"", lambda data: b"hello\n"],
                         ids=["truncated", "empty", "text"])
def test_damaged_checkpoint_is_named(tmp_path, damage):
    save_encoder(small_encoder(), tmp_path / "model.pt")
    (tmp_path / "model.pt").write_bytes(damage((tmp_path / "model.pt").read_bytes()))
    with pytest.raises(SeqvprError, match=r"model.pt: not a readable"):
        load_encoder(tmp_path / "model.pt")


def test_random_mat_file_is_named(tmp_path):
    (tmp_path / "net.mat").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(SeqvprError, match=r"net.mat: not a MATLAB"):
        load_encoder(tmp_path / "net.mat")


def test_backbone_weights_with_nan_or_damage_are_named(tmp_path):
    encoder = small_encoder()
    state = {f"features.{key}": value.clone() for key, value in encoder.backbone.state_dict().items()}
    torch.save(state, tmp_path / "vgg16.pth")
    load_imagenet_backbone(small_encoder(), tmp_path / "vgg16.pth")
    first = next(iter(state))
    state[first].view(-1)[:3] = float("inf")
    torch.save(state, tmp_path / "vgg16.pth")
    with pytest.raises(SeqvprError, match=rf"vgg16.pth: {first} holds 3 of .*not finite"):
        load_imagenet_backbone(small_encoder(), tmp_path / "vgg16.pth")
    (tmp_path / "vgg16.pth").write_bytes((tmp_path / "vgg16.pth").read_bytes()[:1000])
    with pytest.raises(SeqvprError, match=r"vgg16.pth: not a readable PyTorch file"):
        load_imagenet_backbone(small_encoder(), tmp_path / "vgg16.pth")
