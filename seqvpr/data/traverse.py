"""Traverses: one drive along a route, and the generic on-disk traverse format.

A traverse directory holds the images and one CSV, ``traverse.csv``
(see ``docs/data.md`` for the format)::

    <traverse>/traverse.csv
    <traverse>/images/...            any layout; paths in the CSV are relative

Columns of ``traverse.csv`` (by name, any order, extra columns ignored):

- ``image``: image path relative to the traverse directory;
- ``time_s``: capture time in seconds (any epoch), strictly increasing;
- position, either ``easting_m, northing_m, utm_zone`` (UTM metres, zone like ``30U``)
  or ``latitude_deg, longitude_deg`` (WGS84; projected into the first row's UTM zone);
- ``heading_rad`` (optional): ENU heading, counter-clockwise from grid east; estimated
  from the track when absent;
- ``condition`` (optional): one label for the whole traverse (e.g. ``snow``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqvpr.data.geo import UtmZone, heading_from_track, latlon_to_utm, path_length, wrap_angle
from seqvpr.data.tables import read_table, write_table
from seqvpr.errors import SeqvprError

__all__ = [
    "Traverse",
    "TRAVERSE_CSV",
    "read_traverse",
    "write_traverse",
    "find_traverses",
    "check_times",
]

LOGGER = logging.getLogger(__name__)

TRAVERSE_CSV = "traverse.csv"
UNKNOWN_CONDITION = "unknown"


@dataclass(frozen=True)
class Traverse:
    """One drive: geotagged images in time order.

    Attributes:
        name: identifier, e.g. RobotCar's ``2014-12-09-13-21-02``.
        root: directory the image paths are relative to.
        image_paths: shape (N,), image paths relative to ``root`` (str).
        times_s: shape (N,), strictly increasing capture times, seconds.
        positions: shape (N, 2), columns (easting, northing), UTM metres.
        zone: the UTM zone of ``positions``.
        headings_rad: shape (N,), ENU heading (counter-clockwise from grid east).
        condition: label of the conditions (``overcast``, ``sunny``, ``snow``, ...).
    """

    name: str
    root: Path
    image_paths: np.ndarray
    times_s: np.ndarray
    positions: np.ndarray
    zone: UtmZone
    headings_rad: np.ndarray
    condition: str = UNKNOWN_CONDITION

    def __post_init__(self) -> None:
        count = len(self.times_s)
        shapes = {
            "image_paths": (np.shape(self.image_paths), (count,)),
            "positions": (np.shape(self.positions), (count, 2)),
            "headings_rad": (np.shape(self.headings_rad), (count,)),
        }
        for field_name, (actual, expected) in shapes.items():
            if actual != expected:
                raise ValueError(
                    f"traverse {self.name}: {field_name} has shape {actual}, expected {expected}"
                )

    def __len__(self) -> int:
        return len(self.times_s)

    @property
    def path_length_m(self) -> np.ndarray:
        """Cumulative distance travelled, shape (N,), metres."""
        return path_length(self.positions)

    def image_path(self, index: int) -> Path:
        """Absolute path of image ``index``."""
        return self.root / str(self.image_paths[index])

    def subset(self, keep: np.ndarray) -> Traverse:
        """The frames where the boolean mask ``keep`` (shape (N,)) is true."""
        return Traverse(
            self.name,
            self.root,
            self.image_paths[keep],
            self.times_s[keep],
            self.positions[keep],
            self.zone,
            self.headings_rad[keep],
            self.condition,
        )


def single_zone(cells: list[str], path: Path, line_numbers: list[int]) -> UtmZone:
    """The one UTM zone of a ``utm_zone`` column; ``SeqvprError`` naming the line otherwise."""
    try:
        zone = UtmZone.parse(cells[0])
    except ValueError as error:
        raise SeqvprError(f"{path}, line {line_numbers[0]}: {error}") from None
    for i, cell in enumerate(cells):
        if cell != cells[0]:
            raise SeqvprError(
                f"{path}, line {line_numbers[i]}: utm_zone {cell!r} differs from the first row's "
                f"{cells[0]!r}; a traverse must use one UTM zone (crossing zones is not supported)"
            )
    return zone


def check_times(times_s: np.ndarray, path: Path, line_numbers: list[int], column: str) -> None:
    """Raise ``SeqvprError`` naming the line of the first non-increasing time."""
    bad = np.flatnonzero(np.diff(times_s) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicate" if times_s[i] == times_s[i - 1] else "non-monotonic"
        raise SeqvprError(
            f"{path}, line {line_numbers[i]}: {kind} {column} {times_s[i]!r} "
            f"(previous row, line {line_numbers[i - 1]}, has {times_s[i - 1]!r}); "
            "times must be strictly increasing"
        )


def read_traverse(directory: str | os.PathLike, check_images: bool = True) -> Traverse:
    """Read a traverse in the generic format (``<directory>/traverse.csv``).

    Args:
        directory: the traverse directory; its name becomes the traverse name.
        check_images: raise if an image file listed in the CSV is missing.

    Raises:
        SeqvprError: no ``traverse.csv``, or bad content, naming file, line and column.
    """
    directory = Path(directory)
    path = directory / TRAVERSE_CSV
    table = read_table(path)
    table.require("image", "time_s")
    if len(table) == 0:
        raise SeqvprError(f"{path}: empty traverse (no data rows)")
    times_s = table.floats("time_s")
    check_times(times_s, path, table.line_numbers, "time_s")
    if table.has("easting_m") or table.has("northing_m") or table.has("utm_zone"):
        table.require("easting_m", "northing_m", "utm_zone")
        positions = np.stack([table.floats("easting_m"), table.floats("northing_m")], axis=-1)
        zone = single_zone(table.strings("utm_zone"), path, table.line_numbers)
    elif table.has("latitude_deg") or table.has("longitude_deg"):
        table.require("latitude_deg", "longitude_deg")
        latitude, longitude = table.floats("latitude_deg"), table.floats("longitude_deg")
        for column, values, limit in (("latitude_deg", latitude, 84.0), ("longitude_deg", longitude, 180.0)):
            bad = np.flatnonzero(np.abs(values) > limit)
            if bad.size:
                raise SeqvprError(
                    f"{path}, line {table.line_numbers[bad[0]]}: {column} {values[bad[0]]} "
                    f"outside +-{limit} (UTM covers latitudes -80..84)"
                )
        positions, zone = latlon_to_utm(latitude, longitude)
    else:
        raise SeqvprError(
            f"{path}: no position columns; expected easting_m, northing_m, utm_zone "
            "or latitude_deg, longitude_deg"
        )
    if table.has("heading_rad"):
        headings = wrap_angle(table.floats("heading_rad"))
    else:
        headings = heading_from_track(positions)
    condition = UNKNOWN_CONDITION
    if table.has("condition"):
        labels = table.strings("condition")
        for i, label in enumerate(labels):
            if label != labels[0]:
                raise SeqvprError(
                    f"{path}, line {table.line_numbers[i]}: condition {label!r} differs from the "
                    f"first row's {labels[0]!r}; one traverse has one condition"
                )
        condition = labels[0] or UNKNOWN_CONDITION
    image_paths = np.array(table.strings("image"), dtype=object)
    if check_images:
        for i, image in enumerate(image_paths):
            if not (directory / image).is_file():
                raise SeqvprError(
                    f"{path}, line {table.line_numbers[i]}: image {image!r} not found "
                    f"in {directory}"
                )
    return Traverse(
        directory.name, directory, image_paths, times_s, positions, zone, headings, condition
    )


def write_traverse(traverse: Traverse, directory: str | os.PathLike | None = None) -> Path:
    """Write ``traverse.csv`` (UTM columns) for a traverse whose images are in place.

    Args:
        traverse: the traverse; image paths must be relative to ``directory``.
        directory: where to write; default ``traverse.root``.

    Returns:
        the path of the CSV written.
    """
    directory = Path(traverse.root if directory is None else directory)
    rows = (
        (
            traverse.image_paths[i],
            f"{traverse.times_s[i]:.6f}",
            f"{traverse.positions[i, 0]:.4f}",
            f"{traverse.positions[i, 1]:.4f}",
            traverse.zone,
            f"{traverse.headings_rad[i]:.6f}",
            traverse.condition,
        )
        for i in range(len(traverse))
    )
    path = directory / TRAVERSE_CSV
    write_table(
        path,
        ("image", "time_s", "easting_m", "northing_m", "utm_zone", "heading_rad", "condition"),
        rows,
    )
    return path


def find_traverses(root: str | os.PathLike, check_images: bool = True) -> list[Traverse]:
    """Read every ``<root>/<name>/traverse.csv``, sorted by name.

    Raises:
        SeqvprError: no traverse under ``root``.
    """
    root = Path(root)
    directories = sorted(path.parent for path in root.glob(f"*/{TRAVERSE_CSV}"))
    if not directories:
        raise SeqvprError(f"{root}: no traverses found (expected <name>/{TRAVERSE_CSV})")
    traverses = [read_traverse(directory, check_images) for directory in directories]
    LOGGER.info("read %d traverses from %s", len(traverses), root)
    return traverses
