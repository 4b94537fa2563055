import shutil
from dataclasses import replace

import numpy as np
import pytest

from seqvpr.data.geo import wrap_angle
from seqvpr.data.images import demosaic, read_image, read_rgb, write_png
from seqvpr.data.prepare import PrepareConfig, prepare_robotcar
from seqvpr.data.robotcar import RobotCarConfig, read_image_timestamps, read_ins, read_robotcar_traverse
from seqvpr.data.synth.render import CONDITIONS, Camera, Vehicles, render_frame, sensor_mosaic
from seqvpr.data.synth.world import WorldConfig, build_world
from seqvpr.data.tables import read_table, write_table
from seqvpr.data.traverse import read_traverse
from seqvpr.errors import SeqvprError


@pytest.fixture
def raw_copy(tiny_world, tmp_path):
    """A writable copy of the first raw synthetic traverse."""
    name = tiny_world.truths[0].name
    return shutil.copytree(tiny_world.raw / name, tmp_path / name)


def test_reader_poses_match_generator_ground_truth(tiny_world):
    for truth in tiny_world.truths:
        traverse = read_robotcar_traverse(tiny_world.raw / truth.name)
        assert len(traverse) == len(truth) > 100
        np.testing.assert_array_equal(traverse.image_paths, truth.image_paths)
        np.testing.assert_allclose(traverse.times_s, truth.times_s, rtol=0, atol=1e-6)
        error = np.linalg.norm(traverse.positions - truth.positions, axis=1)
        assert error.max() <= 0.1
        assert np.abs(wrap_angle(traverse.headings_rad - truth.headings_rad)).max() < 1e-3
        assert traverse.zone == truth.zone and str(traverse.zone) == "30U"


def test_bad_ins_rows_are_dropped(tiny_world):
    ins_path = tiny_world.raw / tiny_world.truths[0].name / "gps" / "ins.csv"
    table = read_table(ins_path)
    statuses = table.strings("ins_status")
    assert "INS_BAD_GPS_AGREEMENT" in statuses
    track = read_ins(ins_path)
    assert len(track.times_s) == statuses.count("INS_SOLUTION_GOOD")


def test_reordered_extra_columns_and_rtk(raw_copy, tiny_world):
    truth = tiny_world.truths[0]
    table = read_table(raw_copy / "gps" / "ins.csv")
    good = np.array([s == "INS_SOLUTION_GOOD" for s in table.strings("ins_status")])
    table = table.select(good)
    order = ["yaw", "utm_zone", "easting", "timestamp", "northing", "latitude", "longitude"]
    rtk_yaw = [f"{y + 1.5 * np.pi:.9f}" for y in table.floats("yaw")]
    rows = zip(rtk_yaw, *(table.strings(c) for c in order[1:]), ["extra"] * len(table))
    write_table(raw_copy / "rtk.csv", order + ["comment"], rows)
    traverse = read_robotcar_traverse(raw_copy, RobotCarConfig(poses="rtk"))
    assert np.linalg.norm(traverse.positions - truth.positions, axis=1).max() <= 0.1
    assert np.abs(wrap_angle(traverse.headings_rad - truth.headings_rad)).max() < 1e-3


def rewrite_line(path, number, text):
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_missing_ins_column(raw_copy):
    table = read_table(raw_copy / "gps" / "ins.csv")
    keep = [c for c in table.columns if c != "yaw"]
    write_table(raw_copy / "gps" / "ins.csv", keep, zip(*(table.strings(c) for c in keep)))
    with pytest.raises(ValueError, match=r"ins.csv: missing column\(s\) yaw"):
        read_robotcar_traverse(raw_copy)


def test_non_monotonic_and_duplicate_image_timestamps(raw_copy):
    path = raw_copy / "stereo.timestamps"
    lines = path.read_text().splitlines()
    rewrite_line(path, 5, lines[3])
    with pytest.raises(ValueError, match=r"stereo.timestamps, line 5: duplicate timestamp"):
        read_robotcar_traverse(raw_copy)
    rewrite_line(path, 5, lines[2])
    with pytest.raises(ValueError, match=r"stereo.timestamps, line 5: non-monotonic timestamp"):
        read_robotcar_traverse(raw_copy)


def test_non_monotonic_ins_timestamps(raw_copy):
    path = raw_copy / "gps" / "ins.csv"
    lines = path.read_text().splitlines()
    fields = lines[10].split(",")
    fields[0] = lines[5].split(",")[0]
    rewrite_line(path, 11, ",".join(fields))
    with pytest.raises(ValueError, match=r"ins.csv, line 11: non-monotonic timestamp"):
        read_robotcar_traverse(raw_copy)


