"""The drop-oldest queue and its worker (no ROS)."""

from __future__ import annotations

import threading
import time

import pytest

from seqvpr.ros.queue import DropOldestQueue, QueueWorker


def test_queue_drops_the_oldest_when_full():
    queue = DropOldestQueue(3)
    dropped = [queue.put(item) for item in range(7)]
    assert dropped == [False, False, False, True, True, True, True]
    assert (queue.received, queue.dropped, len(queue)) == (7, 4, 3)
    assert [queue.get(0), queue.get(0), queue.get(0)] == [4, 5, 6]
    assert queue.get(0.01) is None


def test_queue_matches_a_list_model():
    """Interleaved puts and gets against a plain-list oracle."""
    capacity = 4
    queue, model, dropped = DropOldestQueue(capacity), [], 0
    script = [("put", 5), ("get", 2), ("put", 9), ("get", 6), ("put", 1), ("get", 1), ("put", 3)]
    counter = 0
    for action, count in script:
        for _ in range(count):
            if action == "put":
                queue.put(counter)
                model.append(counter)
                if len(model) > capacity:
                    model.pop(0)
                    dropped += 1
                counter += 1
            else:
                assert queue.get(0) == (model.pop(0) if model else None)
    assert queue.dropped == dropped
    assert [queue.get(0) for _ in range(len(model))] == model


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_queue_rejects_a_bad_capacity(capacity):
    with pytest.raises(ValueError, match="capacity"):
        DropOldestQueue(capacity)


def test_close_wakes_a_waiting_get():
    queue = DropOldestQueue(2)
    results = []
    thread = threading.Thread(target=lambda: results.append(queue.get(timeout_s=30)))
    thread.start()
    time.sleep(0.05)
    queue.close()
    thread.join(5)
    assert not thread.is_alive() and results == [None]


def test_worker_takes_the_newest_frames_while_busy():
    """While the worker is stuck on frame 0, frames 1..9 arrive; only the newest 3 survive."""
    release, started = threading.Event(), threading.Event()
    processed = []

    def process(item):
        started.set()
        release.wait(10)
        processed.append(item)

    worker = QueueWorker(DropOldestQueue(3), process)
    worker.start()
    worker.queue.put(0)
    assert started.wait(5)
    for item in range(1, 10):
        worker.queue.put(item)
    release.set()
    deadline = time.monotonic() + 5
    while worker.counters()["processed"] < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert processed == [0, 7, 8, 9]
    assert worker.counters() == {"received": 10, "dropped": 6, "processed": 4, "failed": 0, "queued": 0}


def test_worker_survives_a_failing_frame(caplog):
    processed = []

    def process(item):
        if item == 1:
            raise ValueError("corrupt frame")
        processed.append(item)

    worker = QueueWorker(DropOldestQueue(10), process)
    for item in range(3):
        worker.queue.put(item)
    worker.start()
    deadline = time.monotonic() + 5
    while sum(worker.counters()[key] for key in ("processed", "failed")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert processed == [0, 2]
    assert worker.counters()["failed"] == 1
    assert "processing a frame failed" in caplog.text
