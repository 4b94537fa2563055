"""Condition centring: the map subtracts each traverse's mean descriptor, the localizer a
running mean of the query's keyframes; a condition that shifts every descriptor then no
longer hides the place."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from seqvpr.errors import SeqvprError
from seqvpr.localization import LocalizerConfig, MapConfig, MapPart, StreamingLocalizer, load_map, write_map

DIM = 64
SPEED_MPS = 8.0


def _unit(values: np.ndarray) -> np.ndarray:
    return values / np.linalg.norm(values, axis=-1, keepdims=True)


def _places(rng, count: int) -> np.ndarray:
    """Smoothly varying place descriptors along a route (neighbouring frames alike)."""
    noise = rng.normal(size=(count + 8, DIM))
    kernel = np.hanning(9)
    return _unit(np.stack([kernel @ noise[i:i + 9] for i in range(count)]))


def test_written_descriptors_are_the_centred_unit_descriptors_of_each_traverse(tmp_path):
    rng = np.random.default_rng(0)
    raw = [rng.normal(size=(50, DIM)) + 3.0, rng.normal(size=(30, DIM)) - 1.0]
    parts = [MapPart(f"t{i}", "x", 100.0 * i + np.arange(len(r), dtype=float),
                     np.stack([np.arange(len(r)), np.full(len(r), 10.0 * i)], axis=1), np.zeros(len(r)), r)
             for i, r in enumerate(raw)]
    written = write_map(tmp_path / "m", parts, zone="30U", fingerprint="f", encoder={})
    assert written.centred and yaml.safe_load((tmp_path / "m" / "map.yaml").read_text())["centring"] == "traverse_mean"
    expected, centres = [], []
    for values in raw:  # the obvious way, one traverse at a time, in float64
        unit = _unit(values)
        centres.append(unit.mean(axis=0))
        expected.append(_unit(unit - centres[-1]))
    np.testing.assert_allclose(written.descriptors, np.concatenate(expected), atol=1e-5)
    np.testing.assert_allclose(written.centres, np.stack(centres), atol=1e-6)
    np.testing.assert_allclose(written.centre_prior, np.mean(centres, axis=0), atol=1e-6)
    # The successor inner products the alignment uses are those of the centred rows.
    np.testing.assert_allclose(written.successor_inner[:49], np.einsum(
        "nd,nd->n", expected[0][:-1], expected[0][1:]), atol=1e-5)


def test_a_map_without_centring_and_an_older_map_load_uncentred(tmp_path):
    rng = np.random.default_rng(1)
    part = MapPart("t", "x", np.arange(20.0), np.stack([np.arange(20.0), np.zeros(20)], axis=1), np.zeros(20),
                   rng.normal(size=(20, DIM)))
    written = write_map(tmp_path / "m", [part], zone="30U", fingerprint="f", encoder={}, config=MapConfig(centre=False))
    assert not written.centred
    np.testing.assert_allclose(written.descriptors, _unit(part.descriptors), atol=1e-6)
    meta = yaml.safe_load((tmp_path / "m" / "map.yaml").read_text())
    assert meta["version"] == 2
    del meta["centring"]  # maps written before centring existed: version 1, no centring key
    meta["version"] = 1
    (tmp_path / "m" / "map.yaml").write_text(yaml.safe_dump(meta))
    assert not load_map(tmp_path / "m").centred


def test_a_centred_map_without_its_centres_file_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(2)
    part = MapPart("t", "x", np.arange(20.0), np.stack([np.arange(20.0), np.zeros(20)], axis=1), np.zeros(20),
                   rng.normal(size=(20, DIM)))
    write_map(tmp_path / "m", [part], zone="30U", fingerprint="f", encoder={})
    (tmp_path / "m" / "centres.npy").unlink()
    with pytest.raises(SeqvprError, match=r"centres\.npy is missing"):
        load_map(tmp_path / "m")
    np.save(tmp_path / "m" / "centres.npy", np.zeros((2, DIM), dtype=np.float32))
    with pytest.raises(SeqvprError, match=r"centres\.npy: shape \(2, 64\)"):
        load_map(tmp_path / "m")


def _best_window_errors(reference_map, stamps, values, truths) -> np.ndarray:
    """Error of every keyframe's best window (threshold 0: every attempt is published)."""
    localizer = StreamingLocalizer(reference_map, LocalizerConfig(confidence_threshold=0.0, speed_ratios=(1.0,)))
    errors = []
    for stamp, value, truth in zip(stamps, values, truths):
        estimate = localizer.update(stamp, descriptor=value)
        if estimate.is_keyframe and estimate.has_fix:
            errors.append(np.hypot(estimate.easting - truth[0], estimate.northing - truth[1]))
    return np.array(errors)


