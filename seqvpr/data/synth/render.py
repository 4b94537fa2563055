"""Render camera frames of a synthetic street world (numpy, vectorised per frame).

Per image column a ray is cast in the ground plane against every nearby facade
(2-D segment intersection, all columns x facades at once); per row the height on the
hit facade follows from the pinhole model, ``height = camera_height + v * depth`` with
``v = (cy - row) / f``. Rows below the facade see the ground at depth
``camera_height / -v``, rows above it the sky. Parked vehicles are low quads tested the
same way; trees, poles, lamps and traffic lights are camera-facing billboards painted
far to near, hidden where a facade is closer. Conditions (lighting, colour cast, snow,
night, haze) are applied on top; :func:`sensor_mosaic` adds the sensor (Bayer
sampling and noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqvpr.data.images import bayer_mosaic
from seqvpr.data.synth.world import LAMP, TRAFFIC_LIGHT, TREE_CROWN, World
from seqvpr.errors import SeqvprError

__all__ = ["Camera", "Condition", "CONDITIONS", "Vehicles", "render_frame", "sensor_mosaic"]

_MAX_DEPTH_M = 160.0


@dataclass(frozen=True)
class Camera:
    """A forward-looking pinhole camera.

    Attributes:
        width: image width in pixels (even).
        height: image height in pixels (even).
        horizontal_fov_deg: horizontal field of view.
        height_m: camera height above the road.
        horizon: principal point row as a fraction of the height (below 0.5 = the
            camera looks slightly up, showing more facade).
    """

    width: int = 240
    height: int = 180
    horizontal_fov_deg: float = 70.0
    height_m: float = 1.6
    horizon: float = 0.45

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 8 or self.height < 8:
            raise SeqvprError(f"image size must be even and at least 8x8, got {self.width}x{self.height}")

    @property
    def focal_px(self) -> float:
        return 0.5 * self.width / np.tan(np.radians(self.horizontal_fov_deg) / 2)


@dataclass(frozen=True)
class Condition:
    """Appearance of one traverse.

    Attributes:
        name: the label written for the traverse (``overcast``, ``sunny``, ...).
        exposure: overall gain.
        colour_gain: per-channel (R, G, B) gain (colour cast).
        gamma: output gamma (>1 brightens mid-tones).
        sun_azimuth_deg: direction of the sun (ENU, from east), None for diffuse light.
        sky_top: sky colour at the zenith (RGB 0..1).
        sky_horizon: sky colour at the horizon, also the haze colour.
        haze_m: distance at which haze reaches 63 %.
        snow: 0..1, snow cover on the ground, roofs and trees, and falling flakes.
        night: dark scene with lit windows, street lamps and headlights.
        noise_std: sensor noise standard deviation (0..1 scale).
        parked_per_100m: parked vehicles per 100 m of kerb (each traverse differs).
    """

    name: str
    exposure: float = 1.0
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    sun_azimuth_deg: float | None = None
    sky_top: tuple[float, float, float] = (0.62, 0.66, 0.72)
    sky_horizon: tuple[float, float, float] = (0.80, 0.82, 0.84)
    haze_m: float = 250.0
    snow: float = 0.0
    night: bool = False
    noise_std: float = 0.015
    parked_per_100m: float = 2.0


CONDITIONS = {
    "overcast": Condition("overcast"),
    "sunny": Condition(
        "sunny", exposure=1.12, colour_gain=(1.06, 1.0, 0.9), gamma=1.05, sun_azimuth_deg=35.0,
        sky_top=(0.30, 0.50, 0.85), sky_horizon=(0.70, 0.80, 0.92), haze_m=400.0,
        parked_per_100m=3.0,
    ),
    "snow": Condition(
        "snow", exposure=1.05, colour_gain=(0.95, 0.98, 1.06), gamma=1.1, sky_top=(0.78, 0.80, 0.84),
        sky_horizon=(0.88, 0.89, 0.91), haze_m=120.0, snow=1.0, noise_std=0.02, parked_per_100m=1.0,
    ),
    "dusk": Condition(
        "dusk", exposure=0.7, colour_gain=(1.15, 0.9, 0.75), sun_azimuth_deg=190.0,
        sky_top=(0.25, 0.25, 0.45), sky_horizon=(0.95, 0.6, 0.4), haze_m=200.0,
    ),
    "night": Condition(
        "night", exposure=0.22, colour_gain=(1.0, 0.95, 0.9), gamma=1.2, sky_top=(0.02, 0.03, 0.08),
        sky_horizon=(0.10, 0.09, 0.12), haze_m=150.0, night=True, noise_std=0.03,
        parked_per_100m=4.0,
    ),
}


@dataclass(frozen=True)
class Vehicles:
    """Parked vehicles of one traverse, as quads parallel to the kerb.

    Attributes:
        starts: shape (V, 2), one end of each vehicle side (x, y) metres.
        ends: shape (V, 2), the other end.
        colours: shape (V, 3), body colours.
        heights_m: shape (V,), roof heights.
    """

    starts: np.ndarray
    ends: np.ndarray
    colours: np.ndarray
    heights_m: np.ndarray

    @classmethod
    def park(cls, world: World, per_100m: float, rng: np.random.Generator) -> Vehicles:
        """Park vehicles at random along both kerbs."""
        count = int(rng.poisson(per_100m * world.route.length_m / 100.0 * 2))
        along = rng.uniform(0.0, world.route.length_m, count)
        side = rng.choice([-1.0, 1.0], count)
        lateral = side * (world.config.road_half_width_m - 1.0)
        length = rng.uniform(3.8, 5.5, count)
        starts, _ = world.route.pose_at(along, lateral)
        ends, _ = world.route.pose_at(along + length, lateral)
        colours = rng.uniform(0.05, 0.9, (count, 3)) * rng.uniform(0.5, 1.0, (count, 1))
        return cls(starts, ends, colours, rng.uniform(1.4, 2.0, count))


def _intersect(origin: np.ndarray, rays: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """Nearest intersection of each ray with a set of segments.

    Args:
        origin: (2,) ray origin; rays: (W, 2) directions with unit forward component,
        so the ray parameter is the depth along the optical axis.
        starts, ends: (F, 2) segment end points.

    Returns:
        depth (W,) (inf for no hit), index of the segment hit (W,), position along it
        0..1 (W,).
    """
    if len(starts) == 0:
        width = len(rays)
        return np.full(width, np.inf), np.zeros(width, np.int64), np.zeros(width)
    edge = ends - starts
    to_start = starts - origin
    denominator = rays[:, :1] * edge[None, :, 1] - rays[:, 1:] * edge[None, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (to_start[:, 0] * edge[:, 1] - to_start[:, 1] * edge[:, 0])[None] / denominator
        along = (to_start[None, :, 0] * rays[:, 1:] - to_start[None, :, 1] * rays[:, :1]) / denominator
    valid = (along >= 0.0) & (along < 1.0) & (depth > 0.3) & np.isfinite(depth)
    depth = np.where(valid, depth, np.inf)
    index = np.argmin(depth, axis=1)
    columns = np.arange(len(rays))
    return depth[columns, index], index, np.where(valid[columns, index], along[columns, index], 0.0)


def _hash_noise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) for integer lattice cells."""
    value = np.sin(a * 12.9898 + b * 78.233) * 43758.5453
    return value - np.floor(value)


