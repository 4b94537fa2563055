"""``seqvpr prepare-robotcar``: preprocess RobotCar traverses into the generic format."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PrepareOptions:
    """Options of ``seqvpr prepare-robotcar`` (``config/prepare.yaml`` documents every key)."""

    traverses: str | None = None
    camera: str = "stereo/centre"
    poses: str = "ins"
    conditions: str | None = None
    long_side: int = 240
    undistortion_lut: str | None = None
    drop_uncovered: bool = False
    skip_missing_images: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw", help="directory holding RobotCar <date> traverse directories (or one of them)")
    parser.add_argument("--out", required=True, help="output directory of prepared traverses")
    parser.add_argument("--config", default=None,
                        help="options from a YAML file (see config/prepare.yaml); flags given win")
    parser.add_argument("--traverses", default=None, help="comma-separated traverse names (default: all)")
    parser.add_argument("--camera", default=None, help="camera directory (default stereo/centre)")
    parser.add_argument("--poses", choices=("ins", "rtk"), default=None, help="pose source (default ins)")
    parser.add_argument(
        "--conditions", default=None,
        help="CSV with columns traverse,condition labelling traverses (default: RAW/conditions.csv if present)",
    )
    parser.add_argument("--long-side", type=positive_int, default=None, help="output image long side, pixels (default 240)")
    parser.add_argument("--undistortion-lut", default=None, help="SDK *_distortion_lut.bin of the camera")
    parser.add_argument(
        "--drop-uncovered", action="store_true", default=None,
        help="skip images outside the pose coverage instead of stopping with an error",
    )
    parser.add_argument(
        "--skip-missing-images", action="store_true", default=None,
        help="use only the listed images that exist (e.g. some chunks not downloaded) instead of an error",
    )
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild OUT if it holds images prepared with other options")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seqvpr.config import options_config
    from seqvpr.data.prepare import PrepareConfig, prepare_robotcar
    from seqvpr.data.robotcar import RobotCarConfig
    from seqvpr.data.tables import read_table
    from seqvpr.errors import SeqvprError

    options = options_config(PrepareOptions, args.config, {
        name: getattr(args, name) for name in (
            "traverses", "camera", "poses", "conditions", "long_side", "undistortion_lut", "drop_uncovered",
            "skip_missing_images")
    })
    raw = Path(args.raw)
    camera_timestamps = f"{options.camera.split('/')[0]}.timestamps"
    if (raw / camera_timestamps).is_file():
        directories = [raw]
        raw = raw.parent
    else:
        directories = sorted(path.parent for path in raw.glob(f"*/{camera_timestamps}"))
    if options.traverses:
        wanted = [name.strip() for name in options.traverses.split(",") if name.strip()]
        missing = [name for name in wanted if not (raw / name / camera_timestamps).is_file()]
        if missing:
            raise SeqvprError(f"no RobotCar traverse {', '.join(missing)} in {raw}")
        directories = [raw / name for name in wanted]
    if not directories:
        raise SeqvprError(f"{args.raw}: no RobotCar traverses (expected <date>/{camera_timestamps})")
    conditions: dict[str, str] = {}
    conditions_file = Path(options.conditions) if options.conditions else raw / "conditions.csv"
    if options.conditions or conditions_file.is_file():
        table = read_table(conditions_file)
        table.require("traverse", "condition")
        conditions = dict(zip(table.strings("traverse"), table.strings("condition")))
    config = PrepareConfig(
        long_side=options.long_side,
        undistortion_lut=Path(options.undistortion_lut) if options.undistortion_lut else None,
    )
    for directory in directories:
        reader = RobotCarConfig(
            camera=options.camera, poses=options.poses, drop_uncovered=options.drop_uncovered,
            skip_missing_images=options.skip_missing_images,
            condition=conditions.get(directory.name, "unknown"),
        )
        out_dir = prepare_robotcar(directory, args.out, reader, config, progress=True, overwrite=args.overwrite)
        print(f"{directory.name}: prepared into {out_dir}")
    return 0
