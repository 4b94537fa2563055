"""Soak test of the streaming localizer: a simulated drive through ``update()`` with faults.

A synthetic loop route (``seqvpr.localization.simulate``) is driven for ``--minutes`` of
simulated time at ``--rate-hz`` (30 Hz) with descriptors given, and faults injected:

- bursts: 100 frames delivered with stamps 1 ms apart (a driver flushing its queue);
- stalls: 10 s without frames;
- out-of-order stamps (a frame 0.2 s old) and duplicate stamps;
- NaN descriptors and corrupt images (arrays that are not HxWx3 uint8);
- a stamp jump 5 s back (a restarted bag) every ~20 minutes.

It checks that no exception escapes, that the resident memory grows by at most
``--max-rss-growth-mb`` (50) after warm-up, and that keyframe latency stays bounded
(p99 and max printed; ``--max-latency-s`` fails the run), and prints the drop counters,
the accuracy of the fixes against the simulated truth and a JSON line with everything.

    .venv/bin/python tools/soak_localizer.py --minutes 60      # the full hour (by hand)
    .venv/bin/python tools/soak_localizer.py --minutes 10      # the slow test's run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    """Resident set size of this process, MiB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated minutes (default 60)")
    parser.add_argument("--rate-hz", type=float, default=30.0, help="camera rate (default 30)")
    parser.add_argument("--map-frames", type=int, default=5000, help="reference frames, 2 m apart (default 5000)")
    parser.add_argument("--dim", type=int, default=256, help="descriptor dimension (default 256)")
    parser.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    parser.add_argument("--max-latency-s", type=float, default=5.0,
                        help="fail if a keyframe takes longer (default 5; generous for shared machines)")
    parser.add_argument("--threads", type=int, default=1, help="torch/faiss threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import faiss
    import torch

    from seqvpr.localization import StreamingLocalizer
    from seqvpr.localization.simulate import drive, route_map, synthetic_route

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    route = synthetic_route(args.map_frames, args.dim, seed=args.seed)
    with tempfile.TemporaryDirectory() as folder:
        reference_map = route_map(route, Path(folder) / "map")
        stamps, truths, values = drive(route, args.minutes * 60.0, args.rate_hz, seed=args.seed + 1)
        localizer = StreamingLocalizer(reference_map)
        injected = dict.fromkeys(("bursts", "stalls", "out_of_order", "duplicates", "nan", "corrupt", "jumps"), 0)
        latencies, errors = [], []
        warm_rss = None
        started = time.perf_counter()
        index, count = 0, len(stamps)
        offset = 0.0  # stamp shift after simulated restarts
        next_jump = 20 * 60 * args.rate_hz
        while index < count:
            if warm_rss is None and index >= 60 * args.rate_hz:
                warm_rss = rss_mb()
            event = rng.random()
            stamp = stamps[index] + offset
            if event < 0.0005:  # a 10 s stall: skip frames
                injected["stalls"] += 1
                index += int(10 * args.rate_hz)
                continue
            if event < 0.0008 and index + 100 < count:  # a burst of 100 frames 1 ms apart
                injected["bursts"] += 1
                for j in range(100):
                    localizer.update(stamp + 0.001 * j, descriptor=values[index + j])
                index += 100
                continue
            if event < 0.003:
                injected["out_of_order"] += 1
                localizer.update(stamp - 0.2, descriptor=values[index])
            elif event < 0.006:
                injected["duplicates"] += 1
                localizer.update(stamp, descriptor=values[index])
                localizer.update(stamp, descriptor=values[index])
                index += 1
                continue
            elif event < 0.008:
                injected["nan"] += 1
                bad = values[index].copy()
                bad[rng.integers(len(bad))] = np.nan
                localizer.update(stamp, descriptor=bad)
                index += 1
                continue
            elif event < 0.010:
                injected["corrupt"] += 1
                localizer.update(stamp, image=rng.integers(0, 255, size=(7, 5), dtype=np.uint8))
                index += 1
                continue
            if index >= next_jump:
                injected["jumps"] += 1
                offset -= 5.0
                next_jump += 20 * 60 * args.rate_hz
                stamp = stamps[index] + offset
            estimate = localizer.update(stamp, descriptor=values[index])
            if estimate.is_keyframe:
                latencies.append(estimate.latency_s)
                if estimate.has_fix:
                    errors.append(float(np.hypot(*(np.array([estimate.easting, estimate.northing]) - truths[index]))))
            index += 1
        wall = time.perf_counter() - started
        final_rss = rss_mb()
    latencies = np.array(latencies)
    errors = np.array(errors)
    growth = final_rss - (warm_rss or final_rss)
    result = {
        "simulated_minutes": args.minutes, "wall_s": round(wall, 1), "frames": count,
        "counters": localizer.counters, "injected": injected,
        "keyframe_latency_ms": {"p50": float(np.percentile(latencies, 50) * 1e3),
                                "p99": float(np.percentile(latencies, 99) * 1e3),
                                "max": float(latencies.max() * 1e3)},
        "rss_mb": {"after_warmup": round(warm_rss or final_rss, 1), "final": round(final_rss, 1),
                   "growth": round(growth, 1)},
        "fixes": int(errors.size), "wrong_fix_rate": float((errors > 10).mean()) if errors.size else None,
        "median_error_m": float(np.median(errors)) if errors.size else None,
    }
    print(json.dumps(result))
    failures = []
    if growth > args.max_rss_growth_mb:
        failures.append(f"RSS grew {growth:.1f} MB > {args.max_rss_growth_mb} MB")
    if latencies.max() > args.max_latency_s:
        failures.append(f"a keyframe took {latencies.max():.2f} s > {args.max_latency_s} s")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
