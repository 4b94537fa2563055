"""Preprocess raw RobotCar traverses into the generic traverse format.

For each image: read the Bayer PNG, demosaic (OpenCV), optionally undistort with the
user's SDK lookup table, resize to a long side of 240 pixels, and write an RGB PNG to
``<out>/<date>/images/<timestamp_us>.png``; then write ``<out>/<date>/traverse.csv``
with the interpolated poses. Images already written are kept, so an interrupted run
resumes where it stopped; the CSV is written last (atomically), so a traverse
directory with a ``traverse.csv`` is complete. The settings that shape the images
(source folder, camera, long side, lookup table) are recorded in ``<out>`` by
:func:`seqvpr.io.claim_output_dir`: only a run with the same settings reuses images.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqvpr.data.images import (
    demosaic,
    load_undistortion_lut,
    read_image,
    resize_long_side,
    undistort,
    write_png,
)
from seqvpr.data.robotcar import CAMERA_PATTERNS, RobotCarConfig, read_robotcar_traverse
from seqvpr.data.traverse import Traverse, write_traverse
from seqvpr.errors import SeqvprError
from seqvpr.io import claim_output_dir

__all__ = ["PrepareConfig", "prepare_robotcar"]

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareConfig:
    """Preprocessing options.

    Attributes:
        long_side: output image long side, pixels (240 as in the paper).
        undistortion_lut: the SDK ``*_distortion_lut.bin`` of the camera, or None.
        overwrite: re-write images that already exist.
    """

    long_side: int = 240
    undistortion_lut: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.long_side, bool) or not isinstance(self.long_side, int) or self.long_side < 1:
            raise SeqvprError(f"long side must be a whole number of pixels >= 1, got {self.long_side!r}")
        if self.undistortion_lut is not None and not Path(self.undistortion_lut).is_file():
            raise SeqvprError(f"undistortion lookup table {self.undistortion_lut}: no such file")


def prepare_robotcar(
    directory: str | os.PathLike,
    out_root: str | os.PathLike,
    reader: RobotCarConfig = RobotCarConfig(),
    config: PrepareConfig = PrepareConfig(),
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Preprocess one RobotCar traverse.

    Args:
        directory: the raw ``<date>`` directory.
        out_root: output root; the traverse goes to ``<out_root>/<date>``.
        reader: how to read the raw traverse (camera, poses, coverage policy).
        config: image preprocessing options.
        progress: show a tqdm progress bar.
        overwrite: empty an ``out_root`` prepared with other image settings instead of
            stopping.

    Returns:
        the output traverse directory.

    Raises:
        SeqvprError: bad input (malformed files, corrupt image), naming the file.
        OutputConflictError: ``out_root`` holds images prepared with other settings
            (names them), unless ``overwrite``.
    """
    from tqdm import tqdm

    directory = Path(directory)
    raw = read_robotcar_traverse(directory, reader)
    options = {
        "source": directory.parent, "camera": reader.camera, "long_side": config.long_side,
        "undistortion_lut": config.undistortion_lut,
    }
    lut = None
    if config.undistortion_lut is not None:  # checked against the image size before anything is written
        lut = load_undistortion_lut(config.undistortion_lut, read_image(raw.image_path(0)).shape[:2])
    claim_output_dir(out_root, options, overwrite=overwrite, command="prepare-robotcar")
    pattern = CAMERA_PATTERNS[reader.camera]
    out_dir = Path(out_root) / raw.name
    written = skipped = 0
    image_paths = []
    for index in tqdm(range(len(raw)), desc=raw.name, unit="img", disable=not progress):
        relative = f"images/{Path(str(raw.image_paths[index])).name}"
        image_paths.append(relative)
        target = out_dir / relative
        if target.exists() and not config.overwrite:
            skipped += 1
            continue
        mosaic = read_image(raw.image_path(index))
        if mosaic.ndim != 2:
            raise SeqvprError(
                f"{raw.image_path(index)}: expected a single-channel 8-bit Bayer image "
                f"({pattern.upper()}), got shape {mosaic.shape}"
            )
        rgb = demosaic(mosaic, pattern)
        if lut is not None:
            rgb = undistort(rgb, lut)
        write_png(target, resize_long_side(rgb, config.long_side))
        written += 1
    prepared = Traverse(
        raw.name,
        out_dir,
        np.array(image_paths, dtype=object),
        raw.times_s,
        raw.positions,
        raw.zone,
        raw.headings_rad,
        raw.condition,
    )
    write_traverse(prepared)
    LOGGER.info("%s: wrote %d images, kept %d existing", out_dir, written, skipped)
    return out_dir
