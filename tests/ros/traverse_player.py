"""Publishes a prepared traverse's images as a camera would (a helper process of the live tests).

    python traverse_player.py --ros 2 --traverse DIR --first 0 --count 150 --rate-hz 10 --log FILE

Each image goes out with its traverse timestamp as header stamp, ``rgb8`` on ``image``
(raw) or lossless PNG on ``image/compressed``, at ``--rate-hz`` wall-clock rate, once a
subscriber is connected. Every publication is logged to ``--log`` as
``index stamp_sec stamp_nanosec wall_time_s`` (flushed at once, so a killed player leaves a full log).
With ``--go FILE`` it loads its images first and starts when FILE appears. Refuses to run
outside a private loopback-only network namespace.

With ``--odometry-topic`` it also publishes ``nav_msgs/Odometry`` as a robot's odometry
would: ``--odometry-per-frame`` readings per frame interval (stamps at the middles of
equal sub-intervals, so an image stamp lies between two readings, never on one), at the
position interpolated from the traverse's poses relative to its first frame (the
convention of ``seqvpr bag export --odometry``: x east, y north, metres, frame ``odom``).
The odometry leads the images by one reading (the reading just after an image's stamp is
sent before the image, as a camera's latency exceeds an odometry's), so a node can
interpolate every image. Waits for ``--subscribers`` image subscribers (and one odometry
subscriber) before it starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ros_env import require_private_network  # noqa: E402


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ros", choices=("1", "2"), required=True)
    parser.add_argument("--traverse", type=Path, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate-hz", type=float, required=True)
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    parser.add_argument("--topic", default="image")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--go", type=Path, help="after loading the images, wait until this file exists")
    parser.add_argument("--subscribers", type=int, default=1, help="image subscribers to wait for")
    parser.add_argument("--odometry-topic", help="also publish nav_msgs/Odometry here")
    parser.add_argument("--odometry-per-frame", type=int, default=4)
    return parser.parse_args(argv)


def _fill(message, pixels: np.ndarray, transport: str) -> None:
    if transport == "compressed":
        import cv2

        ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        assert ok
        message.format = "png"
        message.data = encoded.tobytes()
    else:
        message.height, message.width = pixels.shape[:2]
        message.encoding, message.step = "rgb8", pixels.shape[1] * 3
        message.data = pixels.tobytes()


def odometry_positions(times_s: np.ndarray, positions: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """The traverse's position at ``stamps`` (linear in time), relative to its first frame; shape (N, 2)."""
    return np.stack([np.interp(stamps, times_s, positions[:, axis]) - positions[0, axis] for axis in (0, 1)], axis=1)