def test_images_outside_ins_coverage(raw_copy):
    path = raw_copy / "stereo.timestamps"
    lines = path.read_text().splitlines()
    late = int(lines[-1].split()[0]) + 10_000_000
    path.write_text("\n".join(lines + [f"{late} 1"]) + "\n")
    camera = raw_copy / "stereo" / "centre"
    shutil.copy(camera / f"{lines[-1].split()[0]}.png", camera / f"{late}.png")
    with pytest.raises(ValueError, match=rf"line {len(lines) + 1}: image timestamp {late} .*outside the pose coverage"):
        read_robotcar_traverse(raw_copy)
    kept = read_robotcar_traverse(raw_copy, RobotCarConfig(drop_uncovered=True))
    assert len(kept) == len(lines)


def test_missing_images(raw_copy):
    images = sorted((raw_copy / "stereo" / "centre").glob("*.png"))
    for image in images[10:14]:
        image.unlink()
    message = rf"stereo.timestamps, line 11: image stereo/centre/{images[10].name} not found \(4 of"
    with pytest.raises(ValueError, match=message):
        read_robotcar_traverse(raw_copy)
    kept = read_robotcar_traverse(raw_copy, RobotCarConfig(skip_missing_images=True))
    assert len(kept) == len(images) - 4 and f"stereo/centre/{images[10].name}" not in set(kept.image_paths)


def test_empty_timestamps(raw_copy):
    (raw_copy / "stereo.timestamps").write_text("")
    with pytest.raises(ValueError, match="stereo.timestamps: no timestamps"):
        read_robotcar_traverse(raw_copy)


def test_prepare_writes_rgb_and_resumes(raw_copy, tmp_path):
    out = tmp_path / "prepared"
    directory = prepare_robotcar(raw_copy, out, config=PrepareConfig(long_side=24))
    traverse = read_traverse(directory)
    first = traverse.image_path(0)
    assert read_rgb(first).shape == (18, 24, 3)
    first.unlink()
    second = traverse.image_path(1)
    mtime = second.stat().st_mtime_ns
    prepare_robotcar(raw_copy, out, config=PrepareConfig(long_side=24))
    assert first.exists() and second.stat().st_mtime_ns == mtime


def test_prepare_corrupt_png_names_the_file(raw_copy, tmp_path):
    image = sorted((raw_copy / "stereo" / "centre").glob("*.png"))[7]
    image.write_bytes(image.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"{image.name}: not a readable image"):
        prepare_robotcar(raw_copy, tmp_path / "prepared")


def test_red_facade_decodes_red(tmp_path):
    """Render a street whose facades are all red, through the Bayer sensor and back."""
    world = build_world(WorldConfig(route_length_m=200.0), seed=1)
    red = np.zeros_like(world.atlas)
    red[...] = (204, 25, 20)
    world = replace(world, atlas=red)
    camera = Camera(width=64, height=48)
    (position,), (heading,) = world.route.pose_at(np.array([50.0]), 1.8)
    rng = np.random.default_rng(0)
    condition = replace(CONDITIONS["overcast"], parked_per_100m=0.0)
    vehicles = Vehicles.park(world, 0.0, rng)
    rendered = render_frame(world, camera, position, heading, 50.0, condition, vehicles, rng)
    write_png(tmp_path / "frame.png", sensor_mosaic(rendered, condition, rng))
    decoded = demosaic(read_image(tmp_path / "frame.png"), "gbrg").astype(int)
    # The upper left of the view is facade (left side of the street, above the horizon).
    patch = decoded[4:16, 2:10].reshape(-1, 3).mean(axis=0)
    assert patch[0] > 150 and patch[0] > 3 * patch[1] and patch[0] > 3 * patch[2]
    np.testing.assert_allclose(decoded[4:16, 2:10], rendered[4:16, 2:10], atol=40)


def test_huge_timestamp_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "stereo.timestamps"
    path.write_text("1000 1\n2000 1\n" + "9" * 25 + " 1\n")
    with pytest.raises(SeqvprError, match=r"stereo.timestamps, line 3: column 'timestamp' should be an integer"):
        read_image_timestamps(path)


def test_prepare_with_identity_lut_matches_plain_and_bad_lut_writes_nothing(raw_copy, tmp_path):
    height, width = read_image(next((raw_copy / "stereo" / "centre").glob("*.png"))).shape
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    lut = tmp_path / "identity_lut.bin"
    np.concatenate([columns.ravel(), rows.ravel()]).tofile(lut)
    plain = prepare_robotcar(raw_copy, tmp_path / "plain", config=PrepareConfig(long_side=24))
    undistorted = prepare_robotcar(raw_copy, tmp_path / "lut", config=PrepareConfig(long_side=24, undistortion_lut=lut))
    for image in sorted((plain / "images").iterdir())[:5]:
        assert (undistorted / "images" / image.name).read_bytes() == image.read_bytes()
    short = tmp_path / "short_lut.bin"
    np.zeros(10).tofile(short)
    with pytest.raises(SeqvprError, match=rf"short_lut.bin: 10 values, expected 2 x {height} x {width}"):
        prepare_robotcar(raw_copy, tmp_path / "bad", config=PrepareConfig(undistortion_lut=short))
    assert not (tmp_path / "bad").exists()
