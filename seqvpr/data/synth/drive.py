"""Drive synthetic traverses through a world and write them in the RobotCar layout.

Each traverse drives the whole route in the left lane (as in Oxford) with its own
condition, lane offset and speed profile: a cruise speed that varies slowly, slowing
for corners, stopping at some traffic lights for a few seconds, with its own
acceleration. The first traverse does not stop (a survey drive, the natural
reference). The vehicle state is simulated at the INS rate (50 Hz); camera frames are
rendered at ``frame_rate_hz`` with a little timestamp jitter. Output per traverse::

    <out>/<date>/stereo/centre/<timestamp_us>.png   Bayer GBRG mosaic
    <out>/<date>/stereo.timestamps                  "<timestamp_us> 1"
    <out>/<date>/gps/ins.csv                        RobotCar INS columns, real lat/lon
    <out>/conditions.csv                            traverse,condition

A few INS rows are marked ``INS_BAD_GPS_AGREEMENT`` and carry wrong positions, as
readers must drop them. Images are written atomically and skipped when they exist, so
an interrupted run resumes; the timestamps and ``ins.csv`` are written after the
images.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqvpr.data.geo import UtmZone, latlon_to_utm, utm_to_latlon, wrap_angle
from seqvpr.data.images import write_png
from seqvpr.data.synth.render import CONDITIONS, Camera, Vehicles, render_frame, sensor_mosaic
from seqvpr.data.synth.world import World, WorldConfig, build_world
from seqvpr.config import config_to_dict
from seqvpr.data.tables import atomic_write_text, write_table
from seqvpr.data.traverse import Traverse
from seqvpr.errors import SeqvprError
from seqvpr.io import claim_output_dir

__all__ = ["SynthConfig", "DriveProfile", "simulate_drive", "synthesize", "CONDITIONS_CSV"]

LOGGER = logging.getLogger(__name__)

CONDITIONS_CSV = "conditions.csv"
INS_COLUMNS = (
    "timestamp", "ins_status", "latitude", "longitude", "altitude", "northing", "easting",
    "down", "utm_zone", "velocity_north", "velocity_east", "velocity_down", "roll", "pitch", "yaw",
)
_DATE_FORMAT = "%Y-%m-%d-%H-%M-%S"


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesise.

    Attributes:
        world: route and facade layout.
        camera: image size and optics.
        conditions: one traverse per entry, names from ``CONDITIONS``.
        frame_rate_hz: camera frame rate.
        ins_rate_hz: INS rate (and simulation rate).
        origin_latlon: WGS84 position of the route start (default: Oxford).
        first_date: date-time of the first traverse (``YYYY-MM-DD-HH-MM-SS``, UTC);
            later traverses are some days later.
    """

    world: WorldConfig = field(default_factory=WorldConfig)
    camera: Camera = field(default_factory=Camera)
    conditions: tuple[str, ...] = ("overcast", "sunny", "snow", "night")
    frame_rate_hz: float = 5.0
    ins_rate_hz: float = 50.0
    origin_latlon: tuple[float, float] = (51.7520, -1.2577)
    first_date: str = "2025-03-03-10-00-00"

    def __post_init__(self) -> None:
        unknown = [name for name in self.conditions if name not in CONDITIONS]
        if unknown:
            raise SeqvprError(f"unknown condition(s) {unknown}; expected some of {sorted(CONDITIONS)}")
        if not self.conditions:
            raise SeqvprError("at least one condition (one traverse) is needed")
        if not 0 < self.frame_rate_hz <= self.ins_rate_hz:
            raise SeqvprError(f"frame_rate_hz must be in (0, ins_rate_hz], got {self.frame_rate_hz}")


@dataclass(frozen=True)
class DriveProfile:
    """How one traverse drives.

    Attributes:
        cruise_mps: mean cruise speed.
        swing: relative amplitude of the slow cruise-speed variation.
        swing_period_s: its period.
        acceleration_mps2: acceleration from rest or after corners.
        deceleration_mps2: comfortable braking.
        stops_m: arc lengths where this traverse stops.
        waits_s: how long it waits at each stop.
        lane_m: lane centre, metres left of the route centre line.
        weave_m: amplitude of the slow lateral weave within the lane.
    """

    cruise_mps: float
    swing: float
    swing_period_s: float
    acceleration_mps2: float
    deceleration_mps2: float
    stops_m: np.ndarray
    waits_s: np.ndarray
    lane_m: float
    weave_m: float

    @classmethod
    def sample(cls, world: World, rng: np.random.Generator, stops: bool = True) -> DriveProfile:
        """A random profile.

        Args:
            world: the world (its traffic lights and length).
            rng: randomness.
            stops: stop at about 40 % of the traffic lights plus once mid-street; without
                stops the drive only slows for corners (a survey drive).
        """
        stop_list = list(world.stops_m[rng.uniform(size=len(world.stops_m)) < 0.4])
        stop_list.append(rng.uniform(0.2, 0.9) * world.route.length_m)
        stops_m = np.sort(np.array(stop_list)) if stops else np.zeros(0)
        return cls(
            cruise_mps=rng.uniform(6.5, 10.0),
            swing=rng.uniform(0.05, 0.25),
            swing_period_s=rng.uniform(15.0, 40.0),
            acceleration_mps2=rng.uniform(1.0, 2.2),
            deceleration_mps2=rng.uniform(1.8, 3.0),
            stops_m=stops_m,
            waits_s=rng.uniform(2.0, 8.0, len(stops_m)),
            lane_m=world.config.road_half_width_m * 0.4 + rng.uniform(-0.4, 0.4),
            weave_m=rng.uniform(0.05, 0.35),
        )


