"""A small synthetic world, an untrained encoder and a map of its reference traverse (once per session)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from seqvpr.data.prepare import PrepareConfig, prepare_robotcar
from seqvpr.data.robotcar import RobotCarConfig
from seqvpr.data.synth.drive import SynthConfig, synthesize
from seqvpr.data.synth.render import Camera
from seqvpr.data.synth.world import WorldConfig
from seqvpr.data.traverse import Traverse, read_traverse

SMALL = SynthConfig(
    world=WorldConfig(route_length_m=600.0, street_length_m=(120.0, 200.0)),
    camera=Camera(width=64, height=48),
    conditions=("overcast", "sunny", "snow"),
    frame_rate_hz=4.0,
)


@dataclass
class LocalizationWorld:
    prepared: Path
    reference: Traverse
    queries: list[Traverse]
    model: Path
    map_dir: Path


def make_encoder(reference: Traverse, checkpoint: Path, seed: int = 0) -> Path:
    """The demo's kind of untrained encoder (VGG16 conv1 block, k-means NetVLAD), small input."""
    from seqvpr.data.images import read_rgb
    from seqvpr.vpr import EncoderConfig, NetVLADEncoder, images_to_tensor, save_encoder

    torch.manual_seed(seed)
    encoder = NetVLADEncoder(EncoderConfig(backbone_blocks=1, num_clusters=32, image_width=64,
                                           image_height=48)).eval()
    picks = np.linspace(0, len(reference) - 1, 60).round().astype(int)
    images = [read_rgb(reference.image_path(i)) for i in picks]
    encoder.initialize_clusters([images_to_tensor(images, encoder.config)], seed=seed)
    save_encoder(encoder, checkpoint)
    return checkpoint


@pytest.fixture(scope="session")
def encoder_factory():
    """:func:`make_encoder`, for tests that need a second encoder (conftest is no module to import)."""
    return make_encoder


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> LocalizationWorld:
    from seqvpr.localization import build_map

    root = tmp_path_factory.mktemp("localization_world")
    truths = synthesize(SMALL, root / "raw", seed=5)
    for truth in truths:
        prepare_robotcar(root / "raw" / truth.name, root / "prepared", RobotCarConfig(condition=truth.condition),
                         PrepareConfig(long_side=64))
    traverses = [read_traverse(root / "prepared" / truth.name) for truth in truths]
    model = make_encoder(traverses[0], root / "encoder.pt")
    build_map([traverses[0].root], model, root / "map", progress=False)
    return LocalizationWorld(root / "prepared", traverses[0], traverses[1:], model, root / "map")


@pytest.fixture(scope="session")
def query_descriptors(world) -> dict[str, np.ndarray]:
    """Descriptors of every frame of each query traverse, by traverse name."""
    from seqvpr.extraction import encode_images
    from seqvpr.vpr import load_encoder

    encoder = load_encoder(world.model).eval()
    result = {}
    for query in world.queries:
        values, kept, _ = encode_images(encoder, [query.image_path(i) for i in range(len(query))])
        assert len(kept) == len(query)
        result[query.name] = values
    return result
