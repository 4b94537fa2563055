"""`align_windows`: the batched subsequence GDTW fed straight from the map's inner products.

Oracle: :func:`seqvpr.align.gdtw` on the whole descriptors, one (window, speed ratio) at a
time, with the same options (free ends, expected slope e, lambda, grid, refinements).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqvpr.align import GDTWConfig, Signal, gdtw
from seqvpr.errors import SeqvprError
from seqvpr.localization import LocalizerConfig, MapConfig, MapPart, write_map
from seqvpr.localization.proposal import KeyframeProducts, Window, _merged_runs, _rows_at_least, align_windows

DIM = 40


def _unit(values):
    return values / np.linalg.norm(values, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def two_traverse_map(tmp_path_factory):
    rng = np.random.default_rng(7)
    parts = []
    for number, count in enumerate((300, 200)):
        walk = np.cumsum(rng.normal(size=(count, DIM)), axis=0)  # neighbouring frames alike
        times = 1000.0 * (number + 1) + np.cumsum(rng.uniform(0.15, 0.35, count))
        positions = np.stack([600000.0 + 2.0 * np.arange(count), np.full(count, 5700000.0 + 100 * number)], axis=1)
        parts.append(MapPart(f"t{number}", "x", times, positions, np.zeros(count), walk))
    return write_map(tmp_path_factory.mktemp("align") / "map", parts, zone="30U", fingerprint="f", encoder={},
                     config=MapConfig(reference_spacing_m=0.0, centre=False, proposal_dim=None))


def _plain(reference_map, window, ratio, times, query, config):
    span = float(times[-1] - times[0])
    rows = _rows_at_least(reference_map, window, ratio * span)
    axis = np.asarray(reference_map.times[rows])
    reference = Signal(torch.from_numpy(axis[None] - axis[0]),
                       torch.from_numpy(np.asarray(reference_map.descriptors[rows], dtype=np.float64)[None]))
    query_signal = Signal(torch.from_numpy((times - times[0])[None]),
                          torch.from_numpy(query.astype(np.float32).astype(np.float64)[None]))
    result = gdtw(reference, query_signal, GDTWConfig(subsequence=True, lam=config.lam, grid_size=config.grid_size,
                                                      refinements=config.refinements, expected_slope=ratio))
    return float(result.cost[0]), float(result.warp[0, -1]) + axis[0], float(result.warp[0, 0]) + axis[0]


@pytest.mark.parametrize("stopped", [False, True])
def test_every_window_and_ratio_equals_plain_gdtw_on_the_whole_descriptors(two_traverse_map, stopped):
    rng = np.random.default_rng(int(stopped))
    reference_map = two_traverse_map
    rows = reference_map.rows_of(0)
    truth = rows.start + 120 + np.array([0, 3, 7, 10, 14, 17, 21, 24, 28, 31])
    if stopped:  # a robot standing still: repeated keyframes, a rank-deficient query
        truth[3:7] = truth[3]
    query = _unit(np.asarray(reference_map.descriptors[truth]) + 0.2 * rng.normal(size=(len(truth), DIM)) / 6)
    times = 5000.0 + np.arange(len(truth), dtype=float)
    t0, t1 = reference_map.times[rows.start], reference_map.times[rows.stop - 1]
    second = reference_map.rows_of(1)
    windows = [
        Window(0, float(reference_map.times[truth[0]] - 3.0), float(reference_map.times[truth[-1]] + 3.0)),
        Window(0, float(t0 + 5.0), float(t0 + 9.0)),             # short: widened inside the traverse
        Window(0, float(t1 - 2.0), float(t1)),                    # at the end of the traverse
        Window(1, float(reference_map.times[second.start + 20]), float(reference_map.times[second.start + 90])),
    ]
    config = LocalizerConfig()
    ratios = (0.7, 1.0, 1.4)
    batched = align_windows(reference_map, windows, times, query, config, speed_ratios=ratios)
    assert len(batched.costs) == len(windows) * len(ratios)
    for r, ratio in enumerate(ratios):
        for w, window in enumerate(windows):
            cost, end, start = _plain(reference_map, window, ratio, times, query, config)
            item = r * len(windows) + w
            # The batched path multiplies in float32 (as the map stores them), the oracle in
            # float64: squared distances of near neighbours cancel, so an absolute tolerance.
            assert batched.costs[item] == pytest.approx(cost, rel=1e-6, abs=1e-5)
            assert batched.end_times[item] == pytest.approx(end, abs=1e-3)
            assert batched.start_times[item] == pytest.approx(start, abs=1e-3)
    assert int(np.argmin(batched.costs)) % len(windows) == 0  # the true window wins


def test_a_non_finite_query_is_a_clear_error(two_traverse_map):
    query = _unit(np.ones((6, DIM)))
    query[2, 0] = np.nan
    window = Window(0, float(two_traverse_map.times[10]), float(two_traverse_map.times[60]))
    with pytest.raises(SeqvprError, match="not finite"):
        align_windows(two_traverse_map, [window], 10.0 + np.arange(6.0), query, LocalizerConfig())


# Overlapping, nested, adjacent, a few rows apart (joined), far apart (separate), a single row.
SLICES = [slice(100, 150), slice(120, 140), slice(150, 170), slice(180, 200), slice(300, 340), slice(5, 6),
          slice(130, 190)]


def test_runs_cover_every_row_once_and_join_small_gaps():
    runs = _merged_runs(SLICES, gap=32)
    assert runs == [slice(5, 6), slice(100, 200), slice(300, 340)]
    covered = np.concatenate([np.arange(r.start, r.stop) for r in runs])
    assert len(covered) == len(np.unique(covered))
    assert set(np.concatenate([np.arange(s.start, s.stop) for s in SLICES])) <= set(covered)
    assert _merged_runs(SLICES, gap=0) == [slice(5, 6), slice(100, 200), slice(300, 340)]
    assert _merged_runs([slice(0, 10), slice(12, 20)], gap=1) == [slice(0, 10), slice(12, 20)]
    assert _merged_runs([slice(0, 10), slice(12, 20)], gap=2) == [slice(0, 20)]


def test_cached_keyframe_products_equal_the_plain_products(two_traverse_map, device):
    """KeyframeProducts against numpy's float32 products, over a query that shifts by one
    keyframe per call (table rows taken over past the capacity) with windows that move; only
    the newest keyframe meets every row, the older ones just the rows new to them."""
    rng = np.random.default_rng(3)
    descriptors = np.asarray(two_traverse_map.descriptors, dtype=np.float32)
    capacity = 6
    cache = KeyframeProducts(two_traverse_map.descriptors, capacity, str(device))
    keyframes = _unit(rng.normal(size=(40, DIM))).astype(np.float32)
    start = 20
    for newest in range(3, 40):
        serials = np.arange(max(0, newest - capacity + 1), newest + 1)
        start += int(rng.integers(0, 6))
        runs = _merged_runs([slice(start, start + 50), slice(start + 120, start + 150)])
        before = cache.computed
        products = cache.products(serials, keyframes[serials], runs)
        rows = np.concatenate([np.arange(run.start, run.stop) for run in runs])
        expected = (keyframes[serials] @ descriptors[rows].T).astype(np.float64)
        np.testing.assert_allclose(products, expected, rtol=1e-6, atol=1e-6)
        if newest > 3:  # the newest keyframe with every row, the others with the rows new to them
            assert cache.computed - before < 2 * len(rows) + (len(serials) - 1) * 12
    # Serials that share a row of the table (more than its capacity at once) only cost recomputation.
    cache, crowded = KeyframeProducts(two_traverse_map.descriptors, capacity, str(device)), np.array([30, 33, 34, 35, 36, 37, 38])
    for _ in range(2):
        np.testing.assert_allclose(cache.products(crowded, keyframes[crowded], runs),
                                   keyframes[crowded] @ descriptors[rows].T, rtol=1e-6, atol=1e-6)


def test_a_localizer_with_cached_products_gives_what_fresh_products_give(two_traverse_map, monkeypatch):
    """Replayed twice, once with each alignment's products computed afresh: the same
    hypotheses, margins and statuses, keyframe by keyframe."""
    from seqvpr.localization import StreamingLocalizer, streaming
    from seqvpr.localization.proposal import _query_inner_products

    assert StreamingLocalizer(two_traverse_map)._products is None  # 40-d: multiplied afresh
    monkeypatch.setattr(streaming, "CACHED_PRODUCTS_MIN_DIM", DIM)

    rng = np.random.default_rng(4)
    descriptors = np.asarray(two_traverse_map.descriptors)
    times = np.asarray(two_traverse_map.times)
    frames = np.arange(40, 260)
    stamps = 5000.0 + 0.8 * (times[frames] - times[frames[0]])  # a faster drive than the map's
    values = _unit(descriptors[frames] + 0.3 * rng.normal(size=(len(frames), DIM)))
    config = LocalizerConfig(query_period_s=0.5, distinct_m=20.0)
    cached, fresh = StreamingLocalizer(two_traverse_map, config), StreamingLocalizer(two_traverse_map, config)
    plain = []

    def fresh_products(serials, query, runs):
        plain.append(len(query) * sum(run.stop - run.start for run in runs))
        return _query_inner_products(two_traverse_map.descriptors, runs, np.asarray(query, dtype=np.float32), "cpu")

    fresh._products.products = fresh_products
    seen = []
    for stamp, value in zip(stamps, values):
        a, b = cached.update(stamp, descriptor=value), fresh.update(stamp, descriptor=value)
        assert (a.status, a.is_keyframe, a.traverse) == (b.status, b.is_keyframe, b.traverse)
        if a.is_keyframe and a.traverse:
            # float32 products of other shapes round differently in the last bit
            assert a.reference_time_s == pytest.approx(b.reference_time_s, abs=1e-4)
            assert cached.last_margin == pytest.approx(fresh.last_margin, abs=1e-6)
            seen.append(a.reference_time_s)
    assert len(seen) > 60
    assert 0 < cached._products.computed < 0.4 * sum(plain)
