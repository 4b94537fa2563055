"""The node's odometry history: interpolation at image stamps against np.interp, holding,
dropping and counting bad readings, bounded memory, and concurrent use."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from seqvpr.ros.odometry import OdometryBuffer


def _oracle(stamps: np.ndarray, positions: np.ndarray, stamp: float, hold_s: float) -> tuple[float, float] | None:
    """The lookup rule written out plainly over every reading kept."""
    if stamp < stamps[0] or stamp - stamps[-1] > hold_s:
        return None
    if stamp >= stamps[-1]:
        return tuple(positions[-1])
    return float(np.interp(stamp, stamps, positions[:, 0])), float(np.interp(stamp, stamps, positions[:, 1]))


def test_lookups_match_linear_interpolation_of_the_readings():
    rng = np.random.default_rng(3)
    stamps = 100.0 + np.cumsum(rng.uniform(0.005, 0.04, 400))  # about 50 Hz, jittered
    positions = np.cumsum(rng.normal(0.0, 0.3, (400, 2)), axis=0)
    buffer = OdometryBuffer(hold_s=0.2, reset_backward_s=1.0)
    for stamp, (x, y) in zip(stamps, positions):
        assert buffer.add(stamp, x, y)
    queries = np.concatenate([rng.uniform(stamps[0] - 0.5, stamps[-1] + 0.5, 2000), stamps[::7],
                              [stamps[-1] + 0.2, stamps[-1] + 0.2001, stamps[0] - 1e-9]])
    held = without = 0
    for stamp in queries:
        expected = _oracle(stamps, positions, stamp, 0.2)
        got = buffer.at(stamp)
        if expected is None:
            assert got is None, stamp
            without += 1
        else:
            assert got is not None and np.allclose(got, expected, rtol=0, atol=1e-9), (stamp, got, expected)
            held += stamp > stamps[-1]
    counters = buffer.counters()
    assert (counters["frames_held"], counters["frames_without"]) == (held, without)
    assert held > 0 and without > 0


def test_out_of_order_duplicate_and_non_finite_readings_are_dropped_and_counted():
    buffer = OdometryBuffer(hold_s=0.0, reset_backward_s=1.0)
    assert buffer.add(10.0, 0.0, 0.0) and buffer.add(10.1, 1.0, 0.0)
    assert not buffer.add(10.1, 5.0, 5.0)  # duplicate stamp
    assert not buffer.add(10.05, 5.0, 5.0)  # out of order
    assert not buffer.add(10.2, math.nan, 0.0)
    assert not buffer.add(10.2, 0.0, math.inf)
    assert not buffer.add(math.nan, 0.0, 0.0)
    assert buffer.add(10.2, 2.0, 0.0)
    assert buffer.at(10.05) == pytest.approx((0.5, 0.0))
    assert buffer.at(10.15) == pytest.approx((1.5, 0.0))
    assert buffer.at(10.2) == (2.0, 0.0)
    assert buffer.at(10.2001) is None  # hold_s = 0: only an exact stamp
    assert buffer.counters() == {"received": 8, "dropped_out_of_order": 2, "dropped_non_finite": 3, "resets": 0,
                                 "frames_held": 0, "frames_without": 1}


def test_a_jump_back_clears_the_history():
    buffer = OdometryBuffer(hold_s=0.1, reset_backward_s=1.0)
    for index in range(10):
        buffer.add(50.0 + 0.1 * index, float(index), 0.0)
    assert buffer.add(20.0, 7.0, 7.0)  # a replayed bag restarting
    assert len(buffer) == 1 and buffer.newest_stamp() == 20.0
    assert buffer.at(50.5) is None and buffer.at(20.05) == (7.0, 7.0) and buffer.at(19.9) is None
    assert buffer.counters()["resets"] == 1


def test_memory_is_bounded_by_time_and_count():
    buffer = OdometryBuffer(hold_s=0.1, reset_backward_s=1.0, history_s=2.0, max_readings=150)
    for index in range(1000):  # 10 s at 100 Hz
        buffer.add(0.01 * index, float(index), 0.0)
    assert len(buffer) == 150  # the count bound (2 s would be 200 readings)
    assert buffer.at(0.01 * 849) is None and buffer.at(0.01 * 851) == pytest.approx((851.0, 0.0))
    buffer = OdometryBuffer(hold_s=0.1, reset_backward_s=1.0, history_s=2.005, max_readings=1000)
    for index in range(1000):
        buffer.add(0.01 * index, float(index), 0.0)
    assert len(buffer) == 201  # the time bound: stamps 7.99 ... 9.99 (2.005 s before the newest)


def test_concurrent_adds_and_lookups():
    """The ROS callback adds while the worker looks up; every answer lies on the line travelled."""
    buffer = OdometryBuffer(hold_s=0.05, reset_backward_s=1.0)
    errors: list[str] = []

    def produce() -> None:
        for index in range(20000):
            buffer.add(0.002 * index, 3.0 * index, -1.0 * index)

    def consume() -> None:
        rng = np.random.default_rng(0)
        for _ in range(20000):
            newest = buffer.newest_stamp()
            if newest is None:
                continue
            stamp = newest - rng.uniform(0.0, 1.0)
            position = buffer.at(stamp)
            if position is not None and not math.isclose(position[0], -3.0 * position[1], abs_tol=1e-6):
                errors.append(f"{stamp}: {position}")

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert buffer.counters()["received"] == 20000 and buffer.counters()["dropped_out_of_order"] == 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="hold_s"):
        OdometryBuffer(hold_s=-0.1, reset_backward_s=1.0)
    with pytest.raises(ValueError, match="reset_backward_s"):
        OdometryBuffer(hold_s=0.1, reset_backward_s=0.0)
