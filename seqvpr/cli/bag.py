"""``seqvpr bag export``: a prepared traverse as a ROS bag (images + NavSatFix, optionally Odometry)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "bag"
HELP = "write a prepared traverse as a ROS 1 / ROS 2 (sqlite3, MCAP) bag"
DESCRIPTION = """\
seqvpr bag export TRAVERSE --format ros1|ros2-sqlite3|mcap --out PATH

Writes every image of the traverse as sensor_msgs/Image (or CompressedImage with
--encoding jpeg|png) on --image-topic and its pose as sensor_msgs/NavSatFix on --fix-topic,
stamped with the image times, using rosbags (no ROS install). ros1 writes a .bag file;
ros2-sqlite3 and mcap write a ROS 2 bag folder. Replay it with `seqvpr localize MAP PATH`.

--odometry also writes nav_msgs/Odometry on --odometry-topic at every image stamp: the
traverse's UTM position minus the first frame's (odom axes = grid east, north), times
--odometry-scale (1.02 simulates a wheel odometry reading 2 % long), with its heading as
the orientation. Replay with `seqvpr localize ... --odometry-topic /odom`.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    export = actions.add_parser("export", help="write a traverse as a bag", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("traverse", type=Path, help="prepared traverse folder")
    export.add_argument("--format", required=True, choices=("ros1", "ros2-sqlite3", "mcap"), help="bag format")
    export.add_argument("--out", type=Path, required=True, help="bag path (must not exist)")
    export.add_argument("--image-topic", default="/camera/image_raw", help="default %(default)s")
    export.add_argument("--fix-topic", default="/gps/fix", help="default %(default)s")
    export.add_argument("--frame-id", default="camera", help="frame of the images (default %(default)s)")
    export.add_argument("--encoding", default="rgb8",
                        choices=("rgb8", "bgr8", "mono8", "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8",
                                 "jpeg", "png"),
                        help="image encoding; jpeg/png write CompressedImage (default %(default)s)")
    export.add_argument("--odometry", action="store_true",
                        help="also write nav_msgs/Odometry (positions relative to the first frame)")
    export.add_argument("--odometry-topic", default="/odom", help="with --odometry (default %(default)s)")
    export.add_argument("--odometry-scale", type=float, default=1.0,
                        help="with --odometry: multiply its positions by this (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from seqvpr.errors import SeqvprError
    from seqvpr.localization.bags import export_traverse

    if not (args.traverse / "traverse.csv").is_file():
        raise SeqvprError(f"bag export: {args.traverse} is not a prepared traverse folder (no traverse.csv)")
    if not args.odometry and args.odometry_scale != 1.0:
        raise SeqvprError("bag export: --odometry-scale needs --odometry")
    path = export_traverse(args.traverse, args.out, args.format, image_topic=args.image_topic,
                           fix_topic=args.fix_topic, frame_id=args.frame_id, encoding=args.encoding,
                           odometry_topic=args.odometry_topic if args.odometry else None,
                           odometry_scale=args.odometry_scale)
    print(f"wrote {path} ({args.format})")
    return 0
