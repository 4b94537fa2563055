"""Checks of seqvpr.ros.conversions against one ROS version's real message classes.

A process can hold only one ROS version's messages, so these checks are plain functions:
the ROS 2 test runs them in the pytest process, the ROS 1 test runs this file as a
script (``python conversion_checks.py ros1``), which exits non-zero on the first failure.
Every output message is serialized and read back with the version's own serializer.
"""

from __future__ import annotations

import io
import math
import sys
from types import SimpleNamespace

import numpy as np


def load(version: str) -> SimpleNamespace:
    """The message classes and serializer round trip of ``version`` ('ros1' or 'ros2')."""
    if version == "ros1":
        from seqvpr.ros.ros1_path import enable_ros1_imports

        enable_ros1_imports()
        import rospy

        def round_trip(message):
            buffer = io.BytesIO()
            message.serialize(buffer)
            copy = type(message)()
            copy.deserialize(buffer.getvalue())
            return copy

        stamp_type = rospy.Time
    else:
        from builtin_interfaces.msg import Time
        from rclpy.serialization import deserialize_message, serialize_message

        def round_trip(message):
            return deserialize_message(serialize_message(message), type(message))

        stamp_type = Time
    from sensor_msgs.msg import CompressedImage, Image

    from seqvpr.ros.conversions import MessageTypes

    return SimpleNamespace(version=version, Image=Image, CompressedImage=CompressedImage, Time=stamp_type,
                           types=MessageTypes.load(), round_trip=round_trip)


def _estimate(status: str, **overrides):
    from seqvpr.localization import Estimate, Status

    fields = dict(
        stamp_s=1418381798.0625, status=Status[status], easting=620030.25, northing=5735800.5, utm_zone=30,
        utm_letter="U", heading_rad=2.5, latitude=51.76, longitude=-1.26,
        covariance=np.array([[4.0, 0.5], [0.5, 9.0]]), confidence=0.8, traverse="overcast",
        reference_time_s=1418381000.5, latency_s=0.02, is_keyframe=True,
    )
    fields.update(overrides)
    names = {name for name in Estimate.__dataclass_fields__}
    return Estimate(**{name: value for name, value in fields.items() if name in names})


def check_stamps(ros: SimpleNamespace) -> None:
    from seqvpr.ros.conversions import seconds_to_stamp, stamp_to_seconds

    for seconds, whole, nanoseconds in [(0.0, 0, 0), (1.5, 1, 500_000_000), (1418381798.0625, 1418381798, 62_500_000),
                                        (7.9999999999, 8, 0), (12.000000001, 12, 1)]:
        stamp = seconds_to_stamp(seconds, ros.Time)
        assert isinstance(stamp, ros.Time)
        got = (stamp.sec, stamp.nanosec) if ros.version == "ros2" else (stamp.secs, stamp.nsecs)
        assert got == (whole, nanoseconds), (seconds, got)
        assert abs(stamp_to_seconds(stamp) - seconds) < 1e-9 * max(1.0, seconds)
    for bad in (-1.0, float("nan"), float("inf")):
        try:
            seconds_to_stamp(bad, ros.Time)
        except ValueError:
            continue
        raise AssertionError(f"seconds_to_stamp accepted {bad}")


def _raw_message(ros, pixels: np.ndarray, encoding: str, padding: int):
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, padding), 77, np.uint8)], axis=1)
    message = ros.Image()
    message.height, message.width, message.encoding = height, width, encoding
    message.step = padded.shape[1]
    message.data = padded.tobytes()
    return ros.round_trip(message)


