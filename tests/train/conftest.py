"""A tiny synthetic world with sequence pairs and a tiny encoder, built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from seqvpr.data.pair_files import make_pairs
from seqvpr.data.prepare import PrepareConfig, prepare_robotcar
from seqvpr.data.robotcar import RobotCarConfig
from seqvpr.data.synth.drive import SynthConfig, synthesize
from seqvpr.data.synth.render import Camera
from seqvpr.data.synth.world import WorldConfig
from seqvpr.vpr.weights import save_encoder
from seqvpr.vpr.encoder import EncoderConfig, NetVLADEncoder

WORLD = SynthConfig(
    world=WorldConfig(route_length_m=420.0, street_length_m=(120.0, 200.0)),
    camera=Camera(width=48, height=36),
    conditions=("overcast", "sunny", "snow"),
    frame_rate_hz=4.0,
)
# VGG16 conv1 block + NetVLAD with 4 clusters (256-d) on 48x36 images.
TINY_ENCODER = EncoderConfig(backbone_blocks=1, num_clusters=4, image_width=48, image_height=36)


@dataclass
class PairsWorld:
    prepared: Path
    train: Path
    val: Path
    base_model: Path


@pytest.fixture(scope="session")
def pairs_world(tmp_path_factory) -> PairsWorld:
    """Three traverses of a 420 m route: train pairs (sunny, ~120), val pairs (snow, ~180)."""
    root = tmp_path_factory.mktemp("train_world")
    for truth in synthesize(WORLD, root / "raw", seed=3):
        prepare_robotcar(root / "raw" / truth.name, root / "prepared", RobotCarConfig(condition=truth.condition),
                         PrepareConfig(long_side=48))
    make_pairs(root / "prepared", root / "pairs", train_fraction=0.6, seed=0)
    torch.manual_seed(0)
    save_encoder(NetVLADEncoder(TINY_ENCODER), root / "base.pt")
    return PairsWorld(root / "prepared", root / "pairs" / "train_sunny.csv", root / "pairs" / "val_snow.csv",
                      root / "base.pt")
