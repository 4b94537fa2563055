"""``seqvpr localize MAP SOURCE --out DIR``: replay a traverse or a bag through the streaming localizer."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "localize"
HELP = "localize a traverse folder or a ROS bag frame by frame against a map (no oracle windows)"
DESCRIPTION = """\
Feed every frame of SOURCE through the streaming localizer a robot runs (seqvpr.localization):
keyframes every second, candidate windows proposed from the map by faiss, one batched
subsequence GDTW, a fix with confidence and covariance, or LOST.

SOURCE is a prepared traverse folder (traverse.csv; its poses are the truth) or a bag:
a ROS 1 .bag file, or a ROS 2 bag folder (sqlite3 or MCAP), read with rosbags (no ROS
install). --image-topic takes sensor_msgs/Image (rgb8, bgr8, mono8, bayer_*8) or
CompressedImage (JPEG, PNG); the truth comes from --truth-topic (NavSatFix, Odometry or
PoseStamped) or --truth-traverse.

Odometry: with query_spacing_m in --config, keyframes come every that many metres of
odometry and the query is aligned on travelled distance. --odometry-topic reads a bag's
nav_msgs/Odometry or geometry_msgs/PoseStamped topic (x, y interpolated at each image
stamp; frames outside its time span get none); --odometry-from-poses gives a traverse the
distance travelled along its own poses (ground-truth-derived odometry). --odometry-scale
multiplies either (1.02 simulates a wheel odometry reading 2 % long). Odometry without
query_spacing_m is an error: the localizer would keyframe on time and ignore it.

Writes to --out: estimates.csv (one row per frame), summary.json and summary.md (accuracy
of fixed frames at 2/3/5/10 m, availability, wrong-fix rate, time to first fix, recovery
after kidnaps), trajectory.png, error_over_time.png, localization.yaml. --write-bag adds
the estimates (PoseWithCovarianceStamped, NavSatFix) to a copy of the bag.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map", type=Path, help="map folder (seqvpr map build)")
    parser.add_argument("source", type=Path, help="prepared traverse folder, ROS 1 .bag, or ROS 2 bag folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--model", type=Path, help="encoder checkpoint the map was built with")
    parser.add_argument("--descriptors", type=Path,
                        help="traverse source only: its descriptors file (seqvpr extract) instead of --model")
    parser.add_argument("--config", type=Path, help="localizer settings (config/localization.yaml)")
    parser.add_argument("--image-topic", default="/camera/image_raw", help="bag camera topic (default %(default)s)")
    parser.add_argument("--truth-topic", help="bag topic with ground truth (NavSatFix, Odometry, PoseStamped)")
    parser.add_argument("--truth-traverse", type=Path, help="traverse folder whose poses are the bag's truth")
    parser.add_argument("--odometry-topic",
                        help="bag topic with odometry (nav_msgs/Odometry, geometry_msgs/PoseStamped); "
                             "needs query_spacing_m in --config")
    parser.add_argument("--odometry-from-poses", action="store_true",
                        help="traverse source only: its travelled distance (from its poses, i.e. ground truth) "
                             "as odometry; needs query_spacing_m in --config")
    parser.add_argument("--odometry-scale", type=float, default=1.0,
                        help="multiply the odometry by this, e.g. 1.02 for one reading 2%% long (default 1.0)")
    parser.add_argument("--write-bag", type=Path, help="write a copy of the bag with the estimates here")
    parser.add_argument("--overwrite", action="store_true", help="rebuild --out if it holds another run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from seqvpr.config import config_to_dict, load_config
    from seqvpr.errors import SeqvprError
    from seqvpr.io import claim_output_dir
    from seqvpr.localization import LocalizerConfig, StreamingLocalizer
    from seqvpr.localization.offline import check_source, localize_offline
    from seqvpr.localization.replay import summary_markdown

    config = load_config(args.config, LocalizerConfig) if args.config else LocalizerConfig()
    if args.model is not None and not args.model.is_file():
        raise SeqvprError(f"localize: no such checkpoint file {args.model}")
    localizer = StreamingLocalizer.from_map(args.map, config, model=args.model)
    odometry = {key: getattr(args, key) for key in ("odometry_topic", "odometry_from_poses", "odometry_scale")}
    check_source(args.source, localizer, descriptors=args.descriptors, image_topic=args.image_topic,
                 truth_topic=args.truth_topic, truth_traverse=args.truth_traverse, write_bag=args.write_bag,
                 **odometry)
    options = {key: getattr(args, key) for key in ("map", "source", "model", "descriptors", "image_topic",
                                                   "truth_topic", "truth_traverse", "write_bag")}
    options.update(odometry)
    options["config"] = config_to_dict(config)
    claim_output_dir(args.out, options, overwrite=args.overwrite, command="seqvpr localize")
    summary = localize_offline(localizer, args.source, args.out, descriptors=args.descriptors,
                               image_topic=args.image_topic, truth_topic=args.truth_topic,
                               truth_traverse=args.truth_traverse, write_bag=args.write_bag, **odometry,
                               progress=not args.no_progress)
    print(summary_markdown(summary, f"{args.source.name} against {args.map.name}"))
    print(f"outputs in {args.out}/")
    return 0
