"""``seqvpr prepare-robotcar``: preprocess RobotCar traverses into the generic format."""

from __future__ import annotations

import argparse

from seqvpr.cli.argtypes import positive_int

NAME = "prepare-robotcar"
HELP = "demosaic, undistort and resize RobotCar traverses into the generic traverse format"
DESCRIPTION = """\
Read raw Oxford RobotCar traverses (DIR/<date>/stereo/centre/*.png Bayer GBRG,
stereo.timestamps, gps/ins.csv or rtk.csv), interpolate the poses at the image
timestamps, demosaic (OpenCV), optionally undistort with your SDK lookup table, resize
to a long side of 240 pixels and write

  OUT/<date>/images/<timestamp_us>.png    RGB
  OUT/<date>/traverse.csv                 image,time_s,easting_m,northing_m,utm_zone,heading_rad,condition

Resumable: the source folder, camera, long side and lookup table are recorded in
OUT/seqvpr-options.yaml; a rerun with the same ones keeps the images already written,
a rerun with others stops (pass --overwrite to rebuild OUT). Works on `seqvpr synth`
output too (its conditions.csv labels the traverses). Next step: `seqvpr pairs`.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw", help="directory holding RobotCar <date> traverse directories (or one of them)")
    parser.add_argument("--out", required=True, help="output directory of prepared traverses")
    parser.add_argument("--traverses", default=None, help="comma-separated traverse names (default: all)")
    parser.add_argument("--camera", default="stereo/centre", help="camera directory (default stereo/centre)")
    parser.add_argument("--poses", choices=("ins", "rtk"), default="ins", help="pose source (default ins)")
    parser.add_argument(
        "--conditions", default=None,
        help="CSV with columns traverse,condition labelling traverses (default: RAW/conditions.csv if present)",
    )
    parser.add_argument("--long-side", type=positive_int, default=240, help="output image long side, pixels (default 240)")
    parser.add_argument("--undistortion-lut", default=None, help="SDK *_distortion_lut.bin of the camera")
    parser.add_argument(
        "--drop-uncovered", action="store_true",
        help="skip images outside the pose coverage instead of stopping with an error",
    )
    parser.add_argument(
        "--skip-missing-images", action="store_true",
        help="use only the listed images that exist (e.g. some chunks not downloaded) instead of an error",
    )
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild OUT if it holds images prepared with other options")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seqvpr.errors import SeqvprError
    from seqvpr.data.prepare import PrepareConfig, prepare_robotcar
    from seqvpr.data.robotcar import RobotCarConfig
    from seqvpr.data.tables import read_table

    raw = Path(args.raw)
    camera_timestamps = f"{args.camera.split('/')[0]}.timestamps"
    if (raw / camera_timestamps).is_file():
        directories = [raw]
        raw = raw.parent
    else:
        directories = sorted(path.parent for path in raw.glob(f"*/{camera_timestamps}"))
    if args.traverses:
        wanted = [name.strip() for name in args.traverses.split(",") if name.strip()]
        missing = [name for name in wanted if not (raw / name / camera_timestamps).is_file()]
        if missing:
            raise SeqvprError(f"no RobotCar traverse {', '.join(missing)} in {raw}")
        directories = [raw / name for name in wanted]
    if not directories:
        raise SeqvprError(f"{args.raw}: no RobotCar traverses (expected <date>/{camera_timestamps})")
    conditions: dict[str, str] = {}
    conditions_file = Path(args.conditions) if args.conditions else raw / "conditions.csv"
    if args.conditions or conditions_file.is_file():
        table = read_table(conditions_file)
        table.require("traverse", "condition")
        conditions = dict(zip(table.strings("traverse"), table.strings("condition")))
    config = PrepareConfig(
        long_side=args.long_side,
        undistortion_lut=Path(args.undistortion_lut) if args.undistortion_lut else None,
    )
    for directory in directories:
        reader = RobotCarConfig(
            camera=args.camera, poses=args.poses, drop_uncovered=args.drop_uncovered,
            skip_missing_images=args.skip_missing_images,
            condition=conditions.get(directory.name, "unknown"),
        )
        out_dir = prepare_robotcar(directory, args.out, reader, config, progress=True, overwrite=args.overwrite)
        print(f"{directory.name}: prepared into {out_dir}")
    return 0
