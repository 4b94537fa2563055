"""Publishes a prepared traverse's images as a camera would (a helper process of the live tests).

    python traverse_player.py --ros 2 --traverse DIR --first 0 --count 150 --rate-hz 10 --log FILE

Each image goes out with its traverse timestamp as header stamp, ``rgb8`` on ``image``
(raw) or lossless PNG on ``image/compressed``, at ``--rate-hz`` wall-clock rate, once a
subscriber is connected. Every publication is logged to ``--log`` as
``index stamp_sec stamp_nanosec wall_time_s`` (flushed at once, so a killed player leaves a full log).
With ``--go FILE`` it loads its images first and starts when FILE appears. Refuses to run
outside a private loopback-only network namespace.
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
    messages = []
    for index in indices:
        message = message_type()
        message.header.stamp = seconds_to_stamp(float(traverse.times_s[index]), stamp_type)
        sec, nanosec = (message.header.stamp.sec, message.header.stamp.nanosec) if args.ros == "2" else (
            message.header.stamp.secs, message.header.stamp.nsecs)
        message.header.frame_id = "camera"
        _fill(message, read_rgb(traverse.image_path(index)), args.transport)
        messages.append((index, f"{sec} {nanosec}", message))
    while args.go is not None and not args.go.exists():
        time.sleep(0.01)
    deadline = time.monotonic() + 90
    while connected() == 0:
        if time.monotonic() > deadline:
            sys.exit("no subscriber connected within 90 s")
        time.sleep(0.05)
    time.sleep(0.5)
    start = time.monotonic()
    with open(args.log, "a", encoding="utf-8") as log:
        for number, (index, stamp, message) in enumerate(messages):
            delay = start + number / args.rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            publisher.publish(message)
            log.write(f"{index} {stamp} {time.time():.6f}\n")
            log.flush()
    time.sleep(0.5)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
