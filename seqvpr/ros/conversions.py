"""Conversions between ROS messages and seqvpr values, written once for ROS 1 and ROS 2.

The message layouts used here agree between the two ROS versions (and the ``rosbags``
types), field by field, so one function serves both; only the stamp type differs
(ROS 1 ``secs``/``nsecs``, ROS 2 ``sec``/``nanosec``). Message classes are passed in as
a :class:`MessageTypes`, loaded by the node of either version, so this module imports
no ROS package itself.

Frames and units follow REP 103: the pose is (easting, northing, 0) in metres in the
UTM zone of the map, orientation a rotation about z by the ENU heading (counter-clockwise
from grid east). Covariances are row-major; values a 2-D localizer does not estimate
(z, roll, pitch, altitude) carry :data:`UNKNOWN_VARIANCE`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from seqvpr.data.images import demosaic
from seqvpr.errors import SeqvprError

__all__ = [
    "SUPPORTED_ENCODINGS",
    "UNKNOWN_VARIANCE",
    "MessageTypes",
    "stamp_to_seconds",
    "seconds_to_stamp",
    "image_to_rgb",
    "compressed_image_to_rgb",
    "estimate_to_pose",
    "estimate_to_fix",
    "load_odometry_type",
    "odometry_reading",
    "diagnostics_message",
]

# Variance (m^2 or rad^2) reported for a quantity the localizer does not estimate; large
# enough that a filter (e.g. robot_localization) gives it no weight.
UNKNOWN_VARIANCE = 1e6

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_BAYER = {"bayer_rggb8": "rggb", "bayer_bggr8": "bggr", "bayer_gbrg8": "gbrg", "bayer_grbg8": "grbg"}
SUPPORTED_ENCODINGS = tuple(_CHANNELS) + tuple(_BAYER)


@dataclasses.dataclass(frozen=True)
class MessageTypes:
    """The message classes of one ROS version (both versions name them alike)."""

    PoseWithCovarianceStamped: type
    NavSatFix: type
    NavSatStatus: type
    DiagnosticArray: type
    DiagnosticStatus: type
    KeyValue: type

    @classmethod
    def load(cls) -> MessageTypes:
        """Imports the classes from ``geometry_msgs``, ``sensor_msgs``, ``diagnostic_msgs``.

        Whichever ROS version's packages come first on the import path are used; a ROS 1
        process calls :func:`seqvpr.ros.ros1_path.enable_ros1_imports` before this.
        """
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from sensor_msgs.msg import NavSatFix, NavSatStatus

        return cls(PoseWithCovarianceStamped, NavSatFix, NavSatStatus, DiagnosticArray, DiagnosticStatus, KeyValue)


def stamp_to_seconds(stamp: Any) -> float:
    """A ROS 1 (``secs``, ``nsecs``) or ROS 2 (``sec``, ``nanosec``) stamp as float seconds."""
    if hasattr(stamp, "nanosec"):
        return stamp.sec + stamp.nanosec * 1e-9
    return stamp.secs + stamp.nsecs * 1e-9


def seconds_to_stamp(seconds: float, stamp_type: type) -> Any:
    """Float seconds as a stamp of ``stamp_type`` (``builtin_interfaces.msg.Time`` or ``rospy.Time``).

    Rounded to the nearest nanosecond. Float seconds since the epoch resolve about
    0.25 µs, so a node copies the incoming header stamp to its outputs rather than
    rebuilding it from seconds.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a stamp needs finite, non-negative seconds, got {seconds!r}")
    whole = math.floor(seconds)
    nanoseconds = round((seconds - whole) * 1e9)
    if nanoseconds >= 1_000_000_000:
        whole, nanoseconds = whole + 1, nanoseconds - 1_000_000_000
    stamp = stamp_type()
    if hasattr(stamp, "nanosec"):
        stamp.sec, stamp.nanosec = int(whole), int(nanoseconds)
    else:
        stamp.secs, stamp.nsecs = int(whole), int(nanoseconds)
    return stamp


