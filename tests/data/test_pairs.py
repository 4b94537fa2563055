import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from seqvpr.data.geo import UtmZone
from seqvpr.data.pair_files import (
    make_pairs,
    read_pairs,
    read_split_file,
    route_splits,
    write_pairs,
)
from seqvpr.data.pairs import (
    PRESETS,
    build_pairs,
    distance_subsample,
    project_onto_polyline,
)
from seqvpr.data.tables import read_table
from seqvpr.data.traverse import Traverse, find_traverses
from seqvpr.errors import SeqvprError


def test_distance_subsample_takes_first_value_past_each_step():
    values = np.array([0.0, 1.0, 5.0, 5.5, 9.0, 11.0, 16.1, 20.0])
    np.testing.assert_array_equal(distance_subsample(values, 0, 5.0), [0, 3, 5, 6])
    np.testing.assert_array_equal(distance_subsample(values, 1, 5.0, count=2), [1, 4])


def test_projection_matches_dense_sampling_oracle():
    rng = np.random.default_rng(0)
    vertices = np.cumsum(rng.normal(0, 3, (8, 2)), axis=0)
    times = np.cumsum(rng.uniform(0.2, 1.0, 8))
    points = vertices.mean(axis=0) + rng.normal(0, 4, (20, 2))
    warp, nearest, distance = project_onto_polyline(points, vertices, times)
    fine = np.linspace(0, 1, 2001)[:-1]
    dense = np.concatenate([vertices[i] + fine[:, None] * (vertices[i + 1] - vertices[i]) for i in range(7)])
    dense_times = np.concatenate([times[i] + fine * (times[i + 1] - times[i]) for i in range(7)])
    gaps = np.linalg.norm(points[:, None] - dense[None], axis=2)
    best = np.argmin(gaps, axis=1)
    np.testing.assert_allclose(distance, gaps.min(axis=1), atol=0.02)
    np.testing.assert_allclose(nearest, dense[best], atol=0.05)
    np.testing.assert_allclose(warp, dense_times[best], atol=0.02)


@pytest.fixture(scope="module")
def traverses(tiny_world):
    return find_traverses(tiny_world.prepared)


@pytest.fixture(scope="module")
def built(traverses):
    config = replace(PRESETS["test"], queries_per_reference=8, start_spacing_m=10.0)
    pairs, counts = build_pairs(traverses[:1], traverses[1:], config, np.random.default_rng(1))
    return config, pairs, counts


def test_pair_invariants_on_synthetic_traverses(traverses, built):
    config, pairs, counts = built
    by_name = {traverse.name: traverse for traverse in traverses}
    assert counts["reference_sequences"] >= 5 and len(pairs) >= 20
    assert {pair.query for pair in pairs} == {t.name for t in traverses[1:]}
    for pair in pairs:
        reference, query = by_name[pair.reference], by_name[pair.query]
        assert pair.query != pair.reference
        assert pair.reference_images.shape == (25,) and pair.query_images.shape == (10,)
        # Reference frames: each the first more than 5 m of path past the previous one.
        ref_index = np.searchsorted(reference.image_paths, pair.reference_images)
        np.testing.assert_array_equal(reference.image_paths[ref_index], pair.reference_images)
        path_m = reference.path_length_m
        assert np.all(np.diff(path_m[ref_index]) > 5.0)
        assert np.all(path_m[ref_index[1:] - 1] - path_m[ref_index[:-1]] <= 5.0)
        # Query frames: each the first more than 1 s after the previous (about 1 Hz).
        query_index = np.searchsorted(query.image_paths, pair.query_images)
        steps = np.diff(pair.query_times_s)
        assert np.all(steps > 1.0) and np.all(steps < 1.0 + 0.25 + 0.01)
        assert np.all(query.times_s[query_index[1:] - 1] - query.times_s[query_index[:-1]] <= 1.0)
        np.testing.assert_allclose(pair.query_times_s, query.times_s[query_index] - pair.query_start_s, atol=1e-9)
        # Ground truth: monotone, inside the reference, within 5 m.
        assert np.all(np.diff(pair.true_warp_s) >= 0)
        assert 0.0 <= pair.true_warp_s[0] and pair.true_warp_s[-1] <= pair.reference_times_s[-1]
        distance = np.linalg.norm(pair.true_positions - pair.query_positions, axis=1)
        assert distance.max() <= 5.0 and distance.max() == pytest.approx(pair.max_projection_m)
        # The true warp reads the reference track at the query's position.
        along = np.interp(pair.true_warp_s, pair.reference_times_s, pair.reference_positions[:, 0])
        np.testing.assert_allclose(along, pair.true_positions[:, 0], atol=1e-6)


