"""Fixtures for the seqvpr.vpr tests: small seeded encoders and images."""

import pytest
import torch

from seqvpr.vpr import PRESETS, EncoderConfig, NetVLADEncoder


@pytest.fixture
def small_config() -> EncoderConfig:
    """The `small` preset at a tiny input size (fast on a CPU)."""
    return EncoderConfig(**{**PRESETS["small"].to_dict(), "image_width": 48, "image_height": 32})


@pytest.fixture
def small_encoder(small_config) -> NetVLADEncoder:
    torch.manual_seed(0)
    return NetVLADEncoder(small_config).eval()


@pytest.fixture
def images() -> torch.Tensor:
    """Four seeded RGB images in [0, 1], shape (4, 3, 32, 48)."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 32, 48, generator=generator)
