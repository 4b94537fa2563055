"""`seqvpr map build`, `seqvpr localize` and `seqvpr bag export` end to end, and their one-line errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from seqvpr.cli import main
from seqvpr.data.traverse import read_traverse, write_traverse
from seqvpr.localization import load_map


@pytest.fixture(scope="module")
def short_query(world, tmp_path_factory):
    """80 frames (~20 s) of a query traverse as a traverse folder."""
    source = world.queries[0]
    folder = tmp_path_factory.mktemp("cli") / source.name
    folder.mkdir()
    (folder / "images").symlink_to(source.root / "images")
    keep = np.zeros(len(source), dtype=bool)
    keep[100:180] = True
    write_traverse(source.subset(keep), folder)
    return read_traverse(folder)


def test_map_build_localize_traverse_and_bag(world, short_query, tmp_path, capsys):
    map_dir = tmp_path / "map"
    assert main(["map", "build", str(world.reference.root), "--model", str(world.model), "--out", str(map_dir),
                 "--no-progress"]) == 0
    assert "1 traverse(s)" in capsys.readouterr().out
    # Same options again: resumes (nothing to do); other options: a one-line conflict.
    assert main(["map", "build", str(world.reference.root), "--model", str(world.model), "--out", str(map_dir),
                 "--no-progress"]) == 0
    assert main(["map", "build", str(world.reference.root), "--model", str(world.model), "--out", str(map_dir),
                 "--nprobe", "3", "--no-progress"]) == 2
    assert "nprobe" in capsys.readouterr().err
    assert load_map(map_dir).centred
    assert main(["map", "build", str(world.reference.root), "--model", str(world.model), "--out",
                 str(tmp_path / "plain"), "--no-centre", "--no-progress"]) == 0
    plain = load_map(tmp_path / "plain")
    assert not plain.centred and np.allclose(np.linalg.norm(plain.descriptors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(plain.descriptors, load_map(map_dir).descriptors, atol=1e-3)

    out = tmp_path / "loc"
    assert main(["localize", str(map_dir), str(short_query.root), "--model", str(world.model), "--out", str(out),
                 "--no-progress"]) == 0
    assert "| all frames | 80 |" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "estimates.csv").open()))
    assert len(rows) == 80 and rows[0]["status"] == "INITIALIZING"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 80 and summary["counters"]["received"] == 80
    assert set(summary["all_frames"]["accuracy"]) == {"2m", "3m", "5m", "10m"}
    for plot in ("trajectory.png", "error_over_time.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fixed = [row for row in rows if row["status"] == "TRACKING"]
    assert all(float(row["error_m"]) >= 0 and row["utm_zone"] == "30U" for row in fixed)

    bag = tmp_path / "query.bag"
    assert main(["bag", "export", str(short_query.root), "--format", "ros1", "--out", str(bag)]) == 0
    out_bag = tmp_path / "loc_bag"
    with_estimates = tmp_path / "with_estimates.bag"
    assert main(["localize", str(map_dir), str(bag), "--model", str(world.model), "--out", str(out_bag),
                 "--truth-topic", "/gps/fix", "--write-bag", str(with_estimates), "--no-progress"]) == 0
    bag_rows = list(csv.DictReader((out_bag / "estimates.csv").open()))
    # The bag replays the same frames: the same statuses and fixes as the traverse.
    assert [r["status"] for r in bag_rows] == [r["status"] for r in rows]
    np.testing.assert_allclose([float(r["error_m"] or "nan") for r in bag_rows],
                               [float(r["error_m"] or "nan") for r in rows], atol=0.05, equal_nan=True)
    assert with_estimates.is_file()


def test_errors_are_one_line(world, tmp_path, capsys, encoder_factory):
    assert main(["localize", str(tmp_path / "nomap"), str(world.queries[0].root), "--model", str(world.model),
                 "--out", str(tmp_path / "a")]) == 2
    assert "not a seqvpr map" in capsys.readouterr().err
    other = encoder_factory(world.reference, tmp_path / "other.pt", seed=2)
    assert main(["localize", str(world.map_dir), str(world.queries[0].root), "--model", str(other),
                 "--out", str(tmp_path / "b")]) == 2
    assert "is not the encoder map" in capsys.readouterr().err
    assert main(["localize", str(world.map_dir), str(world.queries[0].root), "--out", str(tmp_path / "c")]) == 2
    assert "give --model" in capsys.readouterr().err
    for folder in ("a", "b", "c"):
        assert not (tmp_path / folder).exists()  # validated before the output folder is claimed
    assert main(["map", "build", str(tmp_path), "--model", str(world.model), "--out", str(tmp_path / "d")]) == 2
    assert "not a prepared traverse folder" in capsys.readouterr().err
    assert main(["bag", "export", str(world.queries[0].root), "--format", "mcap", "--out",
                 str(world.queries[0].root)]) == 2
    assert "exists" in capsys.readouterr().err


def test_map_calibrate_writes_a_calibration_the_localizer_reads(world, tmp_path, capsys):
    import shutil

    from seqvpr.localization import StreamingLocalizer

    map_dir = tmp_path / "map"
    shutil.copytree(world.map_dir, map_dir)
    assert main(["map", "calibrate", str(map_dir), *(str(q.root) for q in world.queries),
                 "--model", str(world.model)]) == 0
    printed = capsys.readouterr().out
    assert "keyframe alignments" in printed
    report = json.loads((map_dir / "calibration_report.json").read_text())
    assert f"confidence >= {report['threshold']:.3f}," in printed and "None" not in printed
    assert report["attempts"] > 100 and sum(b["count"] for b in report["bins"]) == report["attempts"]
    assert (map_dir / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    calibration = StreamingLocalizer.from_map(map_dir).calibration
    assert calibration.settings["query_length"] == 10 and calibration.settings["lam"] == 1.0
    assert calibration.fixes == report["attempts"] - report["vetoed"]  # vetoed ones are never published
    assert list(calibration.confidence_knots) == sorted(calibration.confidence_knots)
    assert main(["map", "calibrate", str(map_dir), str(world.reference.root), "--model", str(world.model)]) == 2
    assert "is in the map" in capsys.readouterr().err


def test_localize_a_traverse_from_its_descriptors_file(world, short_query, query_descriptors, tmp_path):
    from seqvpr.extraction import DescriptorFile, write_descriptor_file
    from seqvpr.localization import load_map

    source = world.queries[0]
    path = write_descriptor_file(tmp_path / "q.npz", DescriptorFile(
        times=source.times_s, values=query_descriptors[source.name],
        image_names=np.asarray(source.image_paths, dtype=str),
        metadata={"encoder_fingerprint": load_map(world.map_dir).fingerprint}))
    with_model, with_file = tmp_path / "a", tmp_path / "b"
    assert main(["localize", str(world.map_dir), str(short_query.root), "--model", str(world.model),
                 "--out", str(with_model), "--no-progress"]) == 0
    assert main(["localize", str(world.map_dir), str(short_query.root), "--descriptors", str(path),
                 "--out", str(with_file), "--no-progress"]) == 0
    rows = [list(csv.DictReader((folder / "estimates.csv").open())) for folder in (with_model, with_file)]
    assert [r["status"] for r in rows[0]] == [r["status"] for r in rows[1]]
    np.testing.assert_allclose([float(r["error_m"] or "nan") for r in rows[0]],
                               [float(r["error_m"] or "nan") for r in rows[1]], atol=0.05, equal_nan=True)
