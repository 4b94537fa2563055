"""The streaming localizer on the synthetic world: fixes, robustness counters, kidnaps, unknown routes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqvpr.align import GDTWConfig, Signal, gdtw
from seqvpr.errors import SeqvprError
from seqvpr.localization import LocalizerConfig, MapPart, Status, StreamingLocalizer, load_map, write_map
from seqvpr.localization.proposal import Window, align_windows, decoy_windows, global_windows
from seqvpr.localization.replay import replay, summarize, traverse_frames


@pytest.fixture(scope="module")
def reference_map(world):
    return load_map(world.map_dir)


def _errors(result):
    return result.errors_m


def test_a_query_traverse_gets_fixes_and_no_wrong_ones(world, reference_map, query_descriptors):
    query = world.queries[0]
    localizer = StreamingLocalizer(reference_map)
    result = replay(localizer, traverse_frames(query, query_descriptors[query.name]))
    summary = summarize(result)
    counters = localizer.counters
    assert counters["received"] == len(query)
    # About one keyframe per second of the drive.
    duration = query.times_s[-1] - query.times_s[0]
    assert abs(counters["keyframes"] - duration) <= 0.1 * duration
    statuses = [e.status for e in result.estimates]
    assert statuses[0] is Status.INITIALIZING and Status.TRACKING in statuses
    fixed = np.array([e.has_fix for e in result.estimates])
    assert np.all(np.isfinite(_errors(result)[fixed]))
    assert summary["keyframes"]["fixes"] >= 1
    assert summary["all_frames"]["wrong_fix_rate"] <= 0.05
    first = next(e for e in result.estimates if e.has_fix)
    assert first.utm_zone == 30 and first.utm_letter == "U" and 51.7 < first.latitude < 51.8
    assert first.traverse == world.reference.name and 0 <= first.confidence <= 1
    assert np.all(np.linalg.eigvalsh(first.covariance) > 0)


def test_batched_padded_alignment_equals_one_window_at_a_time(reference_map, world, query_descriptors):
    query = world.queries[1]
    values = query_descriptors[query.name][40:80:4]
    values = values / np.linalg.norm(values, axis=1, keepdims=True)
    times = query.times_s[40:80:4]
    config = LocalizerConfig()
    span = reference_map.times[-1] - reference_map.times[0]
    start = reference_map.times[0]
    windows = [Window(0, start + 5, start + 25), Window(0, start + 30, start + 70), Window(0, start + 0.5 * span,
                                                                                          start + 0.5 * span + 12)]
    batched = align_windows(reference_map, windows, times, values, config)
    for i, window in enumerate(windows):
        rows = reference_map.window_rows(0, window.start_s, window.end_s)
        reference = Signal(torch.from_numpy(np.asarray(reference_map.times[rows]) - reference_map.times[rows.start]),
                           torch.from_numpy(np.array(reference_map.descriptors[rows])))
        single = gdtw(reference, Signal(torch.from_numpy(times - times[0]), torch.from_numpy(values)),
                      GDTWConfig(subsequence=True, lam=config.lam, grid_size=config.grid_size))
        assert batched.costs[i] == pytest.approx(float(single.cost[0]), rel=1e-5)
        assert batched.end_times[i] == pytest.approx(float(single.warp[0, -1]) + reference_map.times[rows.start],
                                                     abs=1e-6)


def test_global_windows_cover_each_vote_and_stay_in_one_traverse(tmp_path):
    rng = np.random.default_rng(0)
    parts = [MapPart(f"t{i}", "x", 100.0 * i + np.arange(60) * 0.5, np.zeros((60, 2)), np.zeros(60),
                     rng.normal(size=(60, 8))) for i in range(2)]
    two = write_map(tmp_path / "m", parts, zone="30U", fingerprint="f", encoder={})
    times = np.arange(5, dtype=float)
    # Keyframe j votes for row 10 + j of traverse 0 and for the row at the same time of traverse 1.
    rows = np.array([[10 + j, 60 + 10 + j] for j in range(5)])
    config = LocalizerConfig(window_slack_s=1.0, max_speed_ratio=2.0)
    windows = global_windows(two, times, rows, config)
    assert sorted(w.traverse for w in windows) == [0, 1]
    for window in windows:
        span = two.times[two.rows_of(window.traverse)]
        assert span[0] <= window.start_s < window.end_s <= span[-1]
        assert window.votes == 5
    # Brute force: each candidate's own span [tau - s (t_j - t_0) - slack, tau + s (t_m - t_j) + slack].
    for j in range(5):
        tau = two.times[10 + j]
        window = next(w for w in windows if w.traverse == 0)
        assert window.start_s <= max(tau - 2 * j - 1, two.times[0]) + 1e-9
        assert window.end_s >= min(tau + 2 * (4 - j) + 1, two.times[59]) - 1e-9
    decoys = decoy_windows(two, Window(0, two.times[20], two.times[30]), 0.0)
    assert all(d.traverse == 0 for d in decoys)


def test_drops_resets_and_corrupt_input_are_counted(reference_map, world, query_descriptors):
    query = world.queries[0]
    descriptors = query_descriptors[query.name]
    localizer = StreamingLocalizer(reference_map)
    start = float(query.times_s[0])
    localizer.update(start, descriptor=descriptors[0])
    localizer.update(start, descriptor=descriptors[0])                 # duplicate
    localizer.update(start - 0.5, descriptor=descriptors[0])           # out of order
    localizer.update(start + 1.0, descriptor=np.full_like(descriptors[1], np.nan))  # NaN: skipped
    localizer.update(start + 1.1, image=np.zeros((10, 10), np.uint8))  # not HxWx3: corrupt
    localizer.update(start + 1.2, image=np.zeros((10, 10, 3), np.float32))  # not uint8: corrupt
    localizer.update(start + 1.3, descriptor=descriptors[2])           # keyframe 2
    assert localizer.counters["keyframes"] == 2
    localizer.update(start - 5.0, descriptor=descriptors[3])           # jumped back 6 s: reset
    counters = localizer.counters
    assert counters == {**counters, "received": 8, "dropped_duplicate": 1, "dropped_out_of_order": 1,
                        "non_finite": 1, "corrupt_images": 2, "resets": 1, "keyframes": 3}
    assert localizer.status is Status.INITIALIZING
    with pytest.raises(SeqvprError, match="needs an image or a descriptor"):
        localizer.update(start + 10)
    with pytest.raises(SeqvprError, match="descriptor must have shape"):
        localizer.update(start + 11, descriptor=np.ones(3))
    with pytest.raises(SeqvprError, match="no encoder"):
        localizer.update(start + 12, image=np.zeros((8, 8, 3), np.uint8))


def test_memory_is_bounded_by_the_ring_buffer(reference_map, world, query_descriptors):
    query = world.queries[0]
    localizer = StreamingLocalizer(reference_map, LocalizerConfig(query_length=6, min_query_length=3))
    for stamp, values in zip(query.times_s, query_descriptors[query.name]):
        localizer.update(stamp, descriptor=values)
        assert len(localizer._keyframes) <= 6


def test_odometry_spaces_keyframes_by_distance(reference_map, world, query_descriptors):
    query = world.queries[0]
    config = LocalizerConfig(query_spacing_m=10.0)
    localizer = StreamingLocalizer(reference_map, config)
    for stamp, values, position in zip(query.times_s, query_descriptors[query.name], query.positions):
        localizer.update(stamp, descriptor=values, odometry=position)
    travelled = query.path_length_m[-1]
    assert abs(localizer.counters["keyframes"] - travelled / 10.0) <= 0.1 * travelled / 10.0 + 1


def test_an_image_is_encoded_like_the_map(world, query_descriptors):
    from seqvpr.data.images import read_rgb

    query = world.queries[0]
    localizer = StreamingLocalizer.from_map(world.map_dir, model=world.model)
    given = StreamingLocalizer.from_map(world.map_dir)
    for i in range(3):
        localizer.update(float(query.times_s[5 * i]), image=read_rgb(query.image_path(5 * i)))
        given.update(float(query.times_s[5 * i]), descriptor=query_descriptors[query.name][5 * i])
    assert localizer.map.centred and localizer.query_descriptors.shape == (3, localizer.map.dim)
    np.testing.assert_allclose(localizer.query_descriptors, given.query_descriptors, atol=1e-5)


def test_kidnap_gives_lost_or_a_recovery_within_five_keyframes(reference_map, world, query_descriptors):
    query = world.queries[1]
    descriptors = query_descriptors[query.name]
    half = len(query) // 2
    path = query.path_length_m
    # Frames from the first third, then frames from far along the route, stamps continuing.
    first = np.flatnonzero(path < path[-1] / 3)[-80:]
    second = np.flatnonzero(path > path[first[-1]] + 200)[:120]
    assert second.size > 60 and half > 0
    period = np.median(np.diff(query.times_s))
    stamps = query.times_s[first[0]] + period * np.arange(len(first) + len(second))
    rows = np.concatenate([first, second])
    localizer = StreamingLocalizer(reference_map)
    estimates = [localizer.update(stamp, descriptor=descriptors[row]) for stamp, row in zip(stamps, rows)]
    truths = query.positions[rows]
    after = [(e, t) for e, t in zip(estimates[len(first):], truths[len(first):]) if e.is_keyframe]
    wrong = [i for i, (e, t) in enumerate(after)
             if e.has_fix and np.hypot(e.easting - t[0], e.northing - t[1]) > 10.0]
    assert all(i < 5 for i in wrong), f"confident wrong fixes at keyframes {wrong} after the kidnap"


def test_a_route_not_in_the_map_yields_no_confident_fixes(tmp_path, reference_map, world, query_descriptors):
    # A map of the first 40 % of the reference only; the query's last 40 % is not in it.
    # Encoded afresh: the map's descriptors are centred by the whole reference's mean.
    from seqvpr.extraction import encode_images
    from seqvpr.vpr import load_encoder

    path = reference_map.path_length_m
    keep = path < 0.4 * path[-1]
    frames = np.searchsorted(world.reference.times_s, np.asarray(reference_map.times)[keep])
    values, _, _ = encode_images(load_encoder(world.model).eval(), [world.reference.image_path(i) for i in frames])
    part = MapPart("head", "x", np.asarray(reference_map.times)[keep], np.asarray(reference_map.positions)[keep],
                   np.asarray(reference_map.headings)[keep], values)
    head = write_map(tmp_path / "head", [part], zone="30U", fingerprint=reference_map.fingerprint, encoder={})
    query = world.queries[0]
    tail = query.path_length_m > 0.6 * query.path_length_m[-1]
    localizer = StreamingLocalizer(head)
    estimates = [localizer.update(stamp, descriptor=values)
                 for stamp, values in zip(query.times_s[tail], query_descriptors[query.name][tail])]
    keyframes = [e for e in estimates if e.is_keyframe]
    assert len(keyframes) > 20
    assert sum(e.has_fix for e in keyframes) <= 0.05 * len(keyframes)


def test_the_streak_counts_consecutive_keyframes_that_agree_with_the_motion():
    # Hand-made hypotheses on a straight 1 m/s track (path metres = reference seconds): the
    # robot moves 1 s per keyframe at rate 1; each row is (traverse, reference time).
    from seqvpr.localization.streaming import _Hypothesis, extend_streak

    def path_at(traverse, time_s):
        return time_s

    sequence = [(0, 10.0), (0, 11.0), (0, 12.5), (0, 40.0), (0, 41.0), (1, 42.0), (1, 43.0), (1, 44.0), (1, 52.0)]
    expected = [0, 1, 2, 0, 1, 0, 1, 2, 0]  # 12.5 is 0.5 m off (consistent), 40 and 52 jump, traverse 1 restarts
    previous, streaks = None, []
    for stamp, (traverse, time_s) in enumerate(sequence):
        streak = extend_streak(previous, traverse, path_at(traverse, time_s), float(stamp), path_at, 5.0)
        previous = _Hypothesis(traverse, time_s, float(stamp), 1.0, streak)
        streaks.append(streak)
    assert streaks == expected


def test_each_speed_ratio_is_gdtw_with_that_expected_slope(reference_map, world, query_descriptors):
    # Oracle: GDTW on the full descriptors with expected_slope e and the same lambda; the
    # localizer stretches the query's times instead and divides the cost by e.
    query = world.queries[0]
    values = query_descriptors[query.name][60:100:4]
    values = values / np.linalg.norm(values, axis=1, keepdims=True)
    times = query.times_s[60:100:4]
    config = LocalizerConfig(lam=0.5, speed_ratios=(0.6, 1.0, 1.5))
    localizer = StreamingLocalizer(reference_map, config)
    start = float(reference_map.times[0])
    windows = [Window(0, start + 5, start + 40), Window(0, start + 30, start + 60)]
    costs, end_times, _ = localizer._align(windows, times, values)
    for r, ratio in enumerate(config.speed_ratios):
        for w, window in enumerate(windows):
            rows = reference_map.window_rows(0, window.start_s, window.end_s)
            origin = reference_map.times[rows.start]
            reference = Signal(torch.from_numpy(np.asarray(reference_map.times[rows]) - origin),
                               torch.from_numpy(np.array(reference_map.descriptors[rows], dtype=np.float64)))
            query = Signal(torch.from_numpy(times - times[0]), torch.from_numpy(values.astype(np.float64)))
            single = gdtw(reference, query,
                          GDTWConfig(subsequence=True, lam=0.5, grid_size=config.grid_size, expected_slope=ratio))
            index = r * len(windows) + w
            assert costs[index] == pytest.approx(float(single.cost[0]), rel=1e-4)
            assert end_times[index] == pytest.approx(float(single.warp[0, -1]) + origin, abs=1e-3)


def test_a_short_traverse_still_gives_the_best_window_a_runner_up(tmp_path):
    # 80 frames 1 s and 2 m apart with random descriptors: one global window covers most of
    # the traverse, leaving no room for decoys 25 m clear of it. The query replays frames
    # 30..44 exactly, so the runner-up (decoys around the best warp) is far worse: margin > 0.5.
    rng = np.random.default_rng(0)
    descriptors = rng.normal(size=(80, 32))
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    positions = np.stack([2.0 * np.arange(80), np.zeros(80)], axis=1)
    part = MapPart("short", "x", np.arange(80, dtype=float), positions, np.zeros(80), descriptors)
    short = write_map(tmp_path / "short", [part], zone="30U", fingerprint="f", encoder={})
    localizer = StreamingLocalizer(short, LocalizerConfig(query_length=15))
    for frame in range(30, 45):
        estimate = localizer.update(float(frame), descriptor=descriptors[frame])
    assert localizer.last_margin > 0.5
    assert estimate.has_fix and abs(estimate.easting - positions[44, 0]) < 2.0
