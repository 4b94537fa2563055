"""Recent odometry positions, looked up at each camera image's stamp (no ROS imports).

The node's odometry callback adds each ``nav_msgs/Odometry`` reading (header stamp and
``pose.pose.position`` x, y, in the odometry's own frame); the worker asks for the position
at an image's stamp and hands it to ``StreamingLocalizer.update(..., odometry=(x, y))``.
Only distances between positions matter to the localizer, so the odometry frame need not
be related to the map's.

Lookup at an image stamp ``t`` (odometry typically at 50 Hz, a camera at 10-30 Hz):

- ``t`` between two readings: linear interpolation between them (the usual case: an image
  reaches the node later than the odometry of the same instant, which is small and sent
  at once);
- ``t`` after the newest reading by at most ``hold_s``: the newest reading, held (the
  odometry has not caught up yet; the position is then at most speed x lag behind, and no
  distance is lost, since the next image's position is measured from this one);
- ``t`` later than that, or before the oldest reading kept: no odometry (None). The
  localizer makes no odometry keyframe on such a frame and, once odometry has been missing
  for its ``odometry_timeout_s``, falls back to keyframes on time.

Readings whose stamp is not after the newest (out of order, duplicates) and readings with
NaN or infinite values are dropped and counted; a jump back of more than
``reset_backward_s`` (a replayed bag restarting, simulated time reset) clears the history
instead and is counted as a reset. Memory is bounded: readings older than ``history_s``
behind the newest are forgotten, and at most ``max_readings`` are kept.
"""

from __future__ import annotations

import bisect
import collections
import math
import threading

__all__ = ["OdometryBuffer", "HISTORY_S", "MAX_READINGS"]

# An image waits in the node's queue for a few frame periods at most; ten seconds of
# odometry cover that with a wide margin, and 4000 readings are ten seconds at 400 Hz.
HISTORY_S = 10.0
MAX_READINGS = 4000


class OdometryBuffer:
    """Thread-safe history of odometry positions, interpolated at image stamps.

    Args:
        hold_s: an image up to this many seconds newer than the newest reading gets that
            reading (>= 0).
        reset_backward_s: a reading this far (seconds) behind the newest clears the history.
        history_s: readings older than this behind the newest are forgotten.
        max_readings: most readings kept.
    """

    def __init__(self, hold_s: float, reset_backward_s: float, history_s: float = HISTORY_S,
                 max_readings: int = MAX_READINGS) -> None:
        if not (math.isfinite(hold_s) and hold_s >= 0):
            raise ValueError(f"hold_s must be a finite number >= 0, got {hold_s!r}")
        if not (math.isfinite(reset_backward_s) and reset_backward_s > 0):
            raise ValueError(f"reset_backward_s must be a finite number > 0, got {reset_backward_s!r}")
        self.hold_s = hold_s
        self.reset_backward_s = reset_backward_s
        self.history_s = history_s
        self._stamps: collections.deque[float] = collections.deque(maxlen=max_readings)
        self._positions: collections.deque[tuple[float, float]] = collections.deque(maxlen=max_readings)
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(
            ("received", "dropped_out_of_order", "dropped_non_finite", "resets", "frames_held", "frames_without"), 0)

    def add(self, stamp_s: float, x: float, y: float) -> bool:
        """Adds one reading; returns False when it was dropped (out of order or not finite)."""
        with self._lock:
            self._counters["received"] += 1
            if not (math.isfinite(stamp_s) and math.isfinite(x) and math.isfinite(y)):
                self._counters["dropped_non_finite"] += 1
                return False
            if self._stamps and stamp_s <= self._stamps[-1]:
                if self._stamps[-1] - stamp_s <= self.reset_backward_s:
                    self._counters["dropped_out_of_order"] += 1
                    return False
                self._counters["resets"] += 1
                self._stamps.clear()
                self._positions.clear()
            self._stamps.append(float(stamp_s))
            self._positions.append((float(x), float(y)))
            while self._stamps[0] < stamp_s - self.history_s:
                self._stamps.popleft()
                self._positions.popleft()
            return True

    def at(self, stamp_s: float) -> tuple[float, float] | None:
        """The odometry position (x, y) at ``stamp_s``, or None (see the module docstring)."""
        with self._lock:
            position = self._lookup(stamp_s)
            if position is None:
                self._counters["frames_without"] += 1
            return position

    def _lookup(self, stamp_s: float) -> tuple[float, float] | None:
        stamps = self._stamps
        if not stamps or stamp_s < stamps[0]:
            return None
        if stamp_s >= stamps[-1]:
            if stamp_s - stamps[-1] > self.hold_s:
                return None
            if stamp_s > stamps[-1]:
                self._counters["frames_held"] += 1
            return self._positions[-1]
        after = bisect.bisect_right(stamps, stamp_s)  # stamps[after - 1] <= stamp_s < stamps[after]
        (x0, y0), (x1, y1) = self._positions[after - 1], self._positions[after]
        weight = (stamp_s - stamps[after - 1]) / (stamps[after] - stamps[after - 1])
        return x0 + weight * (x1 - x0), y0 + weight * (y1 - y0)

    def newest_stamp(self) -> float | None:
        """Stamp of the newest reading kept, None when there is none."""
        with self._lock:
            return self._stamps[-1] if self._stamps else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def counters(self) -> dict[str, int]:
        """Readings ``received``, ``dropped_out_of_order``, ``dropped_non_finite``, ``resets``;
        image lookups answered by a held reading (``frames_held``) or not at all (``frames_without``)."""
        with self._lock:
            return dict(self._counters)