def check_raw_images(ros: SimpleNamespace) -> None:
    from seqvpr.data.images import BAYER_PATTERNS, bayer_mosaic
    from seqvpr.errors import SeqvprError
    from seqvpr.ros.conversions import image_to_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    alpha = np.full((6, 10, 1), 200, np.uint8)
    cases = {
        "rgb8": (rgb, rgb),
        "bgr8": (rgb[:, :, ::-1], rgb),
        "rgba8": (np.concatenate([rgb, alpha], axis=2), rgb),
        "bgra8": (np.concatenate([rgb[:, :, ::-1], alpha], axis=2), rgb),
        "mono8": (rgb[:, :, 1], np.repeat(rgb[:, :, 1:2], 3, axis=2)),
    }
    for encoding, (pixels, expected) in cases.items():
        for padding in (0, 3):
            decoded = image_to_rgb(_raw_message(ros, np.ascontiguousarray(pixels), encoding, padding))
            assert decoded.dtype == np.uint8 and decoded.shape == (6, 10, 3), (encoding, decoded.shape)
            assert np.array_equal(decoded, expected), encoding
    for pattern, sites in BAYER_PATTERNS.items():
        decoded = image_to_rgb(_raw_message(ros, bayer_mosaic(rgb, pattern), f"bayer_{pattern}8", 2))
        assert decoded.shape == (6, 10, 3)
        # Away from the border, a demosaic keeps every sampled value where it was sampled.
        sampled = [(0, *sites["r"]), (2, *sites["b"])] + [(1, row, column) for row, column in sites["g"]]
        for channel, row, column in sampled:
            keep = np.zeros((6, 10), bool)
            keep[row::2, column::2] = True
            keep[[0, -1], :] = keep[:, [0, -1]] = False
            assert np.array_equal(decoded[keep, channel], rgb[keep, channel]), (pattern, channel)
    for encoding, step, data, words in [("16UC1", 20, bytes(120), "not supported"),
                                        ("rgb8", 30, bytes(100), "does not fit"),
                                        ("rgb8", 20, bytes(200), "does not fit")]:
        message = ros.Image()
        message.height, message.width, message.encoding, message.step, message.data = 6, 10, encoding, step, data
        try:
            image_to_rgb(message)
        except SeqvprError as error:
            assert words in str(error), str(error)
            continue
        raise AssertionError(f"{encoding} step {step} with {len(data)} bytes was accepted")


def check_compressed_images(ros: SimpleNamespace) -> None:
    import cv2

    from seqvpr.errors import SeqvprError
    from seqvpr.ros.conversions import compressed_image_to_rgb

    rng = np.random.default_rng(1)
    rgb = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    for extension, tolerance in ((".png", 0.0), (".jpg", 12.0)):
        ok, encoded = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        message = ros.CompressedImage()
        message.format = "rgb8; jpeg compressed bgr8" if extension == ".jpg" else "png"
        message.data = encoded.tobytes()
        decoded = compressed_image_to_rgb(ros.round_trip(message))
        assert decoded.shape == rgb.shape
        assert np.abs(decoded.astype(float) - rgb).mean() <= tolerance, extension
    message = ros.CompressedImage()
    message.format, message.data = "jpeg", b"\xff\xd8 not really a jpeg"
    try:
        compressed_image_to_rgb(message)
    except SeqvprError as error:
        assert "does not decode" in str(error)
    else:
        raise AssertionError("garbage bytes decoded")


def check_pose_and_fix(ros: SimpleNamespace) -> None:
    from seqvpr.ros.conversions import UNKNOWN_VARIANCE, estimate_to_fix, estimate_to_pose, seconds_to_stamp

    stamp = seconds_to_stamp(1418381798.0625, ros.Time)
    estimate = _estimate("TRACKING")
    pose = ros.round_trip(estimate_to_pose(estimate, stamp, "utm", ros.types, heading_stddev_rad=0.2))
    assert pose.header.frame_id == "utm" and pose.header.stamp == stamp
    position, orientation = pose.pose.pose.position, pose.pose.pose.orientation
    assert (position.x, position.y, position.z) == (620030.25, 5735800.5, 0.0)
    assert math.isclose(2 * math.atan2(orientation.z, orientation.w), 2.5, abs_tol=1e-12)
    assert orientation.x == orientation.y == 0.0
    covariance = np.array(pose.pose.covariance).reshape(6, 6)
    expected = np.diag([0.0, 0.0, UNKNOWN_VARIANCE, UNKNOWN_VARIANCE, UNKNOWN_VARIANCE, 0.04])
    expected[:2, :2] = [[4.0, 0.5], [0.5, 9.0]]
    assert np.allclose(covariance, expected)
    no_heading = estimate_to_pose(_estimate("TRACKING", heading_rad=float("nan")), stamp, "utm", ros.types, 0.2)
    assert no_heading.pose.pose.orientation.w == 1.0 and no_heading.pose.covariance[35] == UNKNOWN_VARIANCE

    fix = ros.round_trip(estimate_to_fix(estimate, stamp, "camera", ros.types))
    assert fix.header.frame_id == "camera" and fix.header.stamp == stamp
    assert (fix.latitude, fix.longitude) == (51.76, -1.26) and math.isnan(fix.altitude)
    assert fix.status.status == ros.types.NavSatStatus.STATUS_FIX
    assert fix.position_covariance_type == ros.types.NavSatFix.COVARIANCE_TYPE_APPROXIMATED
    assert np.allclose(np.array(fix.position_covariance).reshape(3, 3),
                       [[4.0, 0.5, 0.0], [0.5, 9.0, 0.0], [0.0, 0.0, UNKNOWN_VARIANCE]])


