"""``seqvpr synth``: render a synthetic street world as RobotCar-layout traverses."""

from __future__ import annotations

import argparse

from seqvpr.cli.argtypes import positive_float, positive_int

NAME = "synth"
HELP = "render a synthetic street world as RobotCar-layout traverses (demo, tests, CI)"
DESCRIPTION = """\
Render a procedural street world along a ~1 km route placed at a real latitude/longitude
(Oxford by default) and write one traverse per condition in the Oxford RobotCar layout:

  OUT/<date>/stereo/centre/<timestamp_us>.png   Bayer GBRG mosaics
  OUT/<date>/stereo.timestamps                  "<timestamp_us> 1" per image
  OUT/<date>/gps/ins.csv                        INS poses (lat/lon, UTM, yaw) at 50 Hz
  OUT/conditions.csv                            traverse,condition

Traverses differ in condition (lighting, colour cast, snow, night, parked vehicles,
noise), lane offset and speed profile (stops, accelerations). Facades repeat with
variations, so place recognition is possible but not trivial. Deterministic from the
seed; resumable: the options are recorded in OUT/seqvpr-options.yaml, a rerun with the
same options keeps the images already written, a rerun with other options stops (pass
--overwrite to rebuild the folder). Next step: `seqvpr prepare-robotcar`.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="world and traverse seed (default 0)")
    parser.add_argument("--config", default=None,
                        help="world, camera and traverse options from a YAML file (see config/synth.yaml); "
                        "the flags below, when given, win")
    parser.add_argument(
        "--conditions", default=None,
        help="comma-separated conditions, one traverse each "
        "(overcast, sunny, snow, dusk, night; default overcast,sunny,snow,night)",
    )
    parser.add_argument("--length-m", type=positive_float, default=None,
                        help="route length in metres (default 1000)")
    parser.add_argument("--width", type=positive_int, default=None, help="image width in pixels, even (default 240)")
    parser.add_argument("--height", type=positive_int, default=None, help="image height in pixels, even (default 180)")
    parser.add_argument("--fps", type=positive_float, default=None, help="camera frame rate in Hz (default 5)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="processes rendering traverses in parallel (default 2)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild OUT if it holds a world rendered with other options")


def run(args: argparse.Namespace) -> int:
    import time

    from seqvpr.config import options_config
    from seqvpr.data.synth.drive import SynthConfig, synthesize

    conditions = None
    if args.conditions is not None:
        conditions = tuple(name.strip() for name in args.conditions.split(",") if name.strip())
    config = options_config(SynthConfig, args.config, {
        "world": {"route_length_m": args.length_m},
        "camera": {"width": args.width, "height": args.height},
        "conditions": conditions,
        "frame_rate_hz": args.fps,
    })
    started = time.perf_counter()
    truths = synthesize(config, args.out, seed=args.seed, workers=args.workers, progress=True,
                        overwrite=args.overwrite)
    elapsed = time.perf_counter() - started
    for truth in truths:
        print(f"{truth.name}  {truth.condition:9s} {len(truth):5d} images  {truth.path_length_m[-1]:7.1f} m")
    print(f"wrote {len(truths)} traverses to {args.out} in {elapsed:.1f} s")
    return 0
