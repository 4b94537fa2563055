"""Fine-tuning step time and peak memory, with and without the frozen-feature cache.

One optimiser step of ``seqvpr finetune`` (DecDTW max squared position error, Adam): the
frozen layers' output for every image of a batch of 8 pairs of 25 reference + 10 query
frames (280 images, read from PNG files), the trainable layers forward and backward, the
DecDTW layer, the Adam update. Two ways to get the frozen layers' output:

- ``cached``: read from the float16 cache that ``seqvpr finetune`` builds once per image;
- ``uncached``: read and resize each image, run the frozen layers (no grad), every step.

Encoders:

- ``demo``: the demo's encoder (VGG16 conv1 block + NetVLAD 64 clusters, 120x90 input),
  conv1_2 + NetVLAD trained (config/finetune-cpu.yaml);
- ``small``: the ``small`` preset (VGG16 to conv3_3, 16 clusters, 120x90), conv3_1.. trained;
- ``full``: the paper's NetVLAD-VGG16 (to conv5_3, 64 clusters, 32768-d, 240x180),
  conv5_1..conv5_3 + NetVLAD trained, as in the paper.

Prints median wall and process CPU seconds per step over ``--steps`` steps (after one
warm-up step; on a shared machine the CPU time is the steadier), the uncached/cached
ratios, the peak resident memory the first step adds (CPU) or the peak CUDA memory, and
the one-off cost of building the cache.

    python tools/bench/train.py [--configs demo small full] [--steps 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from seqvpr.data.images import write_png
from seqvpr.data.pairs import SequencePair
from seqvpr.train.finetune import FinetuneConfig, PairBatch, SequenceLoss
from seqvpr.train.frozen import FrozenFeatures, split_encoder
from seqvpr.vpr.encoder import PRESETS, EncoderConfig, NetVLADEncoder

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, peak_extra_memory_mb  # noqa: E402

CONFIGS = {
    "demo": (EncoderConfig(backbone_blocks=1, num_clusters=64, image_width=120, image_height=90), "conv1_2"),
    "small": (PRESETS["small"], "conv3_1"),
    "full": (PRESETS["netvlad-vgg16"], "conv5_1"),
}
PAIRS, REFERENCE_FRAMES, QUERY_FRAMES = 8, 25, 10


def _pairs(folder: Path, width: int, height: int) -> list[SequencePair]:
    """8 pairs with their own images (280 PNGs of smooth random colour fields)."""
    generator = np.random.default_rng(0)
    pairs = []
    for index in range(PAIRS):
        names = {}
        for kind, count in (("reference", REFERENCE_FRAMES), ("query", QUERY_FRAMES)):
            names[kind] = np.array([f"{kind}{index}_{frame}.png" for frame in range(count)], dtype=object)
            for name in names[kind]:
                coarse = generator.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
                image = np.kron(coarse, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
                write_png(folder / "traverse" / name, np.ascontiguousarray(image))
        reference_times = np.arange(REFERENCE_FRAMES, dtype=np.float64)
        reference_positions = np.stack([5.0 * reference_times, np.zeros(REFERENCE_FRAMES)], axis=1)
        query_times = np.arange(QUERY_FRAMES, dtype=np.float64)
        true_warp = 6.0 + 1.2 * query_times
        true_positions = np.stack([5.0 * true_warp, np.zeros(QUERY_FRAMES)], axis=1)
        pairs.append(SequencePair(
            "traverse", "traverse", "sunny", "sunny", "30U", 0.0, 0.0, names["reference"], reference_times,
            reference_positions, np.zeros(REFERENCE_FRAMES), names["query"], query_times, true_positions + 1.0,
            np.zeros(QUERY_FRAMES), true_warp, true_positions, 1.0,
        ))
    return pairs


def _peak_memory_mb(function, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        function()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    return peak_extra_memory_mb(function)


def bench(name: str, steps: int, device: torch.device, folder: Path) -> list[str]:
    encoder_config, trainable_from = CONFIGS[name]
    torch.manual_seed(0)
    encoder = NetVLADEncoder(encoder_config).to(device)
    frozen, trainable = split_encoder(encoder, trainable_from)
    pairs = _pairs(folder / name, encoder_config.image_width, encoder_config.image_height)
    batch = PairBatch.build(pairs, folder / name, device)
    criterion = SequenceLoss(FinetuneConfig())
    optimizer = torch.optim.Adam(trainable.parameters(), lr=1e-4)
    torch.set_flush_denormal(True)
    started = time.perf_counter()
    cached = FrozenFeatures(frozen, folder / name / "cache", device)
    cached.prepare(batch.images)
    build_s = time.perf_counter() - started
    rows = []
    results = {}
    for label, features in (("cached", cached), ("uncached", FrozenFeatures(frozen, None, device))):
        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            criterion(batch, trainable(features(batch.images))).backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        def timed() -> None:
            begin, cpu = time.perf_counter(), time.process_time()
            step()
            walls.append(time.perf_counter() - begin)
            cpus.append(time.process_time() - cpu)

        walls: list[float] = []
        cpus: list[float] = []
        memory = _peak_memory_mb(timed, device)  # the first (warm-up) step
        if steps:
            walls.clear()
            cpus.clear()
        for _ in range(steps):
            timed()
        results[label] = (statistics.median(walls), statistics.median(cpus))
        rows.append(f"| {name} | {label} | {results[label][0]:.2f} | {results[label][1]:.2f} | {memory:.0f} |")
    ratios = [results["uncached"][k] / results["cached"][k] for k in (0, 1)]
    rows.append(f"| {name} | uncached / cached | {ratios[0]:.1f}x | {ratios[1]:.1f}x | "
                f"cache built once: {build_s:.1f} s for {len(batch.images)} images |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=3,
                        help="timed steps per variant after one warm-up step (0: time the warm-up step)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(machine_line())
    print("| encoder | frozen features | wall s / step | CPU s / step | peak extra memory (MB) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.configs:
            for row in bench(name, args.steps, torch.device(args.device), Path(folder)):
                print(row, flush=True)


if __name__ == "__main__":
    main()