def test_centring_recovers_places_a_condition_shift_hides(tmp_path):
    """A query condition adds one large vector to every descriptor (and the map's condition
    another): on an uncentred map the shift swamps the place, on a centred one it cancels."""
    rng = np.random.default_rng(3)
    count = 400  # 5 Hz, 8 m/s: 640 m
    places = _places(rng, count)
    times = 1000.0 + np.arange(count) / 5.0
    positions = np.stack([600000.0 + SPEED_MPS * (times - times[0]), np.full(count, 5700000.0)], axis=1)
    map_condition, query_condition = 6.0 * _unit(rng.normal(size=DIM)), 6.0 * _unit(rng.normal(size=DIM))
    reference = places + map_condition + 0.05 * rng.normal(size=(count, DIM))
    query = _unit(places + query_condition + 0.2 * rng.normal(size=(count, DIM)))
    part = MapPart("ref", "overcast", times, positions, np.zeros(count), reference)
    errors = {}
    for centre in (True, False):
        reference_map = write_map(tmp_path / f"centre{centre}", [part], zone="30U", fingerprint="f", encoder={},
                                  config=MapConfig(centre=centre))
        errors[centre] = _best_window_errors(reference_map, times + 5000.0, query, positions)
    within = {centre: float((e <= 10).mean()) for centre, e in errors.items()}  # measured: 0.99 and 0.50
    assert len(errors[True]) > 50
    assert within[True] >= 0.9 and within[False] <= 0.65, within


def test_reset_forgets_the_running_mean(tmp_path):
    """After a jump back in time (a replayed bag restarting) the localizer answers like a fresh one."""
    rng = np.random.default_rng(4)
    count = 200
    times = np.arange(count) / 5.0
    positions = np.stack([SPEED_MPS * times, np.zeros(count)], axis=1) + [600000.0, 5700000.0]
    places = _places(rng, count)
    reference_map = write_map(tmp_path / "m", [MapPart("ref", "x", times, positions, np.zeros(count), places + 1.0)],
                              zone="30U", fingerprint="f", encoder={})
    query = _unit(places - 1.0 + 0.2 * rng.normal(size=(count, DIM)))
    config = LocalizerConfig(confidence_threshold=0.0, speed_ratios=(1.0,))
    fresh_localizer = StreamingLocalizer(reference_map, config)
    fresh = [fresh_localizer.update(t, descriptor=v) for t, v in zip(times, query)]
    replayed = StreamingLocalizer(reference_map, config)
    for t, v in zip(times[100:], query[100:]):  # the second half first, 20 s later
        replayed.update(t + 20.0, descriptor=v)
    again = [replayed.update(t, descriptor=v) for t, v in zip(times, query)]
    assert replayed.counters["resets"] == 1
    assert sum(e.has_fix for e in fresh) > 20
    assert [(e.status, e.easting, e.confidence) for e in again] == [(e.status, e.easting, e.confidence) for e in fresh]


def test_a_fix_whose_newest_keyframe_is_elsewhere_is_withheld(tmp_path):
    """Right after a kidnap the older keyframes still carry the old place; the newest one
    does not resemble it, so the fix is withheld (confidence 0, LOST) rather than published."""
    rng = np.random.default_rng(5)
    count = 600
    times = np.arange(count) / 5.0
    positions = np.stack([SPEED_MPS * times, np.zeros(count)], axis=1) + [600000.0, 5700000.0]
    places = _places(rng, count)
    reference_map = write_map(tmp_path / "m", [MapPart("ref", "x", times, positions, np.zeros(count), places)],
                              zone="30U", fingerprint="f", encoder={})
    rows = np.concatenate([np.arange(50, 150), np.arange(450, 470)])  # 20 s, then 300 m further on
    query = _unit(places[rows] + 0.1 * rng.normal(size=(len(rows), DIM)))
    stamps = 5000.0 + np.arange(len(rows)) / 5.0
    outcomes = {}
    # A strict level, so that the test does not hang on the sign of one random cosine:
    # unrelated places score about 0 +- 0.1 here, the right place about 0.9.
    for check in (0.5, None):
        localizer = StreamingLocalizer(reference_map, LocalizerConfig(confidence_threshold=0.0, speed_ratios=(1.0,),
                                                                      min_newest_similarity=check))
        estimates = [localizer.update(stamp, descriptor=value) for stamp, value in zip(stamps, query)]
        outcomes[check] = {i: e for i, e in enumerate(estimates) if e.is_keyframe}
    before = [e for i, e in outcomes[0.5].items() if 25 <= i < 100]
    assert before and all(e.has_fix for e in before)  # tracking the first stretch: nothing withheld
    after = sorted(i for i in outcomes[0.5] if i >= 100)[:3]

    def wrong(estimate, i):
        return estimate.has_fix and abs(estimate.easting - positions[rows[i], 0]) > 50

    assert any(wrong(outcomes[None][i], i) for i in after)  # without the check the old place is published
    assert not any(wrong(outcomes[0.5][i], i) for i in after)  # with it, not
    assert any(outcomes[0.5][i].confidence == 0.0 and outcomes[0.5][i].status.value == "LOST" for i in after)
