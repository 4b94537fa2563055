"""Maps: round trip, memory-mapped loading, index kinds, windows, and clear errors for bad maps."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import yaml

from seqvpr.errors import SeqvprError
from seqvpr.localization import MapConfig, MapPart, StreamingLocalizer, load_map, write_map


def _parts(rng, counts=(120, 80), dim=32):
    parts = []
    for i, count in enumerate(counts):
        times = 1000.0 * i + np.cumsum(rng.uniform(0.2, 0.3, count))
        positions = np.stack([600000 + 2.0 * np.arange(count), 5700000 + 50.0 * i + np.zeros(count)], axis=1)
        parts.append(MapPart(f"t{i}", "overcast", times, positions, np.zeros(count), rng.normal(size=(count, dim))))
    return parts


def test_round_trip_is_memory_mapped_and_searchable(tmp_path):
    rng = np.random.default_rng(0)
    parts = _parts(rng)
    written = write_map(tmp_path / "map", parts, zone="30U", fingerprint="abc", encoder={"k": 1},
                        config=MapConfig(centre=False))
    loaded = load_map(tmp_path / "map")
    assert not loaded.centred and not (tmp_path / "map" / "centres.npy").exists()
    assert isinstance(loaded.descriptors, np.memmap) and loaded.index_kind == "flat"
    assert len(loaded) == 200 and loaded.dim == 32 and str(loaded.zone) == "30U"
    expected = np.concatenate([p.descriptors for p in parts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(loaded.descriptors, expected, rtol=1e-6)
    np.testing.assert_array_equal(loaded.times, np.concatenate([p.times for p in parts]))
    result = loaded.index.search(np.asarray(loaded.descriptors[[3, 150]]), k=1)
    assert result.indices[:, 0].tolist() == [3, 150]
    assert loaded.traverse_of(np.array([0, 119, 120, 199])).tolist() == [0, 0, 1, 1]
    assert [t.name for t in written.traverses] == ["t0", "t1"]
    # Path length restarts at each traverse; a window stays inside its traverse.
    assert loaded.path_length_m[120] == 0 and loaded.path_length_m[119] == pytest.approx(2.0 * 119)
    rows = loaded.window_rows(0, parts[0].times[100], parts[0].times[-1] + 50)
    assert rows.stop == 120 and rows.start == 100
    # Bounds between frames take the frame before and after, so the span is covered.
    rows = loaded.window_rows(0, parts[0].times[100] - 0.01, parts[0].times[110] + 0.01)
    assert (rows.start, rows.stop) == (99, 112)


def test_pose_at_interpolates_position_and_heading_the_short_way(tmp_path):
    rng = np.random.default_rng(1)
    part = MapPart("t", "x", np.array([0.0, 1.0, 2.0]), np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]),
                   np.array([3.0, -3.0, 0.0]), rng.normal(size=(3, 8)))
    loaded = write_map(tmp_path / "m", [part], zone="30U", fingerprint="f", encoder={})
    position, heading = loaded.pose_at(0, 0.25)
    np.testing.assert_allclose(position, [2.5, 0.0])
    # 3.0 -> -3.0 rad is a turn of 2 pi - 6 = 0.283 through pi, not -6 rad through 0.
    assert np.cos(heading) < -0.98
    assert loaded.pose_at(0, 99.0)[0].tolist() == [10.0, 10.0]


def test_large_maps_get_an_ivf_index_that_finds_exact_neighbours(tmp_path):
    rng = np.random.default_rng(2)
    parts = _parts(rng, counts=(3000,), dim=32)
    loaded = write_map(tmp_path / "ivf", parts, zone="30U", fingerprint="f", encoder={},
                       config=MapConfig(exact_max_frames=1000, nprobe=64))
    assert loaded.index_kind == "ivf"
    queries = np.asarray(loaded.descriptors[::100])
    found = loaded.index.search(queries, k=1).indices[:, 0]
    assert (found == np.arange(0, 3000, 100)).mean() >= 0.9


@pytest.mark.parametrize("damage", ["no_yaml", "no_descriptors", "short_times", "version", "no_index", "bad_index"])
def test_bad_maps_are_clear_errors(tmp_path, damage):
    rng = np.random.default_rng(3)
    root = tmp_path / "map"
    write_map(root, _parts(rng), zone="30U", fingerprint="f", encoder={})
    if damage == "no_yaml":
        (root / "map.yaml").unlink()
        message = "not a seqvpr map"
    elif damage == "no_descriptors":
        (root / "descriptors.npy").unlink()
        message = "descriptors.npy is missing"
    elif damage == "short_times":
        np.save(root / "times.npy", np.zeros(5))
        message = "times.npy: shape (5,) does not fit 200 frames"
    elif damage == "version":
        meta = yaml.safe_load((root / "map.yaml").read_text())
        meta["version"] = 99
        (root / "map.yaml").write_text(yaml.safe_dump(meta))
        message = "map version 99"
    elif damage == "no_index":
        (root / "index.faiss").unlink()
        message = "index.faiss is missing"
    else:
        (root / "index.faiss").write_bytes(b"garbage")
        message = "not a readable faiss index"
    with pytest.raises(SeqvprError, match=re.escape(message)):
        load_map(root).index


def test_an_encoder_with_another_fingerprint_is_refused(world, tmp_path, encoder_factory):
    other = encoder_factory(world.reference, tmp_path / "other.pt", seed=1)
    with pytest.raises(SeqvprError, match="fingerprint .* is not the encoder map"):
        StreamingLocalizer.from_map(world.map_dir, model=other)
    localizer = StreamingLocalizer.from_map(world.map_dir, model=world.model)
    assert localizer.encoder is not None


def test_traverses_with_too_few_frames_or_shared_names_are_refused(tmp_path):
    rng = np.random.default_rng(4)
    parts = _parts(rng)
    with pytest.raises(SeqvprError, match="distinct names"):
        write_map(tmp_path / "a", [parts[0], parts[0]], zone="30U", fingerprint="f", encoder={})
    short = MapPart("s", "x", np.array([1.0]), np.zeros((1, 2)), np.zeros(1), np.ones((1, 32)))
    with pytest.raises(SeqvprError, match=">= 2 frames"):
        write_map(tmp_path / "b", [short], zone="30U", fingerprint="f", encoder={})
    shutil.rmtree(tmp_path / "a", ignore_errors=True)


def test_positions_at_equals_pose_at_one_by_one(tmp_path):
    rng = np.random.default_rng(5)
    loaded = write_map(tmp_path / "map", _parts(rng), zone="30U", fingerprint="abc", encoder={},
                       config=MapConfig(centre=False, reference_spacing_m=0.0))
    traverses = rng.integers(0, 2, size=50)
    # Inside each traverse, before its first frame and after its last (clamped), and on frames.
    times = np.where(traverses == 0, rng.uniform(-5.0, 40.0, 50), rng.uniform(995.0, 1030.0, 50))
    times[:2] = loaded.times[[0, 130]]
    expected = np.stack([loaded.pose_at(int(t), float(s))[0] for t, s in zip(traverses, times)])
    np.testing.assert_allclose(loaded.positions_at(traverses, times), expected, rtol=0, atol=1e-9)
