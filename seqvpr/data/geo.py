"""Positions and headings: UTM conversion, pose interpolation, path length.

Conventions used everywhere in :mod:`seqvpr.data`:

- positions are UTM metres, columns ``(easting, northing)``, with the UTM zone
  (number and latitude band letter, e.g. ``30U``) kept beside them;
- ``heading_rad`` follows ROS REP 103 (ENU): the direction of travel measured
  counter-clockwise from grid east, in radians, wrapped to (-pi, pi]. RobotCar's INS
  yaw is NED (clockwise from north): ``heading = pi/2 - yaw``.

Latitude/longitude appear only at the file edges and are converted with ``utm``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "UtmZone",
    "latlon_to_utm",
    "utm_to_latlon",
    "wrap_angle",
    "interpolate_poses",
    "path_length",
    "heading_from_track",
]

_ZONE_PATTERN = re.compile(r"^\s*(\d{1,2})\s*([C-HJ-NP-Xc-hj-np-x])\s*$")


@dataclass(frozen=True)
class UtmZone:
    """A UTM zone: number 1..60 and latitude band letter C..X (I and O excluded)."""

    number: int
    letter: str

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 60:
            raise ValueError(f"UTM zone number must be in 1..60, got {self.number}")
        if not _ZONE_PATTERN.match(f"{self.number}{self.letter}"):
            raise ValueError(f"UTM zone letter must be one of C..X without I/O, got {self.letter!r}")
        object.__setattr__(self, "letter", self.letter.upper())

    @classmethod
    def parse(cls, text: str) -> UtmZone:
        """Parse ``"30U"`` (as RobotCar's ``utm_zone`` column writes it)."""
        match = _ZONE_PATTERN.match(text)
        if match is None:
            raise ValueError(f"not a UTM zone (expected e.g. '30U'): {text!r}")
        return cls(int(match.group(1)), match.group(2).upper())

    def __str__(self) -> str:
        return f"{self.number}{self.letter}"


def latlon_to_utm(
    latitude_deg: np.ndarray, longitude_deg: np.ndarray, zone: UtmZone | None = None
) -> tuple[np.ndarray, UtmZone]:
    """Convert WGS84 latitude/longitude to UTM, all points in one zone.

    Args:
        latitude_deg: shape (N,), degrees north.
        longitude_deg: shape (N,), degrees east.
        zone: the zone to project into; default the zone of the first point (points
            slightly outside it are projected into it, so a traverse never straddles
            two zones).

    Returns:
        positions, shape (N, 2), columns (easting, northing) in metres; the zone.
    """
    import utm

    latitude_deg = np.asarray(latitude_deg, dtype=np.float64)
    longitude_deg = np.asarray(longitude_deg, dtype=np.float64)
    if zone is None:
        _, _, number, letter = utm.from_latlon(float(latitude_deg[0]), float(longitude_deg[0]))
        zone = UtmZone(number, letter)
    easting, northing, _, _ = utm.from_latlon(
        latitude_deg, longitude_deg, force_zone_number=zone.number, force_zone_letter=zone.letter
    )
    return np.stack([easting, northing], axis=-1), zone


def utm_to_latlon(positions: np.ndarray, zone: UtmZone) -> tuple[np.ndarray, np.ndarray]:
    """Convert UTM positions (N, 2) (easting, northing) to latitude, longitude (N,) degrees."""
    import utm

    positions = np.asarray(positions, dtype=np.float64)
    latitude, longitude = utm.to_latlon(
        positions[:, 0], positions[:, 1], zone.number, zone.letter, strict=False
    )
    return np.asarray(latitude, dtype=np.float64), np.asarray(longitude, dtype=np.float64)


def wrap_angle(angle_rad: np.ndarray) -> np.ndarray:
    """Wrap angles to (-pi, pi]."""
    wrapped = np.mod(np.asarray(angle_rad, dtype=np.float64) + np.pi, 2.0 * np.pi) - np.pi
    return np.where(wrapped == -np.pi, np.pi, wrapped)


def interpolate_poses(
    sample_times_s: np.ndarray,
    sample_positions: np.ndarray,
    sample_headings_rad: np.ndarray,
    times_s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate a pose track at new times.

    Headings are unwrapped before interpolating, so a track that crosses +-pi
    interpolates through pi and not through 0.

    Args:
        sample_times_s: shape (S,), strictly increasing seconds.
        sample_positions: shape (S, 2), (easting, northing) metres.
        sample_headings_rad: shape (S,).
        times_s: shape (N,), inside [sample_times_s[0], sample_times_s[-1]]
            (the caller checks coverage).

    Returns:
        positions (N, 2) and headings (N,) wrapped to (-pi, pi].
    """
    easting = np.interp(times_s, sample_times_s, sample_positions[:, 0])
    northing = np.interp(times_s, sample_times_s, sample_positions[:, 1])
    heading = np.interp(times_s, sample_times_s, np.unwrap(sample_headings_rad))
    return np.stack([easting, northing], axis=-1), wrap_angle(heading)


def path_length(positions: np.ndarray) -> np.ndarray:
    """Cumulative path length along a track.

    Args:
        positions: shape (N, 2), metres.

    Returns:
        shape (N,), metres travelled from the first point (0 at index 0).
    """
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def heading_from_track(positions: np.ndarray, min_step_m: float = 0.05) -> np.ndarray:
    """Direction of travel (ENU, radians) estimated from a position track.

    Central differences over points at least ``min_step_m`` apart; while the track is
    stationary the last moving heading is held.

    Args:
        positions: shape (N, 2) (easting, northing) metres, N >= 2.

    Returns:
        shape (N,) headings wrapped to (-pi, pi].
    """
    count = len(positions)
    if count < 2:
        return np.zeros(count)
    forward = np.diff(positions, axis=0)
    step = np.linalg.norm(forward, axis=1)
    moving = step >= min_step_m
    if not moving.any():
        return np.zeros(count)
    segment_heading = np.arctan2(forward[:, 1], forward[:, 0])
    # Hold the last moving heading through stationary segments (forward fill, then back).
    index = np.where(moving, np.arange(len(step)), -1)
    index = np.maximum.accumulate(index)
    first = int(np.argmax(moving))
    index[index < 0] = first
    segment_heading = np.unwrap(segment_heading[index])
    per_point = np.empty(count)
    per_point[0] = segment_heading[0]
    per_point[-1] = segment_heading[-1]
    per_point[1:-1] = 0.5 * (segment_heading[:-1] + segment_heading[1:])
    return wrap_angle(per_point)
