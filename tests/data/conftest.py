"""Tiny synthetic worlds shared by the data tests (rendered once per session)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from seqvpr.data.prepare import PrepareConfig, prepare_robotcar
from seqvpr.data.robotcar import RobotCarConfig
from seqvpr.data.synth.drive import SynthConfig, synthesize
from seqvpr.data.synth.render import Camera
from seqvpr.data.synth.world import WorldConfig
from seqvpr.data.traverse import Traverse

TINY = SynthConfig(
    world=WorldConfig(route_length_m=420.0, street_length_m=(120.0, 200.0)),
    camera=Camera(width=48, height=36),
    conditions=("overcast", "sunny", "snow"),
    frame_rate_hz=4.0,
)


@dataclass
class TinyWorld:
    config: SynthConfig
    seed: int
    raw: Path
    prepared: Path
    truths: list[Traverse]


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> TinyWorld:
    """Three traverses of a 420 m route, 48x36 images, raw and prepared (long side 48)."""
    root = tmp_path_factory.mktemp("tiny_world")
    truths = synthesize(TINY, root / "raw", seed=3)
    for truth in truths:
        prepare_robotcar(
            root / "raw" / truth.name, root / "prepared", RobotCarConfig(condition=truth.condition),
            PrepareConfig(long_side=48),
        )
    return TinyWorld(TINY, 3, root / "raw", root / "prepared", truths)