def render_frame(
    world: World,
    camera: Camera,
    position: np.ndarray,
    heading_rad: float,
    route_arc_m: float,
    condition: Condition,
    vehicles: Vehicles,
    rng: np.random.Generator,
    lit_window_offset: float = 0.0,
) -> np.ndarray:
    """Render one frame.

    Args:
        world: the world.
        camera: intrinsics and mounting.
        position: (2,) camera position, local metres.
        heading_rad: viewing direction, counter-clockwise from east.
        route_arc_m: the route arc length nearest the camera (frames the road markings).
        condition: appearance.
        vehicles: the traverse's parked vehicles.
        rng: noise source (snow flakes).
        lit_window_offset: shifts which windows are lit at night (per traverse).

    Returns:
        the image, shape (camera.height, camera.width, 3) uint8 RGB.
    """
    width, height, focal = camera.width, camera.height, camera.focal_px
    cx, cy = 0.5 * width, camera.horizon * height
    forward = np.array([np.cos(heading_rad), np.sin(heading_rad)])
    right = np.array([np.sin(heading_rad), -np.cos(heading_rad)])
    column_slope = (np.arange(width) + 0.5 - cx) / focal
    rays = forward[None] + column_slope[:, None] * right[None]
    # (H,), positive above the horizon; rows from ``first_ground`` down see the ground.
    row_slope = ((cy - (np.arange(height) + 0.5)) / focal).astype(np.float32)
    first_ground = int(np.argmax(row_slope < 0))
    sky_colour = np.array(condition.sky_horizon, np.float32)

    # Facades: per column the nearest wall, per pixel its height on that wall.
    midpoints = 0.5 * (world.face_starts + world.face_ends)
    half_lengths = 0.5 * np.linalg.norm(world.face_ends - world.face_starts, axis=1)
    near_index = np.flatnonzero(np.linalg.norm(midpoints - position, axis=1) < _MAX_DEPTH_M + half_lengths)
    depth, hit, along = _intersect(position, rays, world.face_starts[near_index], world.face_ends[near_index])
    face = near_index[hit]
    has_wall = np.isfinite(depth)
    wall_depth = np.where(has_wall, depth, _MAX_DEPTH_M * 4)
    wall_height = camera.height_m + row_slope[:, None] * wall_depth.astype(np.float32)[None, :]  # (H, W)
    face_top = np.where(has_wall, world.face_heights_m[face], -1.0).astype(np.float32)
    on_wall = (wall_height >= 0.0) & (wall_height < face_top[None])
    ppm = world.config.pixels_per_m
    texel_row = np.minimum((np.maximum(wall_height, 0.0) * ppm).astype(np.int32), world.atlas.shape[1] - 1)
    texel_column = world.face_atlas_columns[face] + np.minimum(
        (along * world.face_widths_px[face]).astype(np.int32), world.face_widths_px[face] - 1
    )
    footprint = ppm * wall_depth / focal  # texels per pixel
    level = np.where(footprint < 1.5, 0, np.where(footprint < 4.0, 1, 2))
    wall = world.atlas[level[None, :], texel_row, texel_column[None, :]].astype(np.float32)
    if condition.sun_azimuth_deg is not None:
        sun = np.radians(condition.sun_azimuth_deg)
        shade = 0.55 + 0.6 * np.maximum(0.0, np.cos(world.face_normals_rad[face] - sun))
    else:
        shade = 0.9 + 0.1 * np.cos(world.face_normals_rad[face] - 1.0)
    wall *= (shade / 255.0).astype(np.float32)[None, :, None]
    if condition.snow:
        wall[wall_height > face_top[None] - 0.35] = 0.95
    if condition.night:
        windows = world.window_atlas[texel_row, texel_column[None]]
        lit = ((windows / 255.0 + lit_window_offset) % 1.0 < 0.35) & (windows > 0)
        wall *= 0.6
        wall[lit] = (4.0, 3.3, 1.8)

    # Ground: road, markings and sidewalks, framed by the route at the camera.
    ground_depth = (camera.height_m / -row_slope[first_ground:])[:, None]  # (G, 1)
    (route_point,), (route_heading,) = world.route.pose_at(np.array([route_arc_m]))
    tangent = np.array([np.cos(route_heading), np.sin(route_heading)])
    normal = np.array([-tangent[1], tangent[0]])
    offset = position - route_point
    lateral = np.float32(offset @ normal) + ground_depth * (rays @ normal).astype(np.float32)[None]
    longitudinal = np.float32(route_arc_m + offset @ tangent) + ground_depth * (rays @ tangent).astype(np.float32)[None]
    cell = _hash_noise(np.floor(longitudinal * 4), np.floor(lateral * 4)) - 0.5
    distance_from_centre = np.abs(lateral)
    road = distance_from_centre < world.config.road_half_width_m
    kerb = np.abs(distance_from_centre - world.config.road_half_width_m) < 0.12
    if condition.snow:
        tracks = np.minimum(np.abs(lateral - 1.3), np.abs(lateral - 2.9)) < 0.35
        grey = np.where(road, np.where(tracks, 0.55, 0.88), 0.93) + 0.03 * cell
        grey = np.where(kerb, 0.8, grey)
        tint = np.ones(3, np.float32)
    else:
        dash = (distance_from_centre < 0.08) & (np.mod(longitudinal, 6.0) < 3.0)
        paving = (np.mod(longitudinal, 1.2) < 0.06) | (np.mod(lateral, 1.2) < 0.06)
        grey = np.where(road, 0.33 + 0.03 * cell, np.where(paving, 0.48, 0.60 + 0.04 * cell))
        grey = np.where(dash, 0.9, np.where(kerb, 0.75, grey))
        tint = np.array([1.0, 0.97, 0.92], np.float32)
    ground = grey[..., None] * np.where(road[..., None], np.float32(1.0), tint)
    if condition.night:
        ground *= 0.5
        headlight = np.exp(-(lateral - 1.8) ** 2 / 6.0 - (ground_depth - 9.0) ** 2 / 60.0)
        ground += (2.2 * headlight)[..., None]

    # Compose: sky gradient, ground below the horizon, facades where a wall is hit.
    sky_weight = np.clip(row_slope * 2.5, 0.0, 1.0)[:, None]
    sky = (1 - sky_weight) * sky_colour[None] + sky_weight * np.array(condition.sky_top, np.float32)[None]
    image = np.empty((height, width, 3), np.float32)
    image[:] = sky[:, None, :]
    image[first_ground:] = ground
    np.copyto(image, wall, where=on_wall[..., None])

    # Haze by depth (walls: wall depth; ground: ground depth; none on the sky).
    wall_haze = (1.0 - np.exp(-wall_depth / condition.haze_m)).astype(np.float32)
    row_haze = np.zeros(height, np.float32)
    row_haze[first_ground:] = 1.0 - np.exp(-ground_depth[:, 0] / condition.haze_m)
    haze = np.where(on_wall, wall_haze[None, :], row_haze[:, None])[..., None]
    image += haze * (sky_colour - image)

    _draw_vehicles(image, vehicles, position, rays, row_slope, wall_depth, camera, condition)
    _draw_billboards(image, world.objects, position, forward, right, wall_depth, camera, condition)

    image *= condition.exposure * np.array(condition.colour_gain, np.float32)
    if condition.snow:
        flakes = rng.integers(0, height * width, size=int(0.004 * height * width))
        image.reshape(-1, 3)[flakes] = 1.0
    image = np.clip(image, 0.0, 1.0)
    if condition.gamma != 1.0:
        image **= 1.0 / condition.gamma
    return (image * 255.0 + 0.5).astype(np.uint8)


