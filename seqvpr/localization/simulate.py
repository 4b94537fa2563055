"""A synthetic route and camera stream of descriptors, for soak tests and benchmarks.

The reference is a closed loop sampled every ``spacing_m``; its descriptors are a smooth
random walk on the unit sphere (neighbouring places look alike, distant ones do not), with
a few repeated stretches (perceptual aliasing). A simulated robot drives the loop at a
slowly varying speed; its camera frame at path position s is the reference descriptor
interpolated at s plus noise, so the truth of every frame is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqvpr.localization.map import Map, MapPart, write_map

__all__ = ["SyntheticRoute", "synthetic_route", "route_map", "drive"]


@dataclass(frozen=True)
class SyntheticRoute:
    """A loop route: path positions (N,), UTM positions (N, 2), headings (N,), descriptors (N, D)."""

    path_m: np.ndarray
    positions: np.ndarray
    headings: np.ndarray
    descriptors: np.ndarray

    @property
    def length_m(self) -> float:
        return float(self.path_m[-1])

    def at(self, path_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (K, 2) and descriptors (K, D) at path positions (wrapped onto the loop)."""
        s = np.mod(path_m, self.length_m)
        upper = np.clip(np.searchsorted(self.path_m, s, side="right"), 1, len(self.path_m) - 1)
        fraction = ((s - self.path_m[upper - 1]) / (self.path_m[upper] - self.path_m[upper - 1]))[:, None]
        positions = (1 - fraction) * self.positions[upper - 1] + fraction * self.positions[upper]
        values = (1 - fraction) * self.descriptors[upper - 1] + fraction * self.descriptors[upper]
        return positions, values


def synthetic_route(frames: int, dim: int, *, spacing_m: float = 2.0, smoothness: int = 8, seed: int = 0,
                    origin: tuple[float, float] = (620000.0, 5735000.0)) -> SyntheticRoute:
    """A closed loop of ``frames`` reference frames ``spacing_m`` apart with ``dim``-d descriptors."""
    rng = np.random.default_rng(seed)
    path = spacing_m * np.arange(frames, dtype=np.float64)
    angle = 2 * np.pi * path / (path[-1] + spacing_m)
    radius = (path[-1] + spacing_m) / (2 * np.pi)
    positions = np.stack([origin[0] + radius * np.cos(angle), origin[1] + radius * np.sin(angle)], axis=1)
    headings = np.mod(angle + np.pi / 2 + np.pi, 2 * np.pi) - np.pi
    noise = rng.normal(size=(frames + smoothness, dim)).astype(np.float32)
    kernel = np.hanning(smoothness + 2)[1:-1]
    descriptors = np.stack([np.convolve(noise[:, d], kernel, mode="valid")[:frames] for d in range(dim)], axis=1)
    # Perceptual aliasing: a few stretches repeat another stretch with small changes.
    for _ in range(max(1, frames // 2000)):
        length = min(40, frames // 10)
        source, target = rng.integers(0, frames - length, size=2)
        descriptors[target:target + length] = descriptors[source:source + length] + 0.5 * rng.normal(
            size=(length, dim)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    return SyntheticRoute(path, positions, headings, descriptors.astype(np.float32))


def route_map(route: SyntheticRoute, out, *, fingerprint: str = "synthetic", **map_options) -> Map:
    """Write the route as a one-traverse map (reference driven at 10 m/s)."""
    from seqvpr.localization.config import MapConfig

    part = MapPart("loop", "synthetic", 1_000_000.0 + route.path_m / 10.0, route.positions, route.headings,
                   route.descriptors)
    return write_map(out, [part], zone="30U", fingerprint=fingerprint, encoder={}, config=MapConfig(**map_options))


def drive(route: SyntheticRoute, seconds: float, rate_hz: float, *, noise: float = 0.5, seed: int = 1,
          start_m: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A camera stream: stamps (F,), true positions (F, 2), descriptors (F, D).

    The robot's speed varies slowly between 5 and 12 m/s; the reference is a 10 m/s drive,
    so the speed ratio stays inside the localizer's default range. Descriptor noise is
    relative to the unit-norm signal.
    """
    rng = np.random.default_rng(seed)
    count = int(seconds * rate_hz)
    stamps = 2_000_000.0 + np.arange(count) / rate_hz
    speed = 8.5 + 3.5 * np.sin(2 * np.pi * stamps / 97.0 + rng.uniform(0, 6))
    path = start_m + np.concatenate([[0.0], np.cumsum(speed[:-1] / rate_hz)])
    positions, values = route.at(path)
    values = values + noise * rng.normal(size=values.shape).astype(np.float32) / np.sqrt(values.shape[1])
    return stamps, positions, values.astype(np.float32)
