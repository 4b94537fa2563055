"""The small synthetic world the live node tests run on, built with the ordinary commands.

- ``prepared/``: a 300 m route rendered at 5 fps (overcast), 120x90 pixels;
- ``foreign/``: 100 m of a different world (another seed), a route the map does not hold;
- ``model/encoder.pt``: the demo's small untrained encoder (VGG16 conv1 + NetVLAD);
- ``map/``: ``seqvpr map build`` of that traverse;
- ``query/``: the stream the player publishes, one traverse restamped every 0.2 s (the
  camera's 5 fps; the player publishes faster than that, which only the wall clock sees):
  the route's frames ``[0, ROUTE)``, then ``FOREIGN`` foreign frames, then ``STRESS``
  frames cycling through the rest of the route (the 100 Hz burst), stamped a keyframe
  period apart.

The query replays the map's own traverse, so the localizer tracks wherever it should:
these tests check the node around the localizer (and that it goes LOST off the map), not
the localizer's accuracy across conditions, which its own tests measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROUTE = 100
FOREIGN = 60
STRESS = 1000
PERIOD_S = 0.2
# Stamp spacing in the burst: one keyframe period, so that every burst frame is a keyframe
# (encoder and alignment): no machine localizes those at 100 Hz, so frames must be dropped.
STRESS_PERIOD_S = 1.0


@dataclass(frozen=True)
class World:
    root: Path
    map_dir: Path
    model: Path
    query: Path

    @property
    def phases(self) -> dict[str, tuple[int, int]]:
        """Index ranges [first, end) of the query stream's parts."""
        return {"route": (0, ROUTE), "foreign": (ROUTE, ROUTE + FOREIGN),
                "stress": (ROUTE + FOREIGN, ROUTE + FOREIGN + STRESS)}


def _check(code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"building the test world: {what} exited with {code}")


def build_world(root: Path) -> World:
    """Renders and prepares the world, the encoder, the map and the query stream under ``root``."""
    from seqvpr.cli import main as seqvpr
    from seqvpr.cli.demo import _untrained_encoder
    from seqvpr.data.traverse import Traverse, read_traverse, write_traverse

    size = ["--width", "120", "--height", "90", "--fps", "5"]
    _check(seqvpr(["synth", "--out", str(root / "raw"), "--length-m", "300", *size,
                   "--conditions", "overcast", "--workers", "1"]), "synth")
    _check(seqvpr(["synth", "--out", str(root / "raw_foreign"), "--seed", "7", "--length-m", "100", *size,
                   "--conditions", "sunny", "--workers", "1"]), "synth (foreign)")
    _check(seqvpr(["prepare-robotcar", str(root / "raw"), "--out", str(root / "prepared")]), "prepare-robotcar")
    _check(seqvpr(["prepare-robotcar", str(root / "raw_foreign"), "--out", str(root / "foreign")]),
           "prepare-robotcar (foreign)")
    model = _untrained_encoder(root / "prepared", root / "model" / "encoder.pt", seed=0)
    route = next((root / "prepared").glob("*/traverse.csv")).parent
    _check(seqvpr(["map", "build", str(route), "--model", str(model), "--out", str(root / "map"), "--no-progress"]),
           "map build")

    route_traverse = read_traverse(route)
    foreign_traverse = read_traverse(next((root / "foreign").glob("*/traverse.csv")).parent)
    sources = [(route_traverse, index) for index in range(ROUTE)]
    sources += [(foreign_traverse, index) for index in range(FOREIGN)]
    sources += [(route_traverse, ROUTE + index % (len(route_traverse) - ROUTE)) for index in range(STRESS)]
    query = root / "query"
    (query / "images").mkdir(parents=True)
    names, positions, headings = [], [], []
    for number, (traverse, index) in enumerate(sources):
        name = f"images/{number:05d}.png"
        (query / name).symlink_to(traverse.image_path(index))
        names.append(name)
        positions.append(traverse.positions[index])
        headings.append(traverse.headings_rad[index])
    steps = np.full(len(sources), PERIOD_S)
    steps[ROUTE + FOREIGN:] = STRESS_PERIOD_S
    times = np.round(route_traverse.times_s[0] + np.concatenate([[0.0], np.cumsum(steps[1:])]), 6)
    write_traverse(Traverse("query", query, np.array(names), times, np.array(positions),
                            route_traverse.zone, np.array(headings), route_traverse.condition))
    return World(root, root / "map", model, query)


def offline_estimates(world: World, indices: np.ndarray, out: Path) -> dict[float, dict[str, str]]:
    """``seqvpr localize`` of exactly the query frames ``indices``: estimates.csv rows by stamp."""
    import csv

    from seqvpr.cli import main as seqvpr
    from seqvpr.data.traverse import read_traverse, write_traverse

    query = read_traverse(world.query, check_images=False)
    keep = np.zeros(len(query), bool)
    keep[indices] = True
    source = out / "source"
    source.mkdir(parents=True)
    (source / "images").symlink_to(world.query / "images")
    write_traverse(query.subset(keep), source)
    _check(seqvpr(["localize", str(world.map_dir), str(source), "--model", str(world.model), "--no-progress",
                   "--out", str(out / "offline")]), "localize")
    with open(out / "offline" / "estimates.csv", newline="", encoding="utf-8") as handle:
        return {round(float(row["stamp_s"]), 3): row for row in csv.DictReader(handle)}


if __name__ == "__main__":
    import sys

    build_world(Path(sys.argv[1]))