def image_to_rgb(message: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` as an RGB array, without cv_bridge.

    Args:
        message: anything with ``height``, ``width``, ``encoding``, ``step`` and ``data``
            (ROS 1, ROS 2 or ``rosbags`` messages). Encodings: rgb8, bgr8, rgba8, bgra8,
            mono8 (replicated to three channels) and bayer_{rggb,bggr,gbrg,grbg}8
            (demosaiced; the name gives the 2x2 tile starting at pixel (0, 0)).

    Returns:
        shape (height, width, 3) uint8, RGB.

    Raises:
        SeqvprError: an unsupported encoding, or a buffer that does not fit the header.
    """
    encoding = message.encoding.lower()
    if encoding not in _CHANNELS and encoding not in _BAYER:
        raise SeqvprError(
            f"image encoding {message.encoding!r} is not supported; use one of {list(SUPPORTED_ENCODINGS)}"
        )
    channels = _CHANNELS.get(encoding, 1)
    height, width, step = int(message.height), int(message.width), int(message.step)
    data = np.frombuffer(message.data, dtype=np.uint8)
    if height < 1 or width < 1 or step < width * channels or data.size < height * step:
        raise SeqvprError(
            f"{message.encoding} image {width}x{height} with step {step} does not fit its {data.size}-byte buffer"
        )
    pixels = data[: height * step].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if encoding in _BAYER:
        return demosaic(np.ascontiguousarray(pixels[:, :, 0]), _BAYER[encoding])
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[:, :, :3] if encoding.startswith("rgb") else pixels[:, :, 2::-1]
    return np.ascontiguousarray(rgb)


def compressed_image_to_rgb(message: Any) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as RGB, shape (H, W, 3) uint8.

    Raises:
        SeqvprError: the bytes do not decode as an image.
    """
    import cv2

    data = np.frombuffer(message.data, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise SeqvprError(f"compressed image (format {message.format!r}, {data.size} bytes) does not decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_odometry_type(install_hint: str) -> type:
    """``nav_msgs.msg.Odometry`` of the ROS version whose packages come first on the path.

    Args:
        install_hint: how to install nav_msgs for this ROS version, for the error message.

    Raises:
        SeqvprError: nav_msgs does not import.
    """
    try:
        from nav_msgs.msg import Odometry
    except ImportError as error:
        raise SeqvprError(f"parameter odometry_topic needs nav_msgs/Odometry, which does not import ({error}); "
                          f"{install_hint}") from None
    return Odometry


def odometry_reading(message: Any) -> tuple[float, float, float]:
    """A ``nav_msgs/Odometry`` as (stamp seconds, x, y): its header stamp and ``pose.pose.position``."""
    position = message.pose.pose.position
    return stamp_to_seconds(message.header.stamp), float(position.x), float(position.y)


def _yaw_quaternion(orientation: Any, yaw_rad: float) -> None:
    orientation.x = 0.0
    orientation.y = 0.0
    orientation.z = math.sin(yaw_rad / 2.0)
    orientation.w = math.cos(yaw_rad / 2.0)


def estimate_to_pose(
    estimate: Any, stamp: Any, frame_id: str, types: MessageTypes, heading_stddev_rad: float
) -> Any:
    """A localized estimate as ``geometry_msgs/PoseWithCovarianceStamped``.

    Args:
        estimate: a :class:`seqvpr.localization.Estimate` with a position.
        stamp: the header stamp (the localized image's own stamp object).
        frame_id: the UTM-aligned frame of the pose.
        types: the message classes.
        heading_stddev_rad: standard deviation reported for the heading (it is the
            matched reference frame's direction of travel, not estimated with an error).

    Returns:
        The message; covariance rows/columns are (x, y, z, roll, pitch, yaw).
    """
    message = types.PoseWithCovarianceStamped()
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    pose = message.pose.pose
    pose.position.x = float(estimate.easting)
    pose.position.y = float(estimate.northing)
    pose.position.z = 0.0
    covariance = np.zeros((6, 6))
    covariance[:2, :2] = np.asarray(estimate.covariance, dtype=float)
    covariance[2, 2] = covariance[3, 3] = covariance[4, 4] = UNKNOWN_VARIANCE
    heading = float(estimate.heading_rad)
    if math.isfinite(heading):
        _yaw_quaternion(pose.orientation, heading)
        covariance[5, 5] = heading_stddev_rad**2
    else:
        _yaw_quaternion(pose.orientation, 0.0)
        covariance[5, 5] = UNKNOWN_VARIANCE
    message.pose.covariance = covariance.ravel().tolist()
    return message


def estimate_to_fix(estimate: Any, stamp: Any, frame_id: str, types: MessageTypes) -> Any:
    """A localized estimate as ``sensor_msgs/NavSatFix`` (altitude unknown: NaN).

    The position covariance is ENU (east, north, up), row-major; the UTM grid's small
    rotation against true east (grid convergence, a few degrees) is ignored.
    """
    message = types.NavSatFix()
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    message.status.status = types.NavSatStatus.STATUS_FIX
    message.status.service = 0
    message.latitude = float(estimate.latitude)
    message.longitude = float(estimate.longitude)
    message.altitude = float("nan")
    covariance = np.zeros((3, 3))
    covariance[:2, :2] = np.asarray(estimate.covariance, dtype=float)
    covariance[2, 2] = UNKNOWN_VARIANCE
    message.position_covariance = covariance.ravel().tolist()
    message.position_covariance_type = types.NavSatFix.COVARIANCE_TYPE_APPROXIMATED
    return message


def diagnostics_message(
    stamp: Any,
    name: str,
    estimate: Any | None,
    counters: Mapping[str, int],
    latencies_s: Sequence[float],
    types: MessageTypes,
    seconds_since_image: float | None,
    stale_after_s: float,
    extra_values: Mapping[str, str] | None = None,
    warning: str | None = None,
) -> Any:
    """The node's state as a ``diagnostic_msgs/DiagnosticArray`` with one status.

    Level: OK while TRACKING, WARN while INITIALIZING, ERROR while LOST, STALE when no
    image came for ``stale_after_s`` (or none yet). The message is the localizer status;
    the values hold confidence, latency (last, median, 95th percentile over
    ``latencies_s``), the frame counters and the match.

    Args:
        stamp: header stamp (now).
        name: status name, e.g. ``seqvpr_localization: localization``.
        estimate: the latest estimate, or None before the first frame.
        counters: frame counters (queue and localizer), name -> count.
        latencies_s: recent image-in to pose-out latencies, seconds.
        types: the message classes.
        seconds_since_image: time since the last image arrived, None if none did.
        stale_after_s: silence after which the level is STALE.
        extra_values: further key-value pairs, appended after the counters.
        warning: a problem to report beside the status (e.g. silent odometry): appended to
            the message after ``; ``, and an OK level becomes WARN.
    """
    levels = types.DiagnosticStatus
    status = types.DiagnosticStatus()
    status.name = name
    status.hardware_id = ""
    values: dict[str, str] = {}
    if estimate is None:
        status.level, status.message = levels.STALE, "no image received yet"
    else:
        state = estimate.status.name
        status.level = {"TRACKING": levels.OK, "INITIALIZING": levels.WARN}.get(state, levels.ERROR)
        status.message = state
        values.update(
            status=state,
            stamp_s=f"{estimate.stamp_s:.6f}",
            confidence=f"{estimate.confidence:.3f}",
            traverse=str(estimate.traverse or ""),
            reference_time_s=f"{estimate.reference_time_s:.6f}" if estimate.reference_time_s is not None else "",
        )
        if seconds_since_image is not None and seconds_since_image > stale_after_s:
            status.level = levels.STALE
            status.message = f"{state}; no image for {seconds_since_image:.1f} s"
    if latencies_s:
        values.update(
            latency_last_s=f"{latencies_s[-1]:.4f}",
            latency_median_s=f"{np.median(latencies_s):.4f}",
            latency_p95_s=f"{np.percentile(latencies_s, 95):.4f}",
        )
    values.update({key: str(value) for key, value in counters.items()})
    values.update(extra_values or {})
    if warning:
        status.message = f"{status.message}; {warning}"
        if status.level == levels.OK:
            status.level = levels.WARN
    status.values = [types.KeyValue(key=key, value=value) for key, value in values.items()]
    array = types.DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
