"""Oxford RobotCar reader and preprocessing into the generic traverse format.

Layout of one RobotCar traverse (``<date>`` like ``2014-12-09-13-21-02``)::

    <date>/stereo/centre/<timestamp_us>.png   8-bit Bayer GBRG (mono cameras: RGGB)
    <date>/stereo.timestamps                  "<timestamp_us> <chunk>" per line
    <date>/gps/ins.csv                        INS at 50 Hz (header, parsed by name)
    <date>/gps/rtk.csv or <date>/rtk.csv      RTK ground truth (optional)

``ins.csv`` columns used: ``timestamp`` (us), ``ins_status`` (rows other than
``INS_SOLUTION_GOOD`` are dropped), ``easting``, ``northing``, ``utm_zone``, ``yaw``
(NED, clockwise from north). ``rtk.csv`` has the same position columns and no status;
its yaw is the INS yaw + 3*pi/2. Microseconds are converted to float seconds here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqvpr.data.geo import UtmZone, interpolate_poses, wrap_angle
from seqvpr.data.tables import read_table
from seqvpr.data.traverse import Traverse, check_times, single_zone
from seqvpr.errors import SeqvprError

__all__ = [
    "PoseTrack",
    "RobotCarConfig",
    "read_image_timestamps",
    "read_ins",
    "read_rtk",
    "read_robotcar_traverse",
    "CAMERA_PATTERNS",
]

LOGGER = logging.getLogger(__name__)

INS_GOOD = "INS_SOLUTION_GOOD"
RTK_YAW_OFFSET_RAD = 1.5 * np.pi
MICROSECONDS = 1e-6
# Bayer pattern of each RobotCar camera directory.
CAMERA_PATTERNS = {
    "stereo/centre": "gbrg",
    "stereo/left": "gbrg",
    "stereo/right": "gbrg",
    "mono_left": "rggb",
    "mono_right": "rggb",
    "mono_rear": "rggb",
}


@dataclass(frozen=True)
class PoseTrack:
    """A time-stamped pose track (INS or RTK).

    Attributes:
        times_s: shape (S,), strictly increasing seconds.
        positions: shape (S, 2), (easting, northing) UTM metres.
        headings_rad: shape (S,), ENU heading.
        zone: UTM zone.
        path: the file it was read from.
    """

    times_s: np.ndarray
    positions: np.ndarray
    headings_rad: np.ndarray
    zone: UtmZone
    path: Path


@dataclass(frozen=True)
class RobotCarConfig:
    """How to read a RobotCar traverse.

    Attributes:
        camera: camera directory, e.g. ``stereo/centre``.
        poses: ``ins`` (``gps/ins.csv``) or ``rtk`` (``rtk.csv``).
        max_pose_gap_s: an image farther than this from the nearest pose sample on
            either side (e.g. inside a stretch of bad INS rows) counts as uncovered.
        drop_uncovered: drop (and log) images outside pose coverage instead of raising.
        skip_missing_images: drop (and log) images listed in the timestamps file whose
            file is absent (e.g. chunks not downloaded) instead of raising.
        condition: label stored on the traverse.
    """

    camera: str = "stereo/centre"
    poses: str = "ins"
    max_pose_gap_s: float = 1.0
    drop_uncovered: bool = False
    skip_missing_images: bool = False
    condition: str = "unknown"

    def __post_init__(self) -> None:
        if self.poses not in ("ins", "rtk"):
            raise SeqvprError(f"poses must be 'ins' or 'rtk', got {self.poses!r}")
        if self.camera not in CAMERA_PATTERNS:
            raise SeqvprError(f"unknown camera {self.camera!r}; expected one of {sorted(CAMERA_PATTERNS)}")


def read_image_timestamps(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``<camera>.timestamps``: lines ``<timestamp_us> <chunk>``.

    Returns:
        image timestamps in microseconds, shape (N,) int64, strictly increasing, and
        the 1-based line of each in the file, shape (N,).
    """
    path = Path(path)
    table = read_table(path, delimiter=" ", columns=("timestamp", "chunk"))
    if len(table) == 0:
        raise SeqvprError(f"{path}: no timestamps (empty traverse)")
    timestamps = table.integers("timestamp")
    check_times(timestamps, path, table.line_numbers, "timestamp")
    return timestamps, np.array(table.line_numbers)


def _read_track(path: Path, yaw_offset_rad: float, status_column: str | None) -> PoseTrack:
    table = read_table(path)
    columns = ["timestamp", "easting", "northing", "utm_zone", "yaw"]
    if status_column is not None:
        columns.append(status_column)
    table.require(*columns)
    if status_column is not None:
        good = np.array([status == INS_GOOD for status in table.strings(status_column)])
        if not good.any():
            raise SeqvprError(f"{path}: no row has {status_column} = {INS_GOOD}")
        LOGGER.debug("%s: kept %d of %d rows with %s", path, good.sum(), len(table), INS_GOOD)
        table = table.select(good)
    if len(table) < 2:
        raise SeqvprError(f"{path}: need at least two pose rows, got {len(table)}")
    timestamps = table.integers("timestamp")
    check_times(timestamps, path, table.line_numbers, "timestamp")
    zone = single_zone(table.strings("utm_zone"), path, table.line_numbers)
    positions = np.stack([table.floats("easting"), table.floats("northing")], axis=-1)
    yaw_ned = table.floats("yaw") - yaw_offset_rad
    headings = wrap_angle(0.5 * np.pi - yaw_ned)
    return PoseTrack(timestamps * MICROSECONDS, positions, headings, zone, path)