def odometry_schedule(times_s: np.ndarray, indices: range, per_frame: int) -> list[list[float]]:
    """Odometry stamps sent in each frame's slot: slot ``n`` leads with the reading just after
    frame ``n``'s stamp, and its others follow the image (the first slot also leads with the
    reading just before its frame, so that the first image lies between two readings)."""
    def interval(index: int) -> float:
        return times_s[index + 1] - times_s[index] if index + 1 < len(times_s) else times_s[index] - times_s[index - 1]

    slots = []
    for number, index in enumerate(indices):
        step = interval(index) / per_frame
        readings = [times_s[index] + (part + 0.5) * step for part in range(per_frame)]
        if number == 0:
            before = interval(index - 1) if index > 0 else interval(index)
            readings.insert(0, times_s[index] - 0.5 * before / per_frame)
        slots.append(readings)
    return slots


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    require_private_network()
    from seqvpr.data.images import read_rgb
    from seqvpr.data.traverse import read_traverse
    from seqvpr.ros.conversions import seconds_to_stamp

    traverse = read_traverse(args.traverse)
    indices = range(args.first, min(len(traverse), args.first + args.count))
    if args.ros == "1":
        from seqvpr.ros.ros1_path import enable_ros1_imports

        enable_ros1_imports()
        import rospy
        from sensor_msgs.msg import CompressedImage, Image

        rospy.init_node("traverse_player", anonymous=True, disable_signals=True)
        message_type = CompressedImage if args.transport == "compressed" else Image
        topic = f"{args.topic}/compressed" if args.transport == "compressed" else args.topic
        publisher = rospy.Publisher(topic, message_type, queue_size=100)
        stamp_type, connected = rospy.Time, publisher.get_num_connections
        if args.odometry_topic:
            from nav_msgs.msg import Odometry

            odometry_publisher = rospy.Publisher(args.odometry_topic, Odometry, queue_size=100)
            odometry_connected = odometry_publisher.get_num_connections
    else:
        import rclpy
        from builtin_interfaces.msg import Time
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image

        rclpy.init()
        node = rclpy.create_node("traverse_player")
        message_type = CompressedImage if args.transport == "compressed" else Image
        topic = f"{args.topic}/compressed" if args.transport == "compressed" else args.topic
        publisher = node.create_publisher(message_type, topic, qos_profile_sensor_data)
        stamp_type, connected = Time, publisher.get_subscription_count
        if args.odometry_topic:
            from nav_msgs.msg import Odometry

            # Reliable, as robot controllers publish it; the node's best-effort subscription matches it.
            odometry_publisher = node.create_publisher(Odometry, args.odometry_topic, 100)
            odometry_connected = odometry_publisher.get_subscription_count
    messages = []
    for index in indices:
        message = message_type()
        message.header.stamp = seconds_to_stamp(float(traverse.times_s[index]), stamp_type)
        sec, nanosec = (message.header.stamp.sec, message.header.stamp.nanosec) if args.ros == "2" else (
            message.header.stamp.secs, message.header.stamp.nsecs)
        message.header.frame_id = "camera"
        _fill(message, read_rgb(traverse.image_path(index)), args.transport)
        messages.append((index, f"{sec} {nanosec}", message))
    slots: list[list] = [[] for _ in messages]
    if args.odometry_topic:
        for slot, stamps in zip(slots, odometry_schedule(traverse.times_s, indices, args.odometry_per_frame)):
            for stamp_s, position in zip(stamps, odometry_positions(traverse.times_s, traverse.positions,
                                                                    np.array(stamps))):
                odometry = Odometry()
                odometry.header.stamp = seconds_to_stamp(float(stamp_s), stamp_type)
                odometry.header.frame_id, odometry.child_frame_id = "odom", "base_link"
                odometry.pose.pose.position.x, odometry.pose.pose.position.y = float(position[0]), float(position[1])
                odometry.pose.pose.orientation.w = 1.0
                slot.append((stamp_s, odometry))
    while args.go is not None and not args.go.exists():
        time.sleep(0.01)
    deadline = time.monotonic() + 90
    while connected() < args.subscribers or (args.odometry_topic and odometry_connected() == 0):
        if time.monotonic() > deadline:
            sys.exit("no subscriber connected within 90 s")
        time.sleep(0.05)
    time.sleep(0.5)
    start = time.monotonic()
    period_s = 1.0 / args.rate_hz
    with open(args.log, "a", encoding="utf-8") as log:
        for number, (index, stamp, message) in enumerate(messages):
            slot_start = start + number * period_s
            _sleep_until(slot_start)
            image_stamp_s = float(traverse.times_s[index])
            leading = [odometry for stamp_s, odometry in slots[number] if stamp_s <= image_stamp_s + 1e-9]
            leading += [odometry for stamp_s, odometry in slots[number] if stamp_s > image_stamp_s + 1e-9][:1]
            following = slots[number][len(leading):]
            for odometry in leading:
                odometry_publisher.publish(odometry)
            publisher.publish(message)
            log.write(f"{index} {stamp} {time.time():.6f}\n")
            log.flush()
            for part, (_, odometry) in enumerate(following, start=1):
                _sleep_until(slot_start + part * period_s / (len(following) + 1))
                odometry_publisher.publish(odometry)
    time.sleep(0.5)
    return 0


def _sleep_until(monotonic_s: float) -> None:
    delay = monotonic_s - time.monotonic()
    if delay > 0:
        time.sleep(delay)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