def test_pairs_are_deterministic(traverses, built):
    config, pairs, _ = built
    again, _ = build_pairs(traverses[:1], traverses[1:], config, np.random.default_rng(1))
    other, _ = build_pairs(traverses[:1], traverses[1:], config, np.random.default_rng(2))
    assert [(p.query, p.query_start_s, p.reference_start_s) for p in again] == [
        (p.query, p.query_start_s, p.reference_start_s) for p in pairs
    ]
    assert [(p.query, p.query_start_s) for p in other] != [(p.query, p.query_start_s) for p in pairs]


def line_traverse(name, times, along, lateral=0.0, heading=0.0):
    """A traverse driving east along y = lateral, at path positions ``along``."""
    count = len(times)
    positions = np.stack([600000.0 + np.asarray(along, float), np.full(count, 5700000.0 + lateral)], axis=-1)
    return Traverse(name, Path("/nonexistent"), np.array([f"{i}.png" for i in range(count)], dtype=object),
                    1e9 + np.asarray(times, float), positions, UtmZone(30, "U"),
                    np.full(count, float(heading)), "overcast")


def drop_counts(query, reference=None):
    times = np.arange(0, 40, 0.25)
    reference = reference or line_traverse("ref", times, 8.0 * times)
    _, counts = build_pairs([reference], [query], PRESETS["test"], np.random.default_rng(0))
    return counts


@pytest.mark.parametrize(
    "reason, make_query",
    [
        ("far", lambda t: line_traverse("q", t, 6.0 * t, lateral=np.where((t > 12) & (t < 20), 6.0, 0.0))),
        ("non_monotone", lambda t: line_traverse("q", t, 6.0 * t - 30.0 * ((t > 15.9) & (t < 16.6)))),
        # Waits 12 s near the reference start before driving on: its first sequence stands still.
        ("stationary", lambda t: line_traverse("q", t, 1.0 + 6.0 * np.maximum(t - 12, 0))),
        ("heading", lambda t: line_traverse("q", t, 6.0 * t, heading=np.pi / 2)),
    ],
)
def test_each_filter_drops_what_it_should(reason, make_query):
    counts = drop_counts(make_query(np.arange(0, 60, 0.25)))
    assert counts["candidates"] > 0 and counts[reason] > 0
    clean = drop_counts(line_traverse("q", np.arange(0, 60, 0.25), 6.0 * np.arange(0, 60, 0.25)))
    assert clean["candidates"] > 0 and all(clean[r] == 0 for r in ("far", "non_monotone", "stationary", "heading"))


def test_reference_time_gap_filter():
    times = np.arange(0, 50, 0.25)
    stop = np.clip(times - 10.0, 0, 10.0)  # stands still from t=10 s to t=20 s
    reference = line_traverse("ref", times, 8.0 * (times - stop))
    query_times = np.arange(0, 60, 0.25)
    counts = drop_counts(line_traverse("q", query_times, 6.0 * query_times), reference)
    assert counts["reference_gap"] > 0


def test_pairs_csv_round_trip(tmp_path, built):
    _, pairs, _ = built
    write_pairs(tmp_path / "pairs.csv", pairs[:3])
    back = read_pairs(tmp_path / "pairs.csv")
    assert len(back) == 3
    for original, read in zip(pairs, back):
        assert (read.reference, read.query, read.zone) == (original.reference, original.query, original.zone)
        np.testing.assert_array_equal(read.query_images, original.query_images)
        np.testing.assert_allclose(read.true_warp_s, original.true_warp_s, atol=1e-6)
        np.testing.assert_allclose(read.reference_positions, original.reference_positions, atol=1e-4)
        np.testing.assert_allclose(read.query_start_s, original.query_start_s, atol=1e-6)