def check_diagnostics(ros: SimpleNamespace) -> None:
    from seqvpr.ros.conversions import diagnostics_message, seconds_to_stamp

    levels = ros.types.DiagnosticStatus
    stamp = seconds_to_stamp(100.0, ros.Time)
    counters = {"received": 12, "dropped": 3, "processed": 9}
    cases = [("TRACKING", 0.1, levels.OK, "TRACKING"), ("INITIALIZING", 0.1, levels.WARN, "INITIALIZING"),
             ("LOST", 0.1, levels.ERROR, "LOST"), ("TRACKING", 5.0, levels.STALE, "TRACKING; no image for 5.0 s")]
    for state, since, level, text in cases:
        array = ros.round_trip(diagnostics_message(
            stamp, "node: localization", _estimate(state), counters, [0.05, 0.01, 0.03, 0.02], ros.types, since, 2.0))
        assert array.header.stamp == stamp and len(array.status) == 1
        status = array.status[0]
        assert (status.name, status.level, status.message) == ("node: localization", level, text)
        values = {item.key: item.value for item in status.values}
        assert values["status"] == state and values["confidence"] == "0.800"
        assert (values["received"], values["dropped"], values["processed"]) == ("12", "3", "9")
        assert values["latency_last_s"] == "0.0200" and values["latency_median_s"] == "0.0250"
        assert values["latency_p95_s"] == "0.0470"
    empty = diagnostics_message(stamp, "node: localization", None, counters, [], ros.types, None, 2.0).status[0]
    assert empty.level == levels.STALE and empty.message == "no image received yet"
    # A warning (silent odometry) turns OK into WARN and leaves worse levels as they are.
    extra = {"odometry_topic": "/odom", "odometry_age_s": "3.500"}
    for state, since, level, text in [("TRACKING", 0.1, levels.WARN, "TRACKING; no odometry for 3.5 s"),
                                      ("LOST", 0.1, levels.ERROR, "LOST; no odometry for 3.5 s"),
                                      ("TRACKING", 5.0, levels.STALE,
                                       "TRACKING; no image for 5.0 s; no odometry for 3.5 s")]:
        status = ros.round_trip(diagnostics_message(
            stamp, "node: localization", _estimate(state), counters, [0.02], ros.types, since, 2.0, extra,
            "no odometry for 3.5 s")).status[0]
        assert (status.level, status.message) == (level, text)
        values = {item.key: item.value for item in status.values}
        assert (values["odometry_topic"], values["odometry_age_s"], values["received"]) == ("/odom", "3.500", "12")


def check_odometry(ros: SimpleNamespace) -> None:
    from nav_msgs.msg import Odometry

    from seqvpr.ros.conversions import load_odometry_type, odometry_reading, seconds_to_stamp

    assert load_odometry_type("hint") is Odometry
    message = Odometry()
    message.header.stamp = seconds_to_stamp(1418381798.0625, ros.Time)
    message.header.frame_id, message.child_frame_id = "odom", "base_link"
    message.pose.pose.position.x, message.pose.pose.position.y, message.pose.pose.position.z = 12.5, -3.25, 9.0
    assert odometry_reading(ros.round_trip(message)) == (1418381798.0625, 12.5, -3.25)


CHECKS = [check_stamps, check_raw_images, check_compressed_images, check_pose_and_fix, check_diagnostics,
          check_odometry]

if __name__ == "__main__":
    messages = load(sys.argv[1])
    for check in CHECKS:
        check(messages)
        print(f"{check.__name__}: ok")
