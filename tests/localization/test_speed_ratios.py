"""All speed ratios in one GDTW batch: the same costs and warps as aligning stretched query times.

The oracle is the definition: at expected speed ratio e the query's times are stretched by e
(t -> t_0 + e (t - t_0)), lambda becomes lambda e^2, and the objective is divided by e; each
ratio is a separate GDTW call. The batch instead gives each item its own expected slope e.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from seqvpr.localization import LocalizerConfig
from seqvpr.localization.proposal import Window, align_windows
from seqvpr.localization.simulate import drive, route_map, synthetic_route

RATIOS = (0.7, 1.0, 1.4)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    route = synthetic_route(600, 48, seed=4)
    reference_map = route_map(route, tmp_path_factory.mktemp("ratios") / "map")
    stamps, _, values = drive(route, 12.0, 1.0, seed=5, start_m=300.0)
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    origin = 1_000_000.0
    windows = [
        Window(0, origin + 28.0, origin + 48.0),   # around the truth (300 m at 10 m/s = 30 s)
        Window(0, origin + 5.0, origin + 30.0),    # partly overlapping
        Window(0, origin + 90.0, origin + 95.0),   # shorter than the query at every ratio: widened
        Window(0, origin + 114.0, origin + 119.8),  # clipped at the end of the traverse
    ]
    return reference_map, windows, stamps[:10], values[:10]


def test_batched_ratios_equal_separately_stretched_alignments(setting):
    reference_map, windows, times, values = setting
    config = LocalizerConfig()
    batched = align_windows(reference_map, windows, times, values, config, speed_ratios=RATIOS)
    assert len(batched.costs) == len(RATIOS) * len(windows)
    assert batched.windows == windows * len(RATIOS)
    for r, ratio in enumerate(RATIOS):
        stretched = times[0] + ratio * (times - times[0])
        single = align_windows(reference_map, windows, stretched, values,
                               dataclasses.replace(config, lam=config.lam * ratio * ratio))
        items = slice(r * len(windows), (r + 1) * len(windows))
        np.testing.assert_allclose(batched.costs[items], single.costs / ratio, rtol=1e-5)
        np.testing.assert_allclose(batched.end_times[items], single.end_times, atol=1e-3)
        np.testing.assert_allclose(batched.start_times[items], single.start_times, atol=1e-3)


def test_the_true_window_wins_and_the_ratio_follows_the_speed(setting):
    reference_map, windows, times, values = setting
    batched = align_windows(reference_map, windows, times, values, LocalizerConfig(), speed_ratios=RATIOS)
    best = int(np.argmin(batched.costs))
    assert best % len(windows) == 0
    # The drive's reference time of its last keyframe: path position / 10 m/s.
    route_speed_s = (batched.end_times[best] - 1_000_000.0) * 10.0
    assert 300.0 < route_speed_s < 300.0 + 12 * 12.0
