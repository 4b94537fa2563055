"""`seqvpr localize` with odometry: a bag's Odometry topic or a traverse's own poses space the keyframes."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from seqvpr.cli import main
from seqvpr.data.traverse import read_traverse, write_traverse

SPACING_M = 4.0


@pytest.fixture(scope="module")
def odometry_run(world, tmp_path_factory):
    """80 frames (~20 s, ~140 m) of a query traverse, its bag with /odom, and localizer settings files."""
    root = tmp_path_factory.mktemp("odometry")
    source = world.queries[0]
    folder = root / source.name
    folder.mkdir()
    (folder / "images").symlink_to(source.root / "images")
    keep = np.zeros(len(source), dtype=bool)
    keep[100:180] = True
    write_traverse(source.subset(keep), folder)
    bag = root / "query.bag"
    assert main(["bag", "export", str(folder), "--format", "ros1", "--out", str(bag), "--odometry"]) == 0
    # confidence_threshold 0 publishes every hypothesis, so that the fixes can be scored.
    (root / "distance.yaml").write_text(f"query_spacing_m: {SPACING_M}\nconfidence_threshold: 0.0\n")
    (root / "time.yaml").write_text("confidence_threshold: 0.0\n")
    return read_traverse(folder), bag, root


def _localize(world, source, out, *options):
    assert main(["localize", str(world.map_dir), str(source), "--model", str(world.model), "--out", str(out),
                 "--no-progress", *options]) == 0
    rows = list(csv.DictReader((out / "estimates.csv").open()))
    return rows, json.loads((out / "summary.json").read_text())


def _keyframe_stamps(rows):
    return np.array([float(row["stamp_s"]) for row in rows if row["is_keyframe"] == "1"])


def _oracle_keyframes(traverse, spacing_m, scale=1.0):
    """Stamps of the frames the odometry rule picks: the first, then each once spacing_m more was travelled."""
    chosen, travelled, at_last = [0], 0.0, 0.0
    for i in range(1, len(traverse)):
        travelled += scale * float(np.linalg.norm(traverse.positions[i] - traverse.positions[i - 1]))
        if travelled - at_last >= spacing_m:
            chosen.append(i)
            at_last = travelled
    return traverse.times_s[chosen]


def _oracle_time_keyframes(traverse, period_s):
    """Stamps of the frames the time rule picks: the first, then each at least period_s (less 1 ms) later."""
    chosen = [0]
    for i in range(1, len(traverse)):
        if traverse.times_s[i] - traverse.times_s[chosen[-1]] >= period_s - 1e-3:
            chosen.append(i)
    return traverse.times_s[chosen]


def test_bag_odometry_spaces_keyframes_by_distance(world, odometry_run, tmp_path, capsys):
    traverse, bag, root = odometry_run
    rows, summary = _localize(world, bag, tmp_path / "odometry", "--truth-topic", "/gps/fix",
                              "--odometry-topic", "/odom", "--config", str(root / "distance.yaml"))
    assert "- odometry: topic /odom (scale 1), keyframes every 4 m; 80 of 80 frames had odometry" in \
        capsys.readouterr().out
    assert summary["odometry"] == {"source": "topic /odom", "frames_with_odometry": 80, "scale": 1.0,
                                   "query_spacing_m": SPACING_M}
    stamps = _keyframe_stamps(rows)
    np.testing.assert_allclose(stamps, _oracle_keyframes(traverse, SPACING_M), atol=1e-6)
    # About one keyframe per SPACING_M of path: a keyframe overshoots its spacing by less than one frame's step.
    length = traverse.path_length_m[-1]
    step = np.diff(traverse.path_length_m).max()
    assert length / (SPACING_M + step) <= len(stamps) <= length / SPACING_M + 1
    assert summary["keyframes"]["frames"] == summary["counters"]["keyframes"] == len(stamps) == 27
    # Aligned on distance, every published fix of this stretch is within 5 m of the truth.
    errors = np.array([float(row["error_m"]) for row in rows if row["status"] == "TRACKING"])
    assert len(errors) >= 60 and errors.max() <= 5.0

    time_rows, time_summary = _localize(world, bag, tmp_path / "time", "--truth-topic", "/gps/fix",
                                        "--config", str(root / "time.yaml"))
    assert time_summary["odometry"] is None
    time_stamps = _keyframe_stamps(time_rows)
    np.testing.assert_allclose(time_stamps, _oracle_time_keyframes(traverse, 1.0), atol=1e-6)
    assert len(time_stamps) == 19 and not np.isin(stamps, time_stamps).all()

    # The traverse's own poses as odometry replay the same keyframes and fixes as the bag's /odom.
    pose_rows, pose_summary = _localize(world, traverse.root, tmp_path / "poses", "--odometry-from-poses",
                                        "--config", str(root / "distance.yaml"))
    assert pose_summary["odometry"]["source"] == "traverse poses (ground truth)"
    np.testing.assert_array_equal(_keyframe_stamps(pose_rows), stamps)
    assert [r["status"] for r in pose_rows] == [r["status"] for r in rows]
    np.testing.assert_allclose([float(r["error_m"] or "nan") for r in pose_rows],
                               [float(r["error_m"] or "nan") for r in rows], atol=0.05, equal_nan=True)


def test_odometry_scale_stretches_the_spacing(world, odometry_run, tmp_path):
    traverse, bag, root = odometry_run
    rows, summary = _localize(world, bag, tmp_path / "scaled", "--odometry-topic", "/odom", "--odometry-scale",
                              "2", "--config", str(root / "distance.yaml"))
    assert summary["odometry"]["scale"] == 2.0
    stamps = _keyframe_stamps(rows)
    # Odometry reading twice the distance: a keyframe every 2 m of true path.
    np.testing.assert_allclose(stamps, _oracle_keyframes(traverse, SPACING_M, scale=2.0), atol=1e-6)
    length, step = 2.0 * traverse.path_length_m[-1], 2.0 * np.diff(traverse.path_length_m).max()
    assert length / (SPACING_M + step) <= len(stamps) <= length / SPACING_M + 1
    assert len(stamps) == 40  # 27 at scale 1


def test_odometry_option_errors_are_one_line(world, odometry_run, tmp_path, capsys):
    traverse, bag, root = odometry_run
    base = [str(world.map_dir), "--model", str(world.model), "--no-progress"]
    distance = ["--config", str(root / "distance.yaml")]
    cases = [
        ([str(bag), "--odometry-topic", "/odom"], "set query_spacing_m"),
        ([str(traverse.root), "--odometry-from-poses"], "set query_spacing_m"),
        ([str(bag), "--odometry-topic", "/wheels", *distance], rf"{bag}: no topic '/wheels' for odometry"),
        ([str(bag), "--odometry-topic", "/gps/fix", *distance],
         r"topic /gps/fix has type sensor_msgs/msg/NavSatFix; odometry must be one of \['nav_msgs/msg/Odometry', "
         r"'geometry_msgs/msg/PoseStamped'\]"),
        ([str(traverse.root), "--odometry-topic", "/odom", *distance], "--odometry-topic applies to bag sources"),
        ([str(bag), "--odometry-from-poses", *distance], "--odometry-from-poses applies to traverse sources"),
        ([str(bag), "--odometry-topic", "/odom", "--odometry-scale", "0", *distance], "must be a finite number > 0"),
        ([str(bag), "--odometry-scale", "1.1", *distance], "--odometry-scale needs --odometry-topic"),
    ]
    for i, (options, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert main(["localize", *base[:1], options[0], *base[1:], "--out", str(out), *options[1:]]) == 2, message
        error = capsys.readouterr().err
        assert len(error.strip().splitlines()) == 1 and re.search(message, error), error
        assert not out.exists()  # validated before the output folder is claimed
    assert main(["bag", "export", str(traverse.root), "--format", "mcap", "--out", str(tmp_path / "b"),
                 "--odometry-scale", "2"]) == 2
    assert "--odometry-scale needs --odometry" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_frames_after_the_odometry_ends_fall_back_to_time_keyframes(world, odometry_run, tmp_path, caplog):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from seqvpr.localization.bags import _BagWriter

    traverse, bag, root = odometry_run
    last = traverse.times_s[59]
    cut = tmp_path / "cut.bag"  # the same bag, its /odom ending at frame 59 of 80
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS1_NOETIC)) as reader, \
            _BagWriter(cut, "ros1") as writer:
        for connection, receive_ns, raw in reader.messages():
            if connection.topic != "/odom" or receive_ns <= round(last * 1e9):
                writer.writer.write(writer.connection(connection.topic, connection.msgtype, connection),
                                    receive_ns, raw)
    rows, summary = _localize(world, cut, tmp_path / "out", "--truth-topic", "/gps/fix", "--odometry-topic",
                              "/odom", "--config", str(root / "distance.yaml"))
    assert summary["odometry"]["frames_with_odometry"] == 60
    assert "20 of 80 frames lie outside the time span of /odom" in caplog.text
    stamps = _keyframe_stamps(rows)
    full = _oracle_keyframes(traverse, SPACING_M)
    np.testing.assert_allclose(stamps[stamps <= last], full[full <= last], atol=1e-6)
    # After the odometry ends the last fix is carried for odometry_timeout_s (2 s, no
    # keyframe); then keyframes follow time, one a second, and the timeout is counted.
    assert summary["counters"]["odometry_timeouts"] == 1
    quiet = np.array([float(row["stamp_s"]) for row in rows[60:]])
    waiting = quiet <= last + 2.0
    assert all(row["status"] == "TRACKING" and row["is_keyframe"] == "0"
               for row, wait in zip(rows[60:], waiting) if wait)
    after = stamps[stamps > last]
    assert len(after) >= 2 and after[0] > last + 2.0 and np.all(np.diff(after) >= 1.0 - 1e-3)
    assert "no odometry for" in caplog.text