def test_pairs_csv_bad_cell_names_line_and_column(tmp_path, built):
    _, pairs, _ = built
    write_pairs(tmp_path / "pairs.csv", pairs[:2])
    text = (tmp_path / "pairs.csv").read_text().splitlines()
    header = text[0].split(",")
    cells = text[2].split(",")
    cells[header.index("true_time_s_3")] = "soon"
    (tmp_path / "pairs.csv").write_text("\n".join(text[:2] + [",".join(cells)]) + "\n")
    with pytest.raises(ValueError, match=r"pairs.csv, line 3: column 'true_time_s_3' should be a number"):
        read_pairs(tmp_path / "pairs.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a pairs CSV"):
        read_pairs(tmp_path / "other.csv")


def test_route_splits_are_geographically_disjoint(traverses):
    splits = {split.name: split for split in route_splits(traverses, train_fraction=0.6)}
    assert set(splits) == {"train", "val", "test"}
    reference = traverses[0].name
    assert splits["train"].references == (reference,)
    assert set(splits["train"].queries).isdisjoint(splits["val"].queries)
    for traverse in traverses:
        train, test = splits["train"].masks[traverse.name], splits["test"].masks[traverse.name]
        assert np.all(train ^ test)
        train_points, test_points = traverse.positions[train], traverse.positions[test]
        gaps = np.linalg.norm(train_points[:, None] - test_points[None], axis=2)
        assert gaps.min() < 5.0  # neighbours at the boundary, one cut only
    # The test region is the end of the route: its frames come after the train frames.
    mask = splits["test"].masks[reference]
    assert not mask[0] and mask[-1] and np.all(np.diff(mask.astype(int)) >= 0)


def test_split_file(tmp_path, traverses):
    names = [t.name for t in traverses]
    easting = traverses[0].positions[:, 0]
    (tmp_path / "splits.yaml").write_text(
        f"splits:\n  test:\n    references: [{names[0]}]\n    queries: [{names[2]}]\n"
        f"    queries_per_reference: 3\n"
        f"    region: {{min_easting: {easting.min() - 1}, max_easting: {easting.max() + 1}, "
        f"min_northing: 0, max_northing: 1.0e7}}\n"
    )
    (split,) = read_split_file(tmp_path / "splits.yaml", traverses)
    assert split.queries == (names[2],) and split.config.queries_per_reference == 3
    assert split.config.start_spacing_m == 12.0 and split.masks[names[0]].all()
    (tmp_path / "bad.yaml").write_text(f"splits:\n  train:\n    references: [{names[0]}]\n    spacing: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: splits.train: unknown key\(s\) \['spacing'\]"):
        read_split_file(tmp_path / "bad.yaml", traverses)
    (tmp_path / "bad2.yaml").write_text("splits:\n  train:\n    references: [nowhere]\n")
    with pytest.raises(ValueError, match="unknown traverse 'nowhere'"):
        read_split_file(tmp_path / "bad2.yaml", traverses)


def test_make_pairs_writes_csv_per_split_and_condition(tmp_path, tiny_world):
    summary = make_pairs(tiny_world.prepared, tmp_path / "pairs", train_fraction=0.5, seed=4)
    written = json.loads((tmp_path / "pairs" / "summary.json").read_text())
    assert written == summary
    total = 0
    for name, split in summary["splits"].items():
        for condition, entry in split["by_condition"].items():
            pairs = read_pairs(tmp_path / "pairs" / entry["file"])
            assert entry["file"] == f"{name}_{condition}.csv" and len(pairs) == entry["pairs"]
            assert {p.query_condition for p in pairs} == {condition}
            total += len(pairs)
        assert split["pairs"] == sum(e["pairs"] for e in split["by_condition"].values())
        assert split["candidates"] - sum(split["dropped"].values()) >= split["pairs"]
    assert total > 0
    again = make_pairs(tiny_world.prepared, tmp_path / "again", train_fraction=0.5, seed=4)
    assert again["splits"] == summary["splits"]
    for csv in (tmp_path / "pairs").glob("*.csv"):
        assert csv.read_bytes() == (tmp_path / "again" / csv.name).read_bytes()


def test_pairs_csv_with_repeated_time_names_file_line_and_column(tiny_world, tmp_path):
    out = tmp_path / "pairs"
    make_pairs(tiny_world.prepared, out, train_fraction=0.5, seed=4)
    path = out / "test_snow.csv"
    assert len(read_pairs(path)) > 0
    table = read_table(path)
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[table.columns.index("query_time_s_4")] = cells[table.columns.index("query_time_s_3")]
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SeqvprError, match=r"test_snow.csv, line 3: query_time_s_4 .* does not follow query_time_s_3"):
        read_pairs(path)
