"""What the ROS 1 and ROS 2 localization nodes share: queue, worker, localizer, outputs.

The ROS callback only hands the incoming message to :meth:`LocalizationCore.receive`
(no decoding, never blocks); the worker thread decodes the image, runs the localizer and
calls ``publish`` with the messages to send. With an ``odometry_topic``, the odometry
callback adds each reading to an :class:`~seqvpr.ros.odometry.OdometryBuffer`
(:meth:`LocalizationCore.receive_odometry`), and the worker passes the localizer the
odometry position at each image's stamp. Pose and fix go out only while the
localizer is TRACKING, stamped with the image's own header stamp; diagnostics come from
:meth:`LocalizationCore.diagnostics` on the node's timer. No ROS import here: each node
passes its version's message classes and publish function.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from seqvpr.ros.conversions import (
    MessageTypes,
    compressed_image_to_rgb,
    diagnostics_message,
    estimate_to_fix,
    estimate_to_pose,
    image_to_rgb,
    odometry_reading,
    stamp_to_seconds,
)
from seqvpr.ros.odometry import OdometryBuffer
from seqvpr.ros.params import NodeConfig
from seqvpr.ros.queue import DropOldestQueue, QueueWorker

__all__ = ["Frame", "LocalizationCore", "warm_up"]

LOGGER = logging.getLogger(__name__)

# Latencies kept for the diagnostics' median and 95th percentile.
LATENCY_WINDOW = 200


def warm_up(localizer: Any) -> float:
    """Runs a throwaway copy of ``localizer`` through its first alignments; returns the seconds taken.

    The first keyframes otherwise pay for lazy imports, kernel compilation and the first
    index search (seconds), and the camera's frames would queue up and be dropped
    behind them. The copy shares the map and encoder; ``localizer`` itself is untouched.
    With ``query_spacing_m`` set, the copy is given odometry a spacing per frame, so that
    the alignment on distance is the one warmed up.
    """
    started = time.monotonic()
    spare = type(localizer)(localizer.map, localizer.config, localizer.encoder, localizer.calibration)
    encoder = localizer.encoder.config
    images = np.random.default_rng(0).integers(0, 256, (2, encoder.image_height, encoder.image_width, 3), np.uint8)
    spacing_m = localizer.config.query_spacing_m
    for index in range(localizer.config.min_query_length + 1):
        spare.update(index * localizer.config.query_period_s, image=images[index % 2],
                     odometry=None if spacing_m is None else index * spacing_m)
    return time.monotonic() - started


@dataclasses.dataclass(frozen=True)
class Frame:
    """An image message as it came in, with the monotonic time it arrived."""

    message: Any
    received_s: float


class LocalizationCore:
    """Localizes queued image messages on a worker thread and publishes the results.

    Args:
        config: the node's parameters.
        localizer: a :class:`seqvpr.localization.StreamingLocalizer`.
        types: the message classes of the node's ROS version.
        publish_pose: sends a PoseWithCovarianceStamped.
        publish_fix: sends a NavSatFix.
        odometry_topic_name: the resolved odometry topic, for diagnostics (default: the
            ``odometry_topic`` parameter as given).
    """

    def __init__(
        self,
        config: NodeConfig,
        localizer: Any,
        types: MessageTypes,
        publish_pose: Callable[[Any], None],
        publish_fix: Callable[[Any], None],
        odometry_topic_name: str = "",
    ) -> None:
        self.config = config
        self.localizer = localizer
        self.types = types
        self._publish_pose = publish_pose
        self._publish_fix = publish_fix
        self._decode = compressed_image_to_rgb if config.image_transport == "compressed" else image_to_rgb
        self._lock = threading.Lock()
        self._latest = None
        self._last_received_s: float | None = None
        self._latencies_s: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self.odometry: OdometryBuffer | None = None
        self._last_odometry_s: float | None = None
        self._odometry_topic_name = odometry_topic_name or config.odometry_topic
        if config.odometry_topic:
            self.odometry = OdometryBuffer(config.odometry_hold_s, config.localizer.reset_backward_s)
        self.worker = QueueWorker(DropOldestQueue(config.queue_size), self._process, name="seqvpr-localizer")

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def receive(self, message: Any) -> None:
        """The subscription callback: queue the message, dropping the oldest if full."""
        now = time.monotonic()
        self._last_received_s = now
        self.worker.queue.put(Frame(message, now))

    def receive_odometry(self, message: Any) -> None:
        """The odometry subscription callback: keep the reading (dropped and counted if
        out of order or not finite)."""
        if self.odometry.add(*odometry_reading(message)):
            self._last_odometry_s = time.monotonic()

    def _process(self, frame: Frame) -> None:
        header = frame.message.header
        stamp_s = stamp_to_seconds(header.stamp)
        odometry = None if self.odometry is None else self.odometry.at(stamp_s)
        estimate = self.localizer.update(stamp_s, image=self._decode(frame.message), odometry=odometry)
        if estimate.has_fix:
            self._publish_pose(
                estimate_to_pose(estimate, header.stamp, self.config.frame_id, self.types,
                                 self.config.heading_stddev_rad)
            )
            self._publish_fix(estimate_to_fix(estimate, header.stamp, header.frame_id, self.types))
        latency_s = time.monotonic() - frame.received_s
        with self._lock:
            self._latencies_s.append(latency_s)
            self._latest = estimate

    def counters(self) -> dict[str, int]:
        """Frame counters of the node's queue, of the odometry (``odometry_*``) and of the localizer."""
        counters = self.worker.counters()
        if self.odometry is not None:
            counters.update({f"odometry_{name}": value for name, value in self.odometry.counters().items()})
        counters.update({f"localizer_{name}": value for name, value in dict(self.localizer.counters).items()})
        return counters

    def odometry_state(self) -> tuple[dict[str, str], str | None]:
        """Diagnostics values about odometry, and a warning when it is configured but silent.

        Values: ``odometry_topic`` (empty when none is configured) and ``odometry_age_s``,
        the seconds since the last odometry reading was accepted (empty before the first).
        The warning comes once images arrive while no odometry has come for the localizer's
        ``odometry_timeout_s``: keyframes then follow time.
        """
        if self.odometry is None:
            return {"odometry_topic": ""}, None
        now = time.monotonic()
        last = self._last_odometry_s
        age_s = None if last is None else now - last
        values = {"odometry_topic": self._odometry_topic_name,
                  "odometry_age_s": "" if age_s is None else f"{age_s:.3f}"}
        if self._last_received_s is None:
            return values, None
        if age_s is None:
            return values, "no odometry received"
        if age_s > self.config.localizer.odometry_timeout_s:
            return values, f"no odometry for {age_s:.1f} s"
        return values, None

    def diagnostics(self, stamp: Any, node_name: str) -> Any:
        """The DiagnosticArray to publish now (``stamp``: the node's current time)."""
        with self._lock:
            estimate, latencies = self._latest, list(self._latencies_s)
        since = None if self._last_received_s is None else time.monotonic() - self._last_received_s
        values, warning = self.odometry_state()
        return diagnostics_message(
            stamp, f"{node_name}: localization", estimate, self.counters(), latencies, self.types,
            since, self.config.stale_after_s, values, warning,
        )
