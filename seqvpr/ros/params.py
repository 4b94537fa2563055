"""The localization node's parameters, checked the same way for ROS 1 and ROS 2.

``config/localization_node.yaml`` holds them in the ROS 2 ``ros__parameters`` form, every
key commented; ROS 2 reads it with ``--ros-args --params-file``, ROS 1 loads the same
file with ``rosparam`` in the launch file. Both nodes hand their parameters to
:func:`node_config_from_parameters`: an unknown name, a value of the wrong type or a
missing required one stops the node with a message naming it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from seqvpr.config import config_from_dict
from seqvpr.errors import ConfigError
from seqvpr.localization.config import LocalizerConfig

__all__ = ["NodeConfig", "node_config_from_parameters", "merge_ros1_parameters", "NODE_NAME"]

NODE_NAME = "seqvpr_localization"
# Parameters that ROS itself declares on every node; not ours to check.
_ROS_OWNED = ("use_sim_time", "start_type_description_service", "qos_overrides")


@dataclass(frozen=True)
class NodeConfig:
    """What the localization node reads from its parameters.

    Attributes:
        map_dir: the map folder (``seqvpr map build`` output). Required.
        model: the encoder checkpoint the map was built with. Required.
        image_topic: camera topic (REP 144 relative name, remapped by the launch file).
        image_transport: ``raw`` subscribes ``image_topic`` (sensor_msgs/Image);
            ``compressed`` subscribes ``image_topic``/compressed (sensor_msgs/CompressedImage).
        pose_topic: output geometry_msgs/PoseWithCovarianceStamped.
        fix_topic: output sensor_msgs/NavSatFix.
        frame_id: frame of the published pose: a UTM-aligned world frame, in the map's zone.
        queue_size: images waiting for the localizer; the oldest is dropped beyond this.
        heading_stddev_rad: standard deviation reported for the heading.
        diagnostics_period_s: seconds between /diagnostics messages.
        stale_after_s: diagnostics turn STALE when no image came for this long.
        odometry_topic: nav_msgs/Odometry input; empty (the default): no odometry, keyframes
            on time. When set, ``localizer.query_spacing_m`` must be set too: keyframes then
            follow the odometry (see :mod:`seqvpr.ros.odometry`).
        odometry_hold_s: an image up to this many seconds newer than the newest odometry
            reading gets that reading; a later one gets none.
        localizer: the streaming localizer's settings (see ``config/localization.yaml``).
    """

    map_dir: str
    model: str
    image_topic: str = "image"
    image_transport: Literal["raw", "compressed"] = "raw"
    pose_topic: str = "pose"
    fix_topic: str = "fix"
    frame_id: str = "utm"
    queue_size: int = 2
    heading_stddev_rad: float = 0.35
    diagnostics_period_s: float = 1.0
    stale_after_s: float = 2.0
    odometry_topic: str = ""
    odometry_hold_s: float = 0.2
    localizer: LocalizerConfig = field(default_factory=LocalizerConfig)

    def __post_init__(self) -> None:
        for name in ("map_dir", "model"):
            if not getattr(self, name):
                raise ConfigError(f"parameter {name} must name a path, got an empty string")
        if self.image_transport not in ("raw", "compressed"):
            raise ConfigError(f"parameter image_transport must be 'raw' or 'compressed', got {self.image_transport!r}")
        if self.queue_size < 1:
            raise ConfigError(f"parameter queue_size must be >= 1, got {self.queue_size}")
        for name in ("heading_stddev_rad", "diagnostics_period_s", "stale_after_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"parameter {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("image_topic", "pose_topic", "fix_topic", "frame_id"):
            if not getattr(self, name):
                raise ConfigError(f"parameter {name} must not be empty")
        if not (math.isfinite(self.odometry_hold_s) and self.odometry_hold_s >= 0):
            raise ConfigError(f"parameter odometry_hold_s must be a finite number >= 0, got {self.odometry_hold_s!r}")
        if self.odometry_topic and self.localizer.query_spacing_m is None:
            raise ConfigError(
                f"parameter odometry_topic is {self.odometry_topic!r} but localizer.query_spacing_m is not set: "
                "odometry is used only when keyframes follow it; set localizer.query_spacing_m (metres between "
                "keyframes, e.g. 8) or leave odometry_topic empty to keyframe on time")

    @property
    def subscribed_topic(self) -> str:
        """The image topic actually subscribed (``.../compressed`` for compressed images)."""
        return f"{self.image_topic}/compressed" if self.image_transport == "compressed" else self.image_topic


def _nest(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted names (ROS 2: ``localizer.query_length``) as nested mappings."""
    nested: dict[str, Any] = {}
    for name, value in parameters.items():
        *parents, leaf = name.split(".")
        level = nested
        for parent in parents:
            level = level.setdefault(parent, {})
            if not isinstance(level, dict):
                raise ConfigError(f"parameter {name!r} conflicts with parameter {parent!r}")
        if isinstance(value, Mapping):
            level.setdefault(leaf, {}).update(_nest(value))
        else:
            level[leaf] = value
    return nested


def node_config_from_parameters(parameters: Mapping[str, Any], source: str) -> NodeConfig:
    """Checks a node's parameters and builds its :class:`NodeConfig`.

    Args:
        parameters: name -> value, with dotted names or nested mappings for ``localizer``.
        source: where they came from (node name, params file), for error messages.

    Raises:
        ConfigError: a required parameter is missing, or one is unknown or mistyped;
            the message names it and ``source``.
    """
    nested = _nest({name: value for name, value in parameters.items() if name.split(".")[0] not in _ROS_OWNED})
    required = [item.name for item in dataclasses.fields(NodeConfig)
                if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in nested]
    if missing:
        raise ConfigError(f"{source}: missing required parameter(s) {missing}")
    try:
        return config_from_dict(NodeConfig, nested, f"{source}: parameters")
    except ConfigError as error:
        if str(error).startswith(source):
            raise
        raise ConfigError(f"{source}: {error}") from None


def merge_ros1_parameters(private: Mapping[str, Any]) -> dict[str, Any]:
    """A ROS 1 node's private parameters with the ROS 2 file layout unwrapped.

    ``rosparam load`` of ``config/localization_node.yaml`` inside the node puts the values
    under ``<node name>/ros__parameters``; they are lifted to the top, and parameters
    set directly on the node (``<param>`` tags) override them.
    """
    merged: dict[str, Any] = {}
    direct: dict[str, Any] = {}
    for name, value in private.items():
        if isinstance(value, Mapping) and set(value) == {"ros__parameters"}:
            merged.update(_nest(value["ros__parameters"]))
        else:
            direct[name] = value
    for name, value in _nest(direct).items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    return merged
