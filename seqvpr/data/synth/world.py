"""A procedural street world: a route, facades along it, and street furniture.

The route is a staircase of straight streets joined by circular corners; each street
direction stays within 90 degrees of one overall direction, so the route never
crosses itself. Both sides of every street are lined with buildings. Buildings are
drawn from a handful of facade *templates* (floor height, window grid, colours, ground
floor) with small variations, so similar facades recur along the route (perceptual
aliasing) while shop signs, trees, lamp posts and traffic lights make places
distinguishable. Coordinates are local metres, x east and y north; the world is placed
on the globe by a UTM origin (see :mod:`seqvpr.data.synth.drive`).

Facade textures are painted once into an atlas (rows: height above ground, columns:
metres along each facade), sampled by the renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seqvpr.errors import SeqvprError

__all__ = ["WorldConfig", "Route", "World", "build_world"]

# Facade base colours (RGB 0..1): brick red, sandstone, grey, white, brown, pale yellow.
_FACADE_PALETTE = np.array(
    [[0.62, 0.26, 0.20], [0.80, 0.70, 0.52], [0.55, 0.56, 0.58],
     [0.88, 0.87, 0.83], [0.42, 0.30, 0.22], [0.90, 0.82, 0.55]]
)


@dataclass(frozen=True)
class WorldConfig:
    """Size and layout of the world.

    Attributes:
        route_length_m: length of the route along its centre line.
        street_length_m: (min, max) length of one straight street.
        corner_radius_m: radius of the corners.
        road_half_width_m: centre line to kerb.
        sidewalk_m: kerb to facade, at least; facades stand at road half width +
            sidewalk + up to 2 m.
        templates: number of distinct facade templates (fewer = more aliasing).
        pixels_per_m: facade texture resolution.
        sign_probability: chance that a building has a shop sign (a landmark).
        tree_spacing_m: mean spacing of trees per side.
    """

    route_length_m: float = 1000.0
    street_length_m: tuple[float, float] = (90.0, 220.0)
    corner_radius_m: float = 12.0
    road_half_width_m: float = 4.5
    sidewalk_m: float = 3.0
    templates: int = 5
    pixels_per_m: float = 8.0
    sign_probability: float = 0.3
    tree_spacing_m: float = 22.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.route_length_m) and self.route_length_m > 0):
            raise SeqvprError(f"route length must be a number of metres above 0, got {self.route_length_m}")


@dataclass(frozen=True)
class Route:
    """The route centre line sampled every ``step_m`` metres of arc length.

    Attributes:
        arc_m: shape (S,), arc length of each sample.
        points: shape (S, 2), local (x east, y north) metres.
        headings_rad: shape (S,), tangent direction, counter-clockwise from east.
        corner_starts_m: arc length where each corner starts, shape (C,).
        corner_ends_m: arc length where each corner ends, shape (C,).
    """

    arc_m: np.ndarray
    points: np.ndarray
    headings_rad: np.ndarray
    corner_starts_m: np.ndarray
    corner_ends_m: np.ndarray

    def streets(self) -> list[tuple[float, float]]:
        """(start, end) arc lengths of the straight streets, in route order."""
        starts = np.concatenate([[0.0], self.corner_ends_m])
        ends = np.concatenate([self.corner_starts_m, [self.length_m]])
        return list(zip(starts.tolist(), ends.tolist()))

    @property
    def length_m(self) -> float:
        return float(self.arc_m[-1])

    def pose_at(
        self, arc_m: np.ndarray, lateral_m: np.ndarray | float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Position and heading at arc lengths, shifted ``lateral_m`` to the left.

        Args:
            arc_m: shape (N,), metres along the route.
            lateral_m: shape (N,) or scalar, metres left of the centre line.

        Returns:
            points (N, 2) and headings (N,) (heading unwrapped, not wrapped).
        """
        arc_m = np.asarray(arc_m, dtype=np.float64)
        heading = np.interp(arc_m, self.arc_m, self.headings_rad)
        inside = np.clip(arc_m, 0.0, self.length_m)
        # Beyond either end the route continues straight along its end tangent.
        beyond = arc_m - inside
        x = np.interp(inside, self.arc_m, self.points[:, 0]) + np.cos(heading) * beyond
        y = np.interp(inside, self.arc_m, self.points[:, 1]) + np.sin(heading) * beyond
        x = x - np.sin(heading) * lateral_m
        y = y + np.cos(heading) * lateral_m
        return np.stack([x, y], axis=-1), heading