def simulate_drive(world: World, profile: DriveProfile, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the vehicle along the route from rest at the start to the end.

    The speed follows the cruise speed, limited by corners (lateral acceleration
    2.5 m/s^2 on the corner radius) and by braking distance to the next corner or stop,
    with bounded acceleration; the vehicle waits at its stops.

    Returns:
        times_s (T,) from 0 and arc lengths (T,) metres, sampled at ``rate_hz``.
    """
    step_s = 1.0 / rate_hz
    route = world.route
    corner_speed = math.sqrt(2.5 * world.config.corner_radius_m)
    grid_m = 0.5
    grid = np.arange(0.0, route.length_m + grid_m, grid_m)
    limit = np.full(len(grid), np.inf)
    for start, end in zip(route.corner_starts_m, route.corner_ends_m):
        limit[(grid >= start) & (grid <= end)] = corner_speed
    for index in range(len(grid) - 2, -1, -1):  # reachable by braking
        limit[index] = min(limit[index], math.sqrt(limit[index + 1] ** 2 + 2 * profile.deceleration_mps2 * grid_m))
    times, arcs = [0.0], [0.0]
    arc, speed, time = 0.0, 0.0, 0.0
    pending, waited = 0, 0.0
    while arc < route.length_m - 0.5:
        cruise = profile.cruise_mps * (1 + profile.swing * math.sin(2 * math.pi * time / profile.swing_period_s))
        target = min(cruise, limit[min(int(arc / grid_m), len(limit) - 1)])
        if pending < len(profile.stops_m):
            to_stop = profile.stops_m[pending] - arc
            if to_stop < 0.3 and speed <= 2 * profile.deceleration_mps2 * step_s:
                speed, target = 0.0, 0.0
                waited += step_s
                if waited >= profile.waits_s[pending]:
                    pending, waited = pending + 1, 0.0
            else:
                target = min(target, math.sqrt(2 * profile.deceleration_mps2 * max(to_stop - 0.05, 0.0)))
        if target > speed:
            speed = min(target, speed + profile.acceleration_mps2 * step_s)
        else:
            speed = max(target, speed - 2 * profile.deceleration_mps2 * step_s)
        arc += speed * step_s
        time += step_s
        times.append(time)
        arcs.append(arc)
    return np.array(times), np.array(arcs)


def _traverse_name(config: SynthConfig, index: int, rng: np.random.Generator) -> str:
    first = dt.datetime.strptime(config.first_date, _DATE_FORMAT).replace(tzinfo=dt.timezone.utc)
    when = first + dt.timedelta(days=9 * index + int(rng.integers(0, 5)), minutes=int(rng.integers(0, 600)))
    return when.strftime(_DATE_FORMAT)


def _render_traverse(config: SynthConfig, seed: int, index: int, out: Path, progress: bool) -> Traverse:
    """Render traverse ``index``; returns its ground truth (poses at image times)."""
    from tqdm import tqdm

    world = build_world(config.world, seed)
    rng = np.random.default_rng([seed, index])
    name = _traverse_name(config, index, rng)
    condition = CONDITIONS[config.conditions[index]]
    # The first traverse, the usual reference, is a survey drive without stops: the
    # pair builder drops reference sequences that span a stop (a time gap).
    profile = DriveProfile.sample(world, rng, stops=index > 0)
    vehicles = Vehicles.park(world, condition.parked_per_100m, rng)
    lit_offset = rng.uniform()
    sim_times, sim_arcs = simulate_drive(world, profile, config.ins_rate_hz)
    weave_period_m = rng.uniform(80.0, 200.0)

    def lateral(arcs: np.ndarray) -> np.ndarray:
        """Lane position along the route (a stopped vehicle does not drift)."""
        return profile.lane_m + profile.weave_m * np.sin(2 * np.pi * arcs / weave_period_m)

    def wobble(arcs: np.ndarray) -> np.ndarray:
        """Small yaw oscillation of the vehicle about the lane direction, radians."""
        return 0.01 * np.sin(2 * np.pi * arcs / 40.0)

    start_us = int(dt.datetime.strptime(name, _DATE_FORMAT).replace(tzinfo=dt.timezone.utc).timestamp() * 1e6)
    period_us = 1e6 / config.frame_rate_hz
    count = int(sim_times[-1] * config.frame_rate_hz)
    jitter = rng.integers(-1500, 1500, count)
    stamps_us = start_us + np.round(np.arange(count) * period_us).astype(np.int64) + jitter
    stamps_us[0] = max(stamps_us[0], start_us)
    image_times = (stamps_us - start_us) * 1e-6
    image_arcs = np.interp(image_times, sim_times, sim_arcs)
    positions, headings = world.route.pose_at(image_arcs, lateral(image_arcs))
    headings = headings + wobble(image_arcs)

    directory = out / name
    for frame in tqdm(range(count), desc=name, unit="img", disable=not progress):
        path = directory / "stereo" / "centre" / f"{stamps_us[frame]}.png"
        if path.exists():
            continue
        frame_rng = np.random.default_rng([seed, index, frame])
        image = render_frame(
            world, config.camera, positions[frame], headings[frame],
            image_arcs[frame], condition, vehicles, frame_rng, lit_offset,
        )
        write_png(path, sensor_mosaic(image, condition, frame_rng))
    atomic_write_text(directory / "stereo.timestamps", "".join(f"{s} 1\n" for s in stamps_us))

    origin, zone = latlon_to_utm(np.array([config.origin_latlon[0]]), np.array([config.origin_latlon[1]]))
    ins_positions, ins_headings = world.route.pose_at(sim_arcs, lateral(sim_arcs))
    ins_headings = ins_headings + wobble(sim_arcs)
    # Pad one second at rest before the start and after the end, so images are covered.
    pad = int(config.ins_rate_hz)
    step_s = 1.0 / config.ins_rate_hz
    ins_times = np.concatenate([sim_times[0] - step_s * np.arange(pad, 0, -1), sim_times,
                                sim_times[-1] + step_s * np.arange(1, pad + 1)])
    ins_positions = np.concatenate([np.repeat(ins_positions[:1], pad, 0), ins_positions,
                                    np.repeat(ins_positions[-1:], pad, 0)]) + origin
    ins_headings = np.concatenate([np.repeat(ins_headings[:1], pad), ins_headings, np.repeat(ins_headings[-1:], pad)])
    _write_ins(directory / "gps" / "ins.csv", start_us, ins_times, ins_positions, ins_headings, zone, rng)
    return Traverse(
        name, directory, np.array([f"stereo/centre/{s}.png" for s in stamps_us], dtype=object),
        stamps_us * 1e-6, positions + origin, zone, wrap_angle(headings), condition.name,
    )


def _write_ins(path: Path, start_us: int, times_s: np.ndarray, positions: np.ndarray,
               headings_rad: np.ndarray, zone: UtmZone, rng: np.random.Generator) -> None:
    latitude, longitude = utm_to_latlon(positions, zone)
    velocity = np.gradient(positions, times_s, axis=0)
    yaw_ned = wrap_angle(0.5 * np.pi - headings_rad)
    bad = rng.uniform(size=len(times_s)) < 0.005
    bad[[0, -1]] = False
    stamps = start_us + np.round(times_s * 1e6).astype(np.int64)
    rows = []
    for i in range(len(times_s)):
        easting, northing = positions[i] + (25.0 if bad[i] else 0.0)
        rows.append((
            stamps[i], "INS_BAD_GPS_AGREEMENT" if bad[i] else "INS_SOLUTION_GOOD",
            f"{latitude[i]:.9f}", f"{longitude[i]:.9f}", "110.000", f"{northing:.4f}",
            f"{easting:.4f}", "-110.000", zone, f"{velocity[i, 1]:.4f}", f"{velocity[i, 0]:.4f}",
            "0.0000", "0.000000", "0.000000", f"{yaw_ned[i]:.6f}",
        ))
    write_table(path, INS_COLUMNS, rows)


def synthesize(config: SynthConfig, out: str | os.PathLike, seed: int = 0, workers: int = 1,
               progress: bool = False, overwrite: bool = False) -> list[Traverse]:
    """Render a synthetic world's traverses in the RobotCar layout.

    Deterministic: the same config and seed give the same files. Resumable: images
    that exist are not rendered again (each frame has its own seeded noise, so a
    resumed run writes the same files as an uninterrupted one). The settings are
    recorded in the output folder (:func:`seqvpr.io.claim_output_dir`), so a folder is
    only resumed by a run with the same config and seed.

    Args:
        config: what to render.
        out: output root.
        seed: world and traverse seed.
        workers: processes to render traverses in parallel.
        progress: show progress bars.
        overwrite: empty a folder written with other settings instead of stopping.

    Returns:
        the ground truth of each traverse: image paths, times and poses exactly as
        generated (positions in UTM, zone from ``config.origin_latlon``).

    Raises:
        OutputConflictError: ``out`` holds a world rendered with other settings
            (names them), unless ``overwrite``.
        SeqvprError: ``out`` is a file or a folder that seqvpr did not write.
    """
    out = Path(out)
    claim_output_dir(out, {"seed": seed, **config_to_dict(config)}, overwrite=overwrite, command="synth")
    indices = range(len(config.conditions))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_render_traverse, config, seed, i, out, False) for i in indices]
            truths = [future.result() for future in futures]
    else:
        truths = [_render_traverse(config, seed, i, out, progress) for i in indices]
    write_table(out / CONDITIONS_CSV, ("traverse", "condition"), [(t.name, t.condition) for t in truths])
    LOGGER.info("wrote %d traverses to %s", len(truths), out)
    return truths
