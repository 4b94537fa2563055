"""The node core's odometry bookkeeping without ROS: what the diagnostics say about odometry,
and which readings reach the history (the live tests run it with real messages)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import seqvpr.ros.node_core as node_core
from seqvpr.ros.node_core import LocalizationCore
from seqvpr.ros.params import node_config_from_parameters


def _odometry(stamp_s: float, x: float, y: float) -> SimpleNamespace:
    """A message with nav_msgs/Odometry's fields that the node reads (ROS 2 stamp layout)."""
    sec = int(stamp_s)
    stamp = SimpleNamespace(sec=sec, nanosec=round((stamp_s - sec) * 1e9))
    position = SimpleNamespace(x=x, y=y, z=0.0)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp), pose=SimpleNamespace(pose=SimpleNamespace(
        position=position)))


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(node_core.time, "monotonic", lambda: now[0])
    return now


def _core(**parameters) -> LocalizationCore:
    config = node_config_from_parameters({"map_dir": "/maps/a", "model": "/m.pt", **parameters}, "node /x")
    return LocalizationCore(config, localizer=None, types=None, publish_pose=print, publish_fix=print,
                            odometry_topic_name="/robot/odom" if config.odometry_topic else "")


def test_without_odometry_the_diagnostics_say_none(clock):
    core = _core()
    assert core.odometry is None
    assert core.odometry_state() == ({"odometry_topic": ""}, None)


def test_odometry_age_and_the_silence_warning(clock):
    core = _core(odometry_topic="odom", **{"localizer.query_spacing_m": 8.0, "localizer.odometry_timeout_s": 2.0})
    assert core.odometry_state() == ({"odometry_topic": "/robot/odom", "odometry_age_s": ""}, None)  # nothing yet
    core.receive(SimpleNamespace())  # an image arrives, no odometry has
    assert core.odometry_state()[1] == "no odometry received"
    core.receive_odometry(_odometry(50.0, 1.0, 2.0))
    clock[0] += 1.5
    assert core.odometry_state() == ({"odometry_topic": "/robot/odom", "odometry_age_s": "1.500"}, None)
    core.receive_odometry(_odometry(49.9, 5.0, 5.0))  # out of order: dropped, the age runs on
    clock[0] += 1.0
    values, warning = core.odometry_state()
    assert (values["odometry_age_s"], warning) == ("2.500", "no odometry for 2.5 s")
    core.receive_odometry(_odometry(50.5, 2.0, 4.0))
    assert core.odometry_state()[1] is None
    assert core.odometry.at(50.25) == pytest.approx((1.5, 3.0))
    counters = core.odometry.counters()
    assert (counters["received"], counters["dropped_out_of_order"]) == (3, 1)