def sensor_mosaic(image: np.ndarray, condition: Condition, rng: np.random.Generator) -> np.ndarray:
    """What the camera records: the GBRG Bayer mosaic of ``image`` plus sensor noise.

    Noise is added per raw pixel (as on a real sensor), before demosaicing spreads it.

    Args:
        image: (H, W, 3) uint8 RGB from :func:`render_frame`.

    Returns:
        (H, W) uint8 mosaic.
    """
    mosaic = bayer_mosaic(image, "gbrg").astype(np.float32)
    mosaic += rng.standard_normal(mosaic.shape, dtype=np.float32) * (255.0 * condition.noise_std)
    return (np.clip(mosaic, 0.0, 255.0) + 0.5).astype(np.uint8)


def _draw_vehicles(image, vehicles, position, rays, row_slope, wall_depth, camera, condition):
    """Paint parked vehicles (quads along the kerb) in front of the walls, in place."""
    depth, hit, _ = _intersect(position, rays, vehicles.starts, vehicles.ends)
    visible = np.flatnonzero(np.isfinite(depth) & (depth < wall_depth) & (depth < 80.0))
    if visible.size == 0:
        return
    height_at = camera.height_m + row_slope[:, None] * depth[visible][None]  # (H, V)
    roof = vehicles.heights_m[hit[visible]][None]
    body = (height_at >= 0.25) & (height_at < roof)
    glass = (height_at > roof - 0.55) & body
    wheels = (height_at < 0.5) & (height_at >= 0.0)
    colour = vehicles.colours[hit[visible]].astype(np.float32) * (0.35 if condition.night else 1.0)
    patch = image[:, visible]
    np.copyto(patch, np.broadcast_to(colour[None], patch.shape), where=body[..., None])
    patch[glass] = 0.12
    patch[wheels] = 0.05
    image[:, visible] = patch