@dataclass(frozen=True)
class World:
    """Everything static the renderer needs.

    Attributes:
        config: the layout parameters.
        route: the route centre line.
        face_starts: shape (F, 2), facade start points (x, y) metres.
        face_ends: shape (F, 2), facade end points.
        face_heights_m: shape (F,), building heights.
        face_atlas_columns: shape (F,), first atlas column of each facade.
        face_widths_px: shape (F,), atlas columns per facade.
        face_normals_rad: shape (F,), outward direction of each facade (towards the street).
        atlas: mip levels of the facade textures, shape (3, rows, columns, 3) uint8 RGB,
            row 0 at the ground; level 0 sharp, levels 1 and 2 blurred for distant walls.
        window_atlas: (rows, columns) uint8; 0 = wall, 1..255 = a window's random id.
        objects: structured array of billboards (trees, poles, lights, signs): see
            ``OBJECT_DTYPE``.
        stops_m: arc lengths of traffic lights (where traverses may stop).
    """

    config: WorldConfig
    route: Route
    face_starts: np.ndarray
    face_ends: np.ndarray
    face_heights_m: np.ndarray
    face_atlas_columns: np.ndarray
    face_widths_px: np.ndarray
    face_normals_rad: np.ndarray
    atlas: np.ndarray
    window_atlas: np.ndarray
    objects: np.ndarray
    stops_m: np.ndarray


# Billboards: position (local metres), width and vertical extent (m), RGB colour,
# shape (ellipse or rectangle)
# and kind (0 tree crown, 1 trunk/pole, 2 lamp, 3 traffic light).
OBJECT_DTYPE = np.dtype(
    [("x", "f8"), ("y", "f8"), ("width", "f8"), ("bottom", "f8"), ("top", "f8"),
     ("colour", "f4", 3), ("ellipse", "?"), ("kind", "i1")]
)
TREE_CROWN, POLE, LAMP, TRAFFIC_LIGHT = range(4)


def _build_route(config: WorldConfig, rng: np.random.Generator, step_m: float = 0.5) -> Route:
    overall = rng.uniform(-np.pi, np.pi)
    headings, lengths, corners = [], [], []
    total, side = 0.0, 1.0
    heading = overall + side * np.radians(rng.uniform(10, 60))
    while total < config.route_length_m:
        street = rng.uniform(*config.street_length_m)
        street = min(street, config.route_length_m - total + 1.0)
        headings.append(heading)
        lengths.append(street)
        total += street
        if total >= config.route_length_m:
            break
        side = -side
        new_heading = overall + side * np.radians(rng.uniform(10, 60))
        corner_length = config.corner_radius_m * abs(new_heading - heading)
        corners.append((total, total + corner_length, new_heading - heading))
        total += corner_length
        heading = new_heading
    arc = np.arange(0.0, total + step_m, step_m)
    arc = arc[arc <= total]
    # Heading as a function of arc length: constant on streets, linear along corners.
    knots_arc, knots_heading = [0.0], [headings[0]]
    position = 0.0
    for index, street in enumerate(lengths):
        position += street
        knots_arc.append(position)
        knots_heading.append(headings[index])
        if index < len(corners):
            start, end, turn = corners[index]
            position = end
            knots_arc.append(position)
            knots_heading.append(headings[index] + turn)
    tangent_heading = np.interp(arc, knots_arc, knots_heading)
    steps = np.stack([np.cos(tangent_heading), np.sin(tangent_heading)], axis=-1) * step_m
    points = np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], axis=0)])
    corner_array = np.array(corners).reshape(-1, 3)
    return Route(arc, points, tangent_heading, corner_array[:, 0], corner_array[:, 1])


