"""Keyframes that follow the robot's motion: alignment on travelled distance when keyframes
follow odometry, and on time, standing time left out of the query (``still_similarity``)."""

from __future__ import annotations

import numpy as np
import torch

from seqvpr.align import GDTWConfig, Signal, gdtw
from seqvpr.localization import LocalizerConfig, MapConfig, MapPart, StreamingLocalizer, write_map
from seqvpr.localization.proposal import Window, align_windows

DIM = 48


def _unit(values: np.ndarray) -> np.ndarray:
    return values / np.linalg.norm(values, axis=-1, keepdims=True)


def _route_map(tmp_path, rng, length_m=800.0, speed=8.0, rate_hz=5.0):
    """A straight route driven at a varying speed; place descriptors vary smoothly with distance."""
    times = np.arange(0.0, length_m / speed, 1.0 / rate_hz)
    path = speed * times + 30.0 * np.sin(times / 7.0)  # speed varies between ~4 and ~12 m/s
    path = np.maximum.accumulate(path)
    anchors = rng.normal(size=(int(length_m // 10) + 3, DIM))

    def place(metres):
        index = np.clip(metres / 10.0, 0, len(anchors) - 2)
        low = np.floor(index).astype(int)
        weight = (index - low)[:, None]
        return _unit((1 - weight) * anchors[low] + weight * anchors[low + 1])

    positions = np.stack([600000.0 + path, np.full(len(path), 5700000.0)], axis=1)
    part = MapPart("ref", "x", 1000.0 + times, positions, np.zeros(len(times)), place(path))
    reference_map = write_map(tmp_path / "map", [part], zone="30U", fingerprint="f", encoder={},
                              config=MapConfig(reference_spacing_m=0.0, centre=False))
    return reference_map, place


def _stop_and_go(rng, place, start_s, noise):
    """A drive at 10 Hz: 20 -> 250 m at 6 m/s, 30 s standing at 250 m, 250 -> 450 m at
    5 m/s. Returns the segments, the travelled distance, stamps and descriptors per frame."""
    rate_hz = 10.0
    segments = [np.linspace(20.0, 250.0, int(230 / 6.0 * rate_hz)), np.full(int(30 * rate_hz), 250.0),
                np.linspace(250.0, 450.0, int(200 / 5.0 * rate_hz))]
    travelled = np.concatenate(segments)
    stamps = start_s + np.arange(len(travelled)) / rate_hz
    descriptors = _unit(place(travelled) + noise * rng.normal(size=(len(travelled), DIM)))
    return segments, travelled, stamps, descriptors


def test_distance_alignment_is_gdtw_on_path_length_and_odometry(tmp_path):
    """The batched alignment on distance equals a plain GDTW on full descriptors
    with path length (reference) and travelled distance (query) as the time axes."""
    rng = np.random.default_rng(0)
    reference_map, place = _route_map(tmp_path, rng)
    distances = 200.0 + np.array([0.0, 7.0, 15.5, 24.0, 31.0, 40.0, 47.5, 56.0, 64.0, 72.0])
    query = _unit(place(distances) + 0.05 * rng.normal(size=(len(distances), DIM)))
    path = reference_map.path_length_m
    times = np.asarray(reference_map.times)
    windows = [Window(0, float(np.interp(150.0, path, times)), float(np.interp(330.0, path, times))),
               Window(0, float(np.interp(500.0, path, times)), float(np.interp(620.0, path, times)))]
    config = LocalizerConfig(lam=1.0)
    unit = 8.0
    result = align_windows(reference_map, windows, (distances - distances[0]) / unit, query, config,
                           path_unit_m=unit)
    for i, window in enumerate(windows):  # the obvious way, one window at a time
        rows = reference_map.window_rows(0, window.start_s, window.end_s)
        axis = path[rows] / unit + 1e-6 * np.arange(rows.stop - rows.start)
        reference = Signal(torch.from_numpy(axis[None] - axis[0]),
                           torch.from_numpy(np.asarray(reference_map.descriptors[rows], dtype=np.float64)[None]))
        query_signal = Signal(torch.from_numpy(((distances - distances[0]) / unit)[None]),
                              torch.from_numpy(query.astype(np.float32).astype(np.float64)[None]))
        plain = gdtw(reference, query_signal, GDTWConfig(subsequence=True, lam=config.lam))
        end_path = (float(plain.warp[0, -1]) + axis[0]) * unit
        assert abs(float(plain.cost[0]) - result.costs[i]) <= 1e-6 * max(1.0, abs(float(plain.cost[0])))
        # float32 products in the batched path: the same warp to well under a millisecond
        assert abs(np.interp(end_path / unit, axis, times[rows]) - result.end_times[i]) < 1e-3
    # The right window ends where the query does: at 272 m of path.
    assert result.costs[0] < result.costs[1]
    assert abs(np.interp(result.end_times[0], times, path) - distances[-1]) < 3.0


def test_a_robot_that_stops_is_not_run_ahead_of_with_odometry(tmp_path):
    """The query drives the route at its own pace with a 30 s stop; on time the end of the
    warp runs ahead during and after the stop, on distance it stays with the robot."""
    rng = np.random.default_rng(1)
    reference_map, place = _route_map(tmp_path, rng)
    segments, travelled, stamps, descriptors = _stop_and_go(rng, place, 5000.0, 0.1)
    truth = 600000.0 + travelled
    stopped = np.zeros(len(travelled), dtype=bool)
    stopped[len(segments[0]):len(segments[0]) + len(segments[1])] = True
    errors, carried_in_stop, resets = {}, {}, {}
    for odometry in (False, True):
        config = LocalizerConfig(confidence_threshold=0.0, query_spacing_m=8.0 if odometry else None)
        localizer = StreamingLocalizer(reference_map, config)
        mine, carried = [], []
        for stamp, value, metres, east, still in zip(stamps, descriptors, travelled, truth, stopped):
            estimate = localizer.update(stamp, descriptor=value, odometry=metres if odometry else None)
            if estimate.is_keyframe and estimate.has_fix:
                mine.append(abs(estimate.easting - east))
            if still and estimate.has_fix and not estimate.is_keyframe:
                carried.append(abs(estimate.easting - east))
        errors[odometry], carried_in_stop[odometry] = np.array(mine), np.array(carried)
        resets[odometry] = localizer.counters["resets"]
    # measured: 95th percentile 0.76 m on distance (45 keyframes), 5.7 m on time (105)
    assert len(errors[True]) > 30
    assert np.percentile(errors[True], 95) < 8.0
    assert np.percentile(errors[True], 95) < 0.5 * np.percentile(errors[False], 95)
    # Between keyframes the fix is carried by the odometry: standing still, it stands still
    # (carried by the aligned rate over camera time it would run on along the street).
    assert len(carried_in_stop[True]) > 250
    assert carried_in_stop[True].max() < 8.0
    # A 30 s stand between odometry-spaced keyframes is no gap in the data: no reset.
    assert resets[True] == 0


def test_keyframe_attempts_replay_odometry_when_asked(tmp_path):
    """Calibration replays (``keyframe_attempts``) space keyframes by the traverse's own
    travelled distance when given an odometry scale, as the localizer on a robot would."""
    from types import SimpleNamespace

    from seqvpr.localization.validation import keyframe_attempts

    rng = np.random.default_rng(2)
    reference_map, place = _route_map(tmp_path, rng, length_m=400.0)
    travelled = np.concatenate([np.linspace(10.0, 150.0, 280), np.full(100, 150.0), np.linspace(150.0, 300.0, 300)])
    traverse = SimpleNamespace(name="q", times_s=5000.0 + np.arange(len(travelled)) / 10.0,
                               positions=np.stack([600000.0 + travelled, np.full(len(travelled), 5700000.0)], axis=1),
                               path_length_m=travelled - travelled[0])
    values = _unit(place(travelled) + 0.05 * rng.normal(size=(len(travelled), DIM)))
    config = LocalizerConfig(query_spacing_m=10.0, min_query_length=5)
    on_distance = keyframe_attempts(reference_map, [traverse], [values], config, odometry_scale=1.0)
    on_time = keyframe_attempts(reference_map, [traverse], [values], config)
    # 290 m at one keyframe per 10 m: 30 keyframes, aligned from the 5th on; 68 s at one per second.
    assert abs(len(on_distance.stamps) - 26) <= 1, len(on_distance.stamps)
    assert abs(len(on_time.stamps) - (68 - 4)) <= 1, len(on_time.stamps)
    assert np.median(on_distance.errors_m) < 3.0


def test_silent_odometry_falls_back_to_time_keyframes_and_back(tmp_path):
    rng = np.random.default_rng(3)
    reference_map, place = _route_map(tmp_path, rng)
    rate_hz, speed = 10.0, 8.0
    stamps = 7000.0 + np.arange(int(60 * rate_hz)) / rate_hz
    travelled = 20.0 + speed * (stamps - stamps[0])
    descriptors = _unit(place(travelled) + 0.1 * rng.normal(size=(len(travelled), DIM)))
    silent = (stamps - stamps[0] >= 20.0) & (stamps - stamps[0] < 40.0)  # odometry drops out for 20 s
    localizer = StreamingLocalizer(reference_map, LocalizerConfig(confidence_threshold=0.0, query_spacing_m=16.0,
                                                                  odometry_timeout_s=2.0))
    keyframes = []
    for stamp, value, metres, quiet in zip(stamps, descriptors, travelled, silent):
        if localizer.update(stamp, descriptor=value, odometry=None if quiet else metres).is_keyframe:
            keyframes.append(stamp - stamps[0])
    keyframes = np.array(keyframes)
    assert localizer.counters["odometry_timeouts"] == 1 and localizer.counters["resets"] == 0
    # 16 m at 8 m/s: a keyframe every 2 s with odometry; none in the first 2 s of silence,
    # then one a second (the time rule) until the odometry returns at 40 s.
    assert np.allclose(np.diff(keyframes[keyframes < 20.0]), 2.0, atol=0.11)
    during = keyframes[(keyframes >= 20.0) & (keyframes < 40.0)]
    assert during.min() >= 21.9 and np.allclose(np.diff(during), 1.0, atol=0.11) and len(during) >= 16
    assert np.allclose(np.diff(keyframes[keyframes > 40.0]), 2.0, atol=0.11)


def test_standing_time_is_left_out_of_the_query_on_time(tmp_path):
    """On time with ``still_similarity``, the keyframes of a 30 s stand are skipped and their
    time is left out of the query's time axis; fixes are withheld until the stand has left
    the query, and the fixes stay on the robot."""
    rng = np.random.default_rng(4)
    reference_map, place = _route_map(tmp_path, rng)
    segments, travelled, stamps, descriptors = _stop_and_go(rng, place, 9000.0, 0.02)
    stand_start, stand_end = stamps[len(segments[0])], stamps[len(segments[0]) + len(segments[1])]
    localizer = StreamingLocalizer(reference_map, LocalizerConfig(confidence_threshold=0.0, still_similarity=0.95))
    keyframes, published, errors = [], [], []
    for stamp, value, metres in zip(stamps, descriptors, travelled):
        estimate = localizer.update(stamp, descriptor=value)
        if estimate.is_keyframe:
            keyframes.append((stamp, localizer._keyframes[-1].clock_s))
            published.append((estimate.has_fix, localizer.last_vetoed))
        if estimate.has_fix:
            errors.append(abs(estimate.easting - (600000.0 + metres)))
    keyframes = np.array(keyframes)
    # One keyframe a second while driving, none while standing (29 checks find the same view).
    assert 28 <= localizer.counters["standing_checks"] <= 31, localizer.counters
    inside = (keyframes[:, 0] > stand_start + 1.5) & (keyframes[:, 0] < stand_end)
    assert not inside.any()
    # The moving clock runs with the camera while driving and skips the stand: across it,
    # two keyframes ~31 s apart in camera time are ~1-2 s apart on the clock.
    steps = np.diff(keyframes, axis=0)
    across = int(np.argmax(steps[:, 0]))
    assert steps[across, 0] > 29.0 and steps[across, 1] < 2.1
    assert np.allclose(np.delete(steps[:, 0], across), np.delete(steps[:, 1], across), atol=1e-9)
    # The first keyframe after the stand and the 8 after it (query length 10) hold the
    # stand: withheld whatever the confidence; published again from the 10th on.
    published = np.array(published)
    after = published[across + 1:]
    assert published[5:across + 1, 0].all() and not published[5:across + 1, 1].any()
    assert after[:9, 1].all() and not after[:9, 0].any()
    assert after[9:, 0].all() and not after[9:, 1].any() and len(after) > 20
    assert np.percentile(errors, 95) < 8.0


def test_without_still_similarity_the_clock_is_the_camera_time(tmp_path):
    rng = np.random.default_rng(5)
    reference_map, place = _route_map(tmp_path, rng)
    stamps = 9500.0 + np.arange(200) / 10.0
    descriptors = _unit(np.repeat(place(np.array([300.0])), len(stamps), axis=0)
                        + 0.02 * rng.normal(size=(len(stamps), DIM)))  # standing the whole time
    localizer = StreamingLocalizer(reference_map, LocalizerConfig())
    for stamp, value in zip(stamps, descriptors):
        localizer.update(stamp, descriptor=value)
    assert localizer.counters["standing_checks"] == 0 and localizer.counters["keyframes"] == 20
    assert [k.clock_s for k in localizer._keyframes] == [k.stamp_s for k in localizer._keyframes]
