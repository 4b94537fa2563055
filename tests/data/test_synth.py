from dataclasses import replace

import numpy as np
import pytest

from seqvpr.data.images import demosaic, read_image
from seqvpr.data.robotcar import read_robotcar_traverse
from seqvpr.data.synth.drive import DriveProfile, SynthConfig, simulate_drive, synthesize
from seqvpr.data.synth.render import CONDITIONS, Camera, Vehicles, render_frame
from seqvpr.data.synth.world import WorldConfig, build_world
from seqvpr.data.tables import read_table


def segments_cross(a, b, c, d):
    def side(p, q, r):
        return np.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))
    return side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0


def test_world_layout():
    world = build_world(WorldConfig(route_length_m=800.0), seed=5)
    route = world.route
    assert route.length_m == pytest.approx(800.0, abs=2.0)
    steps = np.linalg.norm(np.diff(route.points, axis=0), axis=1)
    np.testing.assert_allclose(steps, 0.5, atol=1e-9)
    # Facades never cross each other nor the route.
    faces = list(zip(world.face_starts, world.face_ends))
    for i, (a, b) in enumerate(faces):
        for c, d in faces[i + 1:]:
            assert not segments_cross(a, b, c, d)
        for p, q in zip(route.points[:-1:20], route.points[20::20]):
            assert not segments_cross(a, b, p, q)
    # Templates repeat: fewer distinct facade templates than buildings.
    assert len(faces) > 3 * world.config.templates
    assert len(world.stops_m) == len(route.corner_starts_m)


def test_speed_profile_stops_and_limits():
    world = build_world(WorldConfig(route_length_m=600.0), seed=2)
    profile = DriveProfile.sample(world, np.random.default_rng(0))
    times, arcs = simulate_drive(world, profile, 50.0)
    speed = np.diff(arcs) / np.diff(times)
    assert arcs[-1] >= world.route.length_m - 0.5
    assert np.all(speed >= 0) and speed.max() <= profile.cruise_mps * (1 + profile.swing) + 1e-9
    assert np.all(np.abs(np.diff(speed)) * 50.0 <= 2 * profile.deceleration_mps2 + 1e-6)
    for stop, wait in zip(profile.stops_m, profile.waits_s):
        standing = (np.abs(arcs[1:] - stop) < 0.5) & (speed == 0)
        assert standing.sum() / 50.0 >= wait - 0.05


def test_conditions_look_different():
    world = build_world(WorldConfig(route_length_m=200.0), seed=1)
    camera = Camera(width=64, height=48)
    (position,), (heading,) = world.route.pose_at(np.array([40.0]), 1.8)
    rng = np.random.default_rng(0)
    vehicles = Vehicles.park(world, 0.0, rng)
    frames = {name: render_frame(world, camera, position, heading, 40.0, condition, vehicles, rng).astype(float)
              for name, condition in CONDITIONS.items()}
    assert frames["night"].mean() < 0.5 * frames["overcast"].mean()
    lower = slice(36, 48)  # road in front of the car
    assert frames["snow"][lower].mean() > frames["overcast"][lower].mean() + 60
    sunny, overcast = frames["sunny"].mean(axis=(0, 1)), frames["overcast"].mean(axis=(0, 1))
    assert sunny[0] / sunny[2] > overcast[0] / overcast[2]  # warmer cast


def test_synthesize_is_deterministic_and_resumable(tmp_path, tiny_world):
    config = replace(tiny_world.config, conditions=("overcast",))
    truth = synthesize(config, tmp_path, seed=tiny_world.seed)[0]
    reference = tiny_world.truths[0]
    assert truth.name == reference.name
    first = sorted((tmp_path / truth.name / "stereo" / "centre").glob("*.png"))
    for image in (first[0], first[-1]):
        assert image.read_bytes() == (tiny_world.raw / truth.name / "stereo" / "centre" / image.name).read_bytes()
    ins = tmp_path / truth.name / "gps" / "ins.csv"
    assert ins.read_bytes() == (tiny_world.raw / truth.name / "gps" / "ins.csv").read_bytes()
    # Resume: a deleted image comes back identical, existing ones are left alone.
    content = first[5].read_bytes()
    first[5].unlink()
    mtime = first[6].stat().st_mtime_ns
    synthesize(config, tmp_path, seed=tiny_world.seed)
    assert first[5].read_bytes() == content and first[6].stat().st_mtime_ns == mtime
    conditions = read_table(tmp_path / "conditions.csv")
    assert conditions.strings("condition") == ["overcast"]


def test_synthetic_traverses_differ_and_are_robotcar_shaped(tiny_world):
    names = [truth.name for truth in tiny_world.truths]
    assert len(set(names)) == len(names)
    for truth in tiny_world.truths:
        mosaic = read_image(truth.image_path(len(truth) // 2))
        assert mosaic.shape == (36, 48) and mosaic.dtype == np.uint8
        assert demosaic(mosaic).shape == (36, 48, 3)
        table = read_table(tiny_world.raw / truth.name / "gps" / "ins.csv")
        assert table.columns[:3] == ("timestamp", "ins_status", "latitude")
        latitude = table.floats("latitude")
        assert np.all(np.abs(latitude - 51.752) < 0.01)  # Oxford
    durations = [truth.times_s[-1] - truth.times_s[0] for truth in tiny_world.truths]
    assert len({round(d, 1) for d in durations}) == len(durations)  # own speed profiles
    traverse = read_robotcar_traverse(tiny_world.raw / names[0])
    assert traverse.path_length_m[-1] == pytest.approx(tiny_world.config.world.route_length_m, rel=0.05)


def test_bad_synth_config():
    with pytest.raises(ValueError, match="unknown condition"):
        SynthConfig(conditions=("fog",))
    with pytest.raises(ValueError, match="even"):
        Camera(width=47)


def test_place_recognition_is_possible_but_not_trivial(tiny_world):
    """Nearest neighbour on tiny raw-pixel descriptors: far above chance, worse in snow."""
    import cv2

    from seqvpr.data.images import read_rgb
    from seqvpr.data.traverse import find_traverses

    def describe(traverse):
        descriptors = []
        for index in range(len(traverse)):
            grey = cv2.cvtColor(read_rgb(traverse.image_path(index)), cv2.COLOR_RGB2GRAY).astype(np.float32)
            small = cv2.resize(grey, (16, 12), interpolation=cv2.INTER_AREA).ravel()
            descriptors.append((small - small.mean()) / (small.std() * np.sqrt(small.size) + 1e-6))
        return np.array(descriptors)

    reference, *queries = find_traverses(tiny_world.prepared)
    reference_descriptors = describe(reference)
    within_10m = {}
    for query in queries:
        nearest = np.argmax(describe(query) @ reference_descriptors.T, axis=1)
        error = np.linalg.norm(reference.positions[nearest] - query.positions, axis=1)
        within_10m[query.condition] = (error < 10.0).mean()
    chance = 20.0 / tiny_world.config.world.route_length_m
    assert within_10m["sunny"] > 0.4 > 8 * chance
    assert 2 * chance < within_10m["snow"] < within_10m["sunny"]
