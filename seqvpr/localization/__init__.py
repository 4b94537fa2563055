"""Streaming localization against a map of reference traverses (no ROS).

- :mod:`seqvpr.localization.map`: :class:`Map` folders (memory-mapped arrays, faiss index),
  :func:`load_map`, :func:`build_map`.
- :mod:`seqvpr.localization.streaming`: :class:`StreamingLocalizer` (``update`` per frame
  -> :class:`Estimate`), :class:`Status`.
- :mod:`seqvpr.localization.proposal`: candidate windows and their batched alignment.
- :mod:`seqvpr.localization.calibration`: confidence and covariance, fitted on validation.
- :mod:`seqvpr.localization.replay`: offline replay of traverses and bags, summaries, plots.
- :mod:`seqvpr.localization.bags`: ROS 1 / ROS 2 bags with ``rosbags`` (no ROS install).

Importing this package imports neither faiss, OpenCV, matplotlib nor any ROS package.
"""

from seqvpr.localization.calibration import Calibration
from seqvpr.localization.config import LocalizerConfig, MapConfig
from seqvpr.localization.map import Map, MapPart, build_map, load_map, write_map
from seqvpr.localization.streaming import Estimate, Status, StreamingLocalizer

__all__ = [
    "Calibration",
    "Estimate",
    "LocalizerConfig",
    "Map",
    "MapConfig",
    "MapPart",
    "Status",
    "StreamingLocalizer",
    "build_map",
    "load_map",
    "write_map",
]
