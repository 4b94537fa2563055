"""ROS 2 node latency, image in to pose out, beside the localizer alone on the same frames.

Builds the live tests' synthetic world (300 m route, 5 fps, 120x90, the demo's small
encoder: VGG16 conv1 + NetVLAD K=64), runs the ROS 2 node and a player publishing the query
stream at 10 Hz in a private loopback-only network namespace (the live tests' driver), and
measures, for every pose the node publishes, the wall time from the player's ``publish``
to the recorder's callback (Fast DDS over loopback, drop-oldest queue, image conversion,
``StreamingLocalizer.update``, the pose and fix messages). Baseline in the same run: the
``update`` time of exactly the frames that were sent, in this process, through a localizer
warmed up like the node's (``Estimate.latency_s``). Rows for all frames and for keyframes
(the frames that run the encoder and the alignment). Node and baseline run with one torch
thread (``OMP_NUM_THREADS=1``): on 2 cores the player and the recorder need the other.

Usage (root, for ``unshare -n``): python tools/bench/ros_latency.py [--world DIR] [--out DIR]
"""

from __future__ import annotations

import os

# One OpenMP thread everywhere, set before numpy, torch or numba load their thread pools.
os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "ros"))
sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line  # noqa: E402
from ros_env import run_isolated  # noqa: E402
from ros_world import World  # noqa: E402


def _baseline(world: World, indices: list[int]) -> dict[int, tuple[float, bool]]:
    """Frame index -> (update() seconds, is keyframe) for the query frames ``indices``, in-process."""
    import torch

    from seqvpr.data.images import read_rgb
    from seqvpr.data.traverse import read_traverse
    from seqvpr.localization import StreamingLocalizer
    from seqvpr.ros.node_core import warm_up

    torch.set_num_threads(1)
    query = read_traverse(world.query)
    localizer = StreamingLocalizer.from_map(world.map_dir, model=world.model)
    warm_up(localizer)
    images = {index: read_rgb(query.image_path(index)) for index in indices}
    results = {}

    def run() -> None:
        for index in indices:
            estimate = localizer.update(float(query.times_s[index]), image=images[index])
            results[index] = (estimate.latency_s, estimate.is_keyframe)

    # As in the node: warmed up on this thread, run on another. (numba's OpenMP layer sets the
    # OpenMP thread count of the thread that first runs a parallel kernel, torch's included.)
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return results


def _row(name: str, samples_ms: np.ndarray, baseline_ms: np.ndarray) -> str:
    median, p95 = np.median(samples_ms), np.percentile(samples_ms, 95)
    base_median, base_p95 = np.median(baseline_ms), np.percentile(baseline_ms, 95)
    return (f"| {name} | {len(samples_ms)} | {median:.1f} | {p95:.1f} | {base_median:.1f} | {base_p95:.1f} | "
            f"{median / base_median:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, help="an already built test world (default: build one)")
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    out = args.out or Path(tempfile.mkdtemp(prefix="seqvpr_ros_latency_"))
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    root = args.world or out / "world"
    if args.world is None:
        subprocess.run([sys.executable, str(REPO / "tests" / "ros" / "ros_world.py"), str(root)], env=env,
                       check=True, capture_output=True)
    world = World(root, root / "map", root / "model" / "encoder.pt", root / "query")
    live = out / "live"
    live.mkdir(exist_ok=True)
    result = run_isolated(REPO / "tests" / "ros" / "live_driver.py",
                          ["--ros", "2", "--world", str(root), "--out", str(live)], timeout_s=600)
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    report = json.loads((live / "report.json").read_text())
    sent = {(int(sec), int(nanosec)): (int(index), float(wall)) for index, sec, nanosec, wall in report["slow_log"]}
    baseline = _baseline(world, sorted(index for index, _ in sent.values()))
    rows = {"all": ([], []), "keyframes": ([], [])}
    for pose in report["poses"]:
        key = tuple(pose["stamp"])
        if key not in sent:
            continue
        update_s, is_keyframe = baseline[sent[key][0]]
        sample = 1e3 * (pose["wall"] - sent[key][1]), 1e3 * update_s
        for name in ("all", "keyframes") if is_keyframe else ("all",):
            rows[name][0].append(sample[0])
            rows[name][1].append(sample[1])
    print("| frames | poses | ROS 2 median ms | ROS 2 p95 ms | update() median ms | update() p95 ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, (node_ms, update_ms) in rows.items():
        print(_row(name, np.array(node_ms), np.array(update_ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
