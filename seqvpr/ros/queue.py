"""A drop-oldest bounded queue and the worker thread that drains it.

A camera callback must never block: when frames arrive faster than the localizer runs,
the oldest waiting frame is dropped so that the worker always takes the newest ones
(the freshest pose is what a robot wants). Counters say how many frames were received,
dropped, processed and failed. No ROS import here; the nodes feed it messages.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["DropOldestQueue", "QueueWorker"]

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """A thread-safe FIFO of at most ``capacity`` items that drops its oldest item when full.

    Args:
        capacity: most items held at once (>= 1).
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"queue capacity must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self._items: collections.deque[T] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Adds ``item`` without blocking; returns True when the oldest item was dropped for it."""
        with self._ready:
            self.received += 1
            dropped = len(self._items) == self.capacity
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._ready.notify()
        return dropped

    def get(self, timeout_s: float | None = None) -> T | None:
        """The oldest waiting item; None when the queue is closed or ``timeout_s`` passed."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._items or self._closed, timeout=timeout_s):
                return None
            if self._items:
                return self._items.popleft()
            return None

    def close(self) -> None:
        """Wakes every waiting ``get``; items still queued are discarded."""
        with self._ready:
            self._closed = True
            self._items.clear()
            self._ready.notify_all()

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)


class QueueWorker(Generic[T]):
    """A daemon thread that hands each queued item to ``process``, one at a time.

    An exception from ``process`` is logged and counted in ``failed``; the worker keeps
    running, so one bad frame never stops a node.

    Args:
        queue: the queue to drain.
        process: called with each item, on the worker thread.
        name: thread name.
    """

    def __init__(self, queue: DropOldestQueue[T], process: Callable[[T], None], name: str = "seqvpr-worker") -> None:
        self.queue = queue
        self._process = process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._lock = threading.Lock()
        self.processed = 0
        self.failed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Closes the queue and waits up to ``timeout_s`` for the item in progress to finish."""
        self._stop.set()
        self.queue.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def counters(self) -> dict[str, int]:
        """``received``, ``dropped``, ``processed``, ``failed`` and ``queued`` frames so far."""
        with self._lock:
            processed, failed = self.processed, self.failed
        return {
            "received": self.queue.received,
            "dropped": self.queue.dropped,
            "processed": processed,
            "failed": failed,
            "queued": len(self.queue),
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.queue.get(timeout_s=0.5)
            if item is None:
                continue
            try:
                self._process(item)
            except Exception:  # noqa: BLE001 - a node must survive one bad frame; the error is logged
                LOGGER.exception("processing a frame failed")
                with self._lock:
                    self.failed += 1
            else:
                with self._lock:
                    self.processed += 1
