"""Per-keyframe latency of the streaming localizer, beside baselines measured in the same run.

Rows (a simulated drive at 30 Hz along a synthetic loop route whose map holds N frames 2 m
apart; keyframes every second; p50/p99 over the keyframes after a warm-up):

- ``descriptor given``: ``update(stamp, descriptor=...)``. Baseline: the same localizer
  with the windows aligned by ``gdtw`` on the full D-dimensional descriptors (padded
  (R W, L, D) batch) instead of the DP kernel fed the map's exact inner products
  (``subsequence_gdtw``).
- ``odometry given`` rows: the same drive with its travelled distance as odometry and
  ``query_spacing_m = 8`` (keyframes every 8 m, aligned on distance, one speed ratio);
  baseline the localizer on time (the first row's figures).
- ``IVF`` rows: the map's faiss index is IVF (maps beyond ``exact_max_frames``); baseline
  the same map with an exact index.
- ``index of d-d projections`` rows (maps whose index holds the descriptors projected onto
  their first d principal directions, shortlists re-ranked on the whole descriptors;
  ``MapConfig.proposal_dim``, default 256, ``--proposal-dim``): baseline the same map with
  an index of the whole descriptors (``--proposal-dim 0``).
- ``keyframe products`` rows: the localizer as it is (maps of at least
  ``CACHED_PRODUCTS_MIN_DIM`` dimensions keep each keyframe's inner products between
  alignments); baseline the other choice (cache off, or forced on below that size).
- ``neighbour search`` rows: ``Map.neighbours`` of one keyframe (searches of one or two
  queries in a flat index run on one faiss thread); baseline the same searches on faiss's
  thread count (for IVF the two are the same code).
- ``image given``: ``update(stamp, image=...)`` with the small encoder (``small`` preset,
  120x90 input) and with full NetVLAD-VGG16 (240x180, 32768-d); baseline the encoder's
  forward pass alone on one image, and the same localizer with its keyframe products
  multiplied afresh. Maps of random descriptors of the encoder's dimension.
- map loading: ``load_map`` + opening its index, for each map size.

Usage: python tools/bench/stream.py [--sizes 10000 100000] [--dim 4096] [--threads 2] [--config FILE]
       [--proposal-dim D]

``--config`` takes localizer settings (the keys of config/localization.yaml); default the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line  # noqa: E402

import seqvpr.localization.streaming as streaming  # noqa: E402
from seqvpr.align import GDTWConfig, Signal, gdtw  # noqa: E402
from seqvpr.config import load_config  # noqa: E402
from seqvpr.localization import LocalizerConfig, MapConfig, MapPart, StreamingLocalizer, load_map, write_map  # noqa: E402
from seqvpr.localization.proposal import Alignment, _rows_at_least  # noqa: E402
from seqvpr.localization.simulate import drive, route_map, synthetic_route  # noqa: E402

CONFIG = LocalizerConfig()
PROPOSAL_DIM: int | None = MapConfig().proposal_dim
ODOMETRY_SPACING_M = 8.0


def full_dimensional_align(reference_map, windows, query_times, query_values, config, path_unit_m=None,
                           speed_ratios=(1.0,), inner_products=None) -> Alignment:
    """The baseline: GDTW on the padded (R W, L, D) batch of full descriptors (on time; no cached products)."""
    if path_unit_m is not None:
        raise NotImplementedError("the full-D baseline aligns on time only")
    span = float(query_times[-1] - query_times[0])
    items = [(ratio, window) for ratio in speed_ratios for window in windows]
    slices = [_rows_at_least(reference_map, w, ratio * span) for ratio, w in items]
    lengths = np.array([s.stop - s.start for s in slices])
    size = int(lengths.max())
    values = np.zeros((len(items), size, reference_map.dim), dtype=np.float32)
    times = np.zeros((len(items), size))
    origins = np.array([reference_map.times[s.start] for s in slices])
    for i, rows in enumerate(slices):
        values[i, : lengths[i]] = reference_map.descriptors[rows]
        local = np.asarray(reference_map.times[rows]) - origins[i]
        times[i, : lengths[i]] = local
        times[i, lengths[i]:] = local[-1] + np.arange(1, size - lengths[i] + 1)
    reference = Signal(torch.from_numpy(times), torch.from_numpy(values), torch.from_numpy(lengths))
    query = Signal(torch.from_numpy(np.tile(query_times - query_times[0], (len(items), 1))),
                   torch.from_numpy(np.ascontiguousarray(query_values, dtype=np.float32)).expand(len(items), -1, -1))
    slopes = torch.tensor([ratio for ratio, _ in items], dtype=torch.float64)
    result = gdtw(reference, query, GDTWConfig(subsequence=True, lam=config.lam, grid_size=config.grid_size,
                                               refinements=config.refinements, expected_slope=slopes))
    warp = result.warp.numpy()
    return Alignment([w for _, w in items], result.cost.numpy(), warp[:, -1] + origins, warp[:, 0] + origins)


def keyframe_latencies(localizer, stamps, values=None, image=None, warmup_s=20.0, odometry=None) -> np.ndarray:
    latencies = []
    for i, stamp in enumerate(stamps):
        if values is not None:
            estimate = localizer.update(stamp, descriptor=values[i], odometry=None if odometry is None else odometry[i])
        else:
            estimate = localizer.update(stamp, image=image)
        if estimate.is_keyframe and stamp - stamps[0] >= warmup_s:
            latencies.append(estimate.latency_s)
    return 1e3 * np.array(latencies)


def row(name, ours, baseline, baseline_name):
    ratio = np.percentile(baseline, 50) / np.percentile(ours, 50)
    print(f"| {name} | {np.percentile(ours, 50):.2f} | {np.percentile(ours, 99):.2f} | "
          f"{baseline_name}: {np.percentile(baseline, 50):.2f} / {np.percentile(baseline, 99):.2f} | {ratio:.2f}x |",
          flush=True)


def descriptor_rows(sizes, dim, seconds, folder: Path) -> None:
    for size in sizes:
        route = synthetic_route(size, dim)
        stamps, positions, values = drive(route, seconds, 30.0)
        travelled = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(positions, axis=0), axis=1))])
        started = time.perf_counter()
        kind = "flat" if size <= 10_000 else "ivf"
        options = {"exact_max_frames": 10_000, "large_index": "ivf"} if kind == "ivf" else {}
        route_map(route, folder / f"map{size}", proposal_dim=PROPOSAL_DIM, **options)
        built = time.perf_counter() - started
        started = time.perf_counter()
        reference_map = load_map(folder / f"map{size}")
        reference_map.index  # noqa: B018 - opening the index is part of loading
        loaded = time.perf_counter() - started
        print(f"| map of {size} frames, D={dim}: built in {built:.1f} s, loaded in {1e3 * loaded:.1f} ms "
              f"({reference_map.index_kind}) | | | | |", flush=True)
        ours = keyframe_latencies(StreamingLocalizer(reference_map, CONFIG), stamps, values)
        on_distance = dataclasses.replace(CONFIG, query_spacing_m=ODOMETRY_SPACING_M)
        row(f"{size} frames, {kind}, descriptor and odometry given (keyframes every {ODOMETRY_SPACING_M:g} m, "
            "aligned on distance)", keyframe_latencies(StreamingLocalizer(reference_map, on_distance), stamps, values,
                                                       odometry=travelled),
            ours, "the same on time")
        if reference_map.projection is not None:
            route_map(route, folder / f"whole{size}", proposal_dim=None, **options)
            whole = keyframe_latencies(StreamingLocalizer(load_map(folder / f"whole{size}"), CONFIG), stamps, values)
            row(f"{size} frames, {kind}, index of {reference_map.projection.shape[1]}-d projections, descriptor "
                "given", ours, whole, "index of whole descriptors")
        search_row(reference_map, values, f"{size} frames, {kind}")
        cached = reference_map.dim >= streaming.CACHED_PRODUCTS_MIN_DIM
        threshold = streaming.CACHED_PRODUCTS_MIN_DIM
        streaming.CACHED_PRODUCTS_MIN_DIM = 10**9 if cached else 1  # the other choice
        try:
            other = keyframe_latencies(StreamingLocalizer(reference_map, CONFIG), stamps, values)
        finally:
            streaming.CACHED_PRODUCTS_MIN_DIM = threshold
        row(f"{size} frames, {kind}, D={dim}, keyframe products {'cached' if cached else 'multiplied afresh'}, "
            "descriptor given", ours, other, f"products {'multiplied afresh' if cached else 'cached'}")
        if kind == "flat":
            original = streaming.align_windows
            streaming.align_windows = full_dimensional_align
            try:
                baseline = keyframe_latencies(StreamingLocalizer(reference_map, CONFIG), stamps, values)
            finally:
                streaming.align_windows = original
            row(f"{size} frames, flat, descriptor given", ours, baseline, "full-D GDTW")
        else:
            route_map(route, folder / f"flat{size}", exact_max_frames=size)
            baseline = keyframe_latencies(StreamingLocalizer(load_map(folder / f"flat{size}"), CONFIG), stamps, values)
            row(f"{size} frames, IVF (nprobe 16), descriptor given", ours, baseline, "exact index")


def search_row(reference_map, values, name, count=200) -> None:
    """``Map.neighbours`` of one keyframe at a time (a flat index on one faiss thread, an IVF
    index on faiss's) against the same searches on faiss's own thread count."""
    import faiss

    import seqvpr.localization.map as map_module

    queries = values[:: max(1, len(values) // count)][:count]

    def timed() -> np.ndarray:
        latencies = []
        for query in queries:
            started = time.perf_counter()
            reference_map.neighbours(query[None], CONFIG.top_k)
            latencies.append(1e3 * (time.perf_counter() - started))
        return np.array(latencies)

    ours = timed()
    single, map_module.SINGLE_THREAD_QUERIES = map_module.SINGLE_THREAD_QUERIES, 0
    try:
        baseline = timed()
    finally:
        map_module.SINGLE_THREAD_QUERIES = single
    mode = "on one faiss thread" if reference_map.index_kind == "flat" else "on faiss's threads (IVF)"
    row(f"{name}, neighbour search of one keyframe {mode}", ours, baseline,
        f"on {faiss.omp_get_max_threads()} faiss threads")


def image_rows(presets, frames, seconds, folder: Path) -> None:
    from seqvpr.extraction import encoder_fingerprint
    from seqvpr.vpr import PRESETS, NetVLADEncoder, images_to_tensor

    for preset in presets:
        torch.manual_seed(0)
        encoder = NetVLADEncoder(PRESETS[preset]).eval()
        dim = encoder.output_dim
        rng = np.random.default_rng(0)
        part = MapPart("r", "x", np.arange(frames) * 0.2, np.stack([np.arange(frames) * 2.0, np.zeros(frames)], 1),
                       np.zeros(frames), rng.normal(size=(frames, dim)).astype(np.float32))
        reference_map = write_map(folder / f"image_{preset}", [part], zone="30U",
                                  fingerprint=encoder_fingerprint(encoder), encoder=encoder.config.to_dict())
        config = encoder.config
        image = rng.integers(0, 255, size=(config.image_height, config.image_width, 3), dtype=np.uint8)
        localizer = StreamingLocalizer(reference_map, CONFIG, encoder=encoder)
        stamps = 1000.0 + np.arange(int(seconds * 30)) / 30.0
        ours = keyframe_latencies(localizer, stamps, image=image, warmup_s=5.0)
        baseline = []
        with torch.inference_mode():
            for _ in range(max(5, len(ours))):
                started = time.perf_counter()
                encoder(images_to_tensor([image], config))
                baseline.append(1e3 * (time.perf_counter() - started))
        row(f"{preset} encoder ({config.image_width}x{config.image_height}, {dim}-d), image given, "
            f"{frames}-frame map", ours, np.array(baseline), "encoder alone")
        threshold, streaming.CACHED_PRODUCTS_MIN_DIM = streaming.CACHED_PRODUCTS_MIN_DIM, 10**9
        try:
            afresh = keyframe_latencies(StreamingLocalizer(reference_map, CONFIG, encoder=encoder), stamps,
                                        image=image, warmup_s=5.0)
        finally:
            streaming.CACHED_PRODUCTS_MIN_DIM = threshold
        row(f"{preset} encoder, keyframe products cached", ours, afresh, "products multiplied afresh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=120.0, help="simulated drive per row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="*", default=["small", "netvlad-vgg16"])
    parser.add_argument("--image-map-frames", type=int, default=2000)
    parser.add_argument("--config", type=Path, help="localizer settings YAML (default: the defaults)")
    parser.add_argument("--proposal-dim", type=int, default=MapConfig().proposal_dim,
                        help="maps index their descriptors projected onto this many principal directions "
                             f"(MapConfig.proposal_dim; default {MapConfig().proposal_dim}; 0: whole descriptors)")
    args = parser.parse_args()
    global CONFIG, PROPOSAL_DIM
    CONFIG = load_config(args.config, LocalizerConfig) if args.config else LocalizerConfig()
    PROPOSAL_DIM = args.proposal_dim or None
    import faiss

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    print(machine_line())
    print(f"localizer: query_length {CONFIG.query_length}, global_every {CONFIG.global_every}, "
          f"speed_ratios {list(CONFIG.speed_ratios)}, top_k {CONFIG.top_k}, max_windows {CONFIG.max_windows}")
    print("| case | p50 (ms) | p99 (ms) | baseline p50 / p99 (ms) | baseline p50 / ours p50 |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        descriptor_rows(args.sizes, args.dim, args.seconds, Path(folder))
        image_rows(args.presets, args.image_map_frames, min(args.seconds, 60.0), Path(folder))


if __name__ == "__main__":
    main()