def _paint_template(template: dict, width_px: int, height_px: int, ppm: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint one facade (row 0 at the top), returning RGB float32 and window ids."""
    colour = np.clip(template["colour"] * rng.uniform(0.9, 1.1, 3), 0, 1)
    texture = np.empty((height_px, width_px, 3), np.float32)
    texture[:] = colour
    # Fine masonry texture, fixed per building.
    texture *= rng.uniform(0.93, 1.07, (height_px, width_px, 1)).astype(np.float32)
    windows = np.zeros((height_px, width_px), np.uint8)
    floor_px = template["floor_m"] * ppm
    bay_px = template["bay_m"] * ppm
    bays = max(1, int(width_px // bay_px))
    margin = (width_px - bays * bay_px) / 2
    window_w = template["window_w"] * bay_px
    window_h = template["window_h"] * floor_px
    floors = int(height_px // floor_px)
    frame = template["frame"]
    glass = np.array([0.18, 0.22, 0.28]) * rng.uniform(0.8, 1.2)
    for floor in range(1, floors):
        bottom = height_px - floor * floor_px - 0.25 * floor_px
        top = int(bottom - window_h)
        for bay in range(bays):
            left = int(margin + bay * bay_px + (bay_px - window_w) / 2)
            right = int(left + window_w)
            texture[top - 1:int(bottom) + 2, left - 1:right + 1] = frame
            texture[top:int(bottom), left:right] = glass
            if template["mullion"]:
                middle = (left + right) // 2
                texture[top:int(bottom), middle:middle + 1] = frame
            windows[top:int(bottom), left:right] = rng.integers(1, 256)
    # Cornice band under the roof line and a plinth.
    band = max(1, int(0.4 * ppm))
    texture[:band] = template["trim"]
    texture[-band:] = colour * 0.6
    # Ground floor: a door, and for shop-style templates a wide window.
    door_w = int(1.2 * ppm)
    door_left = int(rng.uniform(0.1, 0.8) * max(1, width_px - door_w))
    texture[height_px - int(2.2 * ppm):height_px - band, door_left:door_left + door_w] = template["door"]
    if template["shop"]:
        shop_left = int(0.1 * width_px)
        shop_right = max(shop_left + 1, door_left - int(0.3 * ppm))
        texture[height_px - int(2.6 * ppm):height_px - int(0.6 * ppm), shop_left:shop_right] = glass * 1.3
    return texture, windows


def _make_template(rng: np.random.Generator) -> dict:
    return {
        "colour": _FACADE_PALETTE[rng.integers(len(_FACADE_PALETTE))],
        "floor_m": rng.uniform(2.9, 3.6),
        "bay_m": rng.uniform(1.8, 3.2),
        "window_w": rng.uniform(0.35, 0.7),
        "window_h": rng.uniform(0.4, 0.65),
        "frame": rng.choice([0.95, 0.2, 0.5]) * np.ones(3),
        "trim": rng.uniform(0.2, 0.95, 3),
        "door": rng.uniform(0.05, 0.6, 3),
        "mullion": bool(rng.integers(2)),
        "shop": bool(rng.integers(2)),
        "floors": int(rng.integers(2, 6)),
    }


def build_world(config: WorldConfig, seed: int) -> World:
    """Generate a world, deterministically from ``seed``.

    Returns:
        the :class:`World`; building it for a 1 km route takes well under a second.
    """
    import cv2

    rng = np.random.default_rng(seed)
    route = _build_route(config, rng)
    templates = [_make_template(rng) for _ in range(config.templates)]
    ppm = config.pixels_per_m
    height_px = int(np.ceil((max(t["floors"] + 1 for t in templates) * 3.6 + 0.8) * ppm)) + 1
    starts, ends, heights, columns, widths, normals = [], [], [], [], [], []
    textures, window_textures = [], []
    objects = []
    column = 0
    streets = route.streets()
    for index, (street_start, street_end) in enumerate(streets):
        for side in (1.0, -1.0):
            offset = config.road_half_width_m + config.sidewalk_m + rng.uniform(0.0, 2.0)
            # Leave the corners open (side streets) so facades of two streets never cross.
            margin = offset + 3.0
            along = street_start - 20.0 if index == 0 else street_start + margin
            stop = street_end + 20.0 if index == len(streets) - 1 else street_end - margin
            while along < stop - 4.0:
                width = min(rng.uniform(7.0, 16.0), stop - along)
                template = templates[rng.integers(len(templates))]
                floors = max(2, template["floors"] + int(rng.integers(-1, 2)))
                height = floors * template["floor_m"] + 0.8
                width_px, tex_h = max(2, int(width * ppm)), int(height * ppm)
                texture, windows = _paint_template(template, width_px, tex_h, ppm, rng)
                if rng.uniform() < config.sign_probability:
                    _paint_sign(texture, ppm, rng)
                padded = np.zeros((height_px, width_px, 3), np.float32)
                padded[:tex_h] = texture[::-1]
                padded_windows = np.zeros((height_px, width_px), np.uint8)
                padded_windows[:tex_h] = windows[::-1]
                textures.append(padded)
                window_textures.append(padded_windows)
                (a, b), heading = route.pose_at(np.array([along, along + width]), side * offset)
                # Both sides run in the direction of travel (texture columns advance with
                # the route); the normal faces the street.
                starts.append(a)
                ends.append(b)
                heights.append(height)
                columns.append(column)
                widths.append(width_px)
                normals.append(heading[0] - side * np.pi / 2)
                column += width_px
                along += width + (rng.uniform(2.0, 5.0) if rng.uniform() < 0.2 else 0.0)
            _add_street_furniture(objects, route, street_start, street_end, side, config, rng)
    sharp = np.concatenate(textures, axis=1)
    levels = [sharp, cv2.GaussianBlur(sharp, (0, 0), 1.2), cv2.GaussianBlur(sharp, (0, 0), 3.0)]
    atlas = (np.clip(np.stack(levels), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    stops = []
    for corner in route.corner_starts_m:
        stops.append(corner - 6.0)
        (light,), _ = route.pose_at(np.array([corner - 4.0]), -(config.road_half_width_m + 0.8))
        objects.append((light[0], light[1], 0.15, 0.0, 3.2, (0.15, 0.15, 0.15), False, POLE))
        objects.append((light[0], light[1], 0.45, 2.2, 3.3, (0.05, 0.05, 0.05), False, TRAFFIC_LIGHT))
    return World(
        config, route, np.array(starts), np.array(ends), np.array(heights),
        np.array(columns), np.array(widths), np.array(normals), atlas,
        np.concatenate(window_textures, axis=1), np.array(objects, dtype=OBJECT_DTYPE),
        np.array(stops),
    )


def _paint_sign(texture: np.ndarray, ppm: float, rng: np.random.Generator) -> None:
    """A saturated shop sign with a random glyph pattern above the ground floor."""
    height_px, width_px = texture.shape[:2]
    top = height_px - int(3.6 * ppm)
    bottom = top + int(0.9 * ppm)
    left = int(rng.uniform(0.05, 0.3) * width_px)
    right = int(rng.uniform(0.6, 0.95) * width_px)
    hue = rng.uniform(0, 1)
    colour = np.array([abs(np.sin(np.pi * (hue + k / 3))) for k in range(3)])
    texture[top:bottom, left:right] = colour / max(colour.max(), 1e-6)
    glyphs = rng.uniform(size=max(1, (right - left) // 3)) < 0.5
    glyph_colour = 1.0 - texture[top, left]
    for k, on in enumerate(glyphs):
        if on:
            texture[top + 2:bottom - 2, left + 3 * k + 1:left + 3 * k + 3] = glyph_colour


def _add_street_furniture(objects: list, route: Route, start: float, end: float, side: float,
                          config: WorldConfig, rng: np.random.Generator) -> None:
    """Trees and lamp posts along one side of one street."""
    kerb = side * (config.road_half_width_m + 1.2)
    along = start + rng.uniform(3.0, config.tree_spacing_m)
    while along < end - 3.0:
        (point,), _ = route.pose_at(np.array([along]), kerb)
        if rng.uniform() < 0.7:
            crown = rng.uniform(1.4, 2.6)
            trunk = rng.uniform(2.0, 3.0)
            green = np.array([0.20, 0.38, 0.16]) * rng.uniform(0.7, 1.3, 3)
            objects.append((point[0], point[1], 0.3, 0.0, trunk + 0.5, (0.30, 0.22, 0.15), False, POLE))
            objects.append((point[0], point[1], 2 * crown, trunk, trunk + 2 * crown, tuple(green), True, TREE_CROWN))
        else:
            objects.append((point[0], point[1], 0.18, 0.0, 5.5, (0.2, 0.2, 0.22), False, POLE))
            objects.append((point[0], point[1], 0.6, 5.2, 5.6, (0.9, 0.9, 0.8), True, LAMP))
        along += config.tree_spacing_m * rng.uniform(0.5, 1.5)