def _draw_billboards(image, objects, position, forward, right, wall_depth, camera, condition):
    """Paint camera-facing billboards far to near where no wall is closer, in place."""
    relative = np.stack([objects["x"] - position[0], objects["y"] - position[1]], axis=-1)
    depth = relative @ forward
    lateral = relative @ right
    focal = camera.focal_px
    cx, cy = 0.5 * camera.width, camera.horizon * camera.height
    half_view = 0.5 * camera.width / focal
    in_view = (depth > 1.0) & (depth < 90.0) & (np.abs(lateral) < depth * half_view + objects["width"])
    for index in np.flatnonzero(in_view)[np.argsort(-depth[in_view])]:
        item = objects[index]
        z = depth[index]
        centre = cx + focal * lateral[index] / z
        half = max(0.5, 0.5 * focal * item["width"] / z)
        top = cy - focal * (item["top"] - camera.height_m) / z
        bottom = cy - focal * (item["bottom"] - camera.height_m) / z
        col0, col1 = max(int(np.floor(centre - half)), 0), min(int(np.ceil(centre + half)), camera.width)
        row0, row1 = max(int(np.floor(top)), 0), min(int(np.ceil(bottom)), camera.height)
        if col0 >= col1 or row0 >= row1:
            continue
        columns, rows = np.arange(col0, col1) + 0.5, np.arange(row0, row1) + 0.5
        mask = np.broadcast_to((wall_depth[col0:col1] > z)[None], (row1 - row0, col1 - col0))
        if item["ellipse"]:
            u = (columns - centre) / half
            v = (rows - 0.5 * (top + bottom)) / max(0.5 * (bottom - top), 0.5)
            mask = mask & (u[None] ** 2 + v[:, None] ** 2 <= 1.0)
        colour = np.array(item["colour"], np.float32)
        if condition.snow and item["kind"] == TREE_CROWN:
            colour = 0.5 * colour + 0.45
        if condition.night:
            colour = colour * (8.0 if item["kind"] == LAMP else 0.4)
        block = image[row0:row1, col0:col1]
        block[mask] = colour
        if item["kind"] == TRAFFIC_LIGHT:  # a lit lamp, red or green, in the housing
            lamp = slice(mask.shape[0] // 3, mask.shape[0] // 3 + max(1, mask.shape[0] // 4))
            block[lamp][mask[lamp]] = (0.9, 0.1, 0.1) if index % 2 else (0.1, 0.9, 0.2)