def read_ins(path: str | os.PathLike) -> PoseTrack:
    """Read RobotCar ``gps/ins.csv``, keeping ``INS_SOLUTION_GOOD`` rows."""
    return _read_track(Path(path), 0.0, "ins_status")


def read_rtk(path: str | os.PathLike) -> PoseTrack:
    """Read RobotCar RTK ground truth ``rtk.csv`` (yaw = INS yaw + 3*pi/2)."""
    return _read_track(Path(path), RTK_YAW_OFFSET_RAD, None)


def _covered(track: PoseTrack, times_s: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Boolean (N,): inside the track and within ``max_gap_s`` of samples on both sides."""
    after = np.searchsorted(track.times_s, times_s, side="left")
    inside = (times_s >= track.times_s[0]) & (times_s <= track.times_s[-1])
    after = np.clip(after, 1, len(track.times_s) - 1)
    gap = track.times_s[after] - track.times_s[after - 1]
    exact = track.times_s[after] == times_s
    return inside & ((gap <= max_gap_s) | exact)


def _pose_file(directory: Path, poses: str) -> Path:
    if poses == "ins":
        return directory / "gps" / "ins.csv"
    for candidate in (directory / "rtk.csv", directory / "gps" / "rtk.csv"):
        if candidate.is_file():
            return candidate
    raise SeqvprError(f"{directory}: no rtk.csv (looked in {directory} and {directory / 'gps'})")


def read_robotcar_traverse(
    directory: str | os.PathLike, config: RobotCarConfig = RobotCarConfig()
) -> Traverse:
    """Read a raw RobotCar traverse: image list with poses interpolated at image times.

    Images are not opened here (see :func:`seqvpr.data.prepare.prepare_robotcar`).

    Args:
        directory: the ``<date>`` directory.
        config: camera, pose source and coverage policy.

    Returns:
        a :class:`Traverse` rooted at ``directory`` with image paths like
        ``stereo/centre/<timestamp_us>.png``.

    Raises:
        SeqvprError: malformed files, a listed image that is missing (unless
            ``config.skip_missing_images``) or outside pose coverage (unless
            ``config.drop_uncovered``), naming file and line.
    """
    directory = Path(directory)
    camera_name = config.camera.split("/")[0]
    timestamps_path = directory / f"{camera_name}.timestamps"
    timestamps_us, lines = read_image_timestamps(timestamps_path)
    present = np.array([(directory / config.camera / f"{stamp}.png").is_file() for stamp in timestamps_us])
    if not present.all():
        first = int(np.flatnonzero(~present)[0])
        message = (
            f"{timestamps_path}, line {lines[first]}: image {config.camera}/{timestamps_us[first]}.png "
            f"not found ({(~present).sum()} of {len(present)} listed images are missing)"
        )
        if not config.skip_missing_images:
            raise SeqvprError(message + "; pass --skip-missing-images (Python: skip_missing_images=True) to use the images that exist")
        LOGGER.warning("%s; skipping them", message)
        timestamps_us, lines = timestamps_us[present], lines[present]
        if len(timestamps_us) == 0:
            raise SeqvprError(f"{directory / config.camera}: no images (empty traverse)")
    track = read_ins(_pose_file(directory, "ins")) if config.poses == "ins" else read_rtk(
        _pose_file(directory, "rtk")
    )
    times_s = timestamps_us * MICROSECONDS
    covered = _covered(track, times_s, config.max_pose_gap_s)
    if not covered.all():
        first = int(np.flatnonzero(~covered)[0])
        message = (
            f"{timestamps_path}, line {lines[first]}: image timestamp {timestamps_us[first]} "
            f"({(~covered).sum()} of {len(covered)} images) outside the pose coverage of "
            f"{track.path} ({track.times_s[0] / MICROSECONDS:.0f}..{track.times_s[-1] / MICROSECONDS:.0f} us, "
            f"gaps over {config.max_pose_gap_s} s count as uncovered)"
        )
        if not config.drop_uncovered:
            raise SeqvprError(message + "; pass --drop-uncovered (Python: drop_uncovered=True) to skip these images")
        LOGGER.warning("%s; dropping them", message)
        timestamps_us, times_s = timestamps_us[covered], times_s[covered]
        if len(times_s) == 0:
            raise SeqvprError(f"{timestamps_path}: no image inside the pose coverage (empty traverse)")
    positions, headings = interpolate_poses(track.times_s, track.positions, track.headings_rad, times_s)
    image_paths = np.array([f"{config.camera}/{stamp}.png" for stamp in timestamps_us], dtype=object)
    return Traverse(
        directory.name, directory, image_paths, times_s, positions, track.zone, headings,
        config.condition,
    )
