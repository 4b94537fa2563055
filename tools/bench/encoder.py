"""Encoder throughput and retrieval latency against in-run baselines (docs/encoder.md, docs/benchmarks.md).

Encoder rows: images/s of seqvpr's NetVLAD-VGG16 encoder (full at 240x180, batch 1 and 16;
the small configuration) beside, in the same run on the same input, torchvision's
``vgg16().features[:-2]`` alone (the backbone floor) and a loop-based NetVLAD pooling as the
published repositories write it (per-cluster residual loop).

Retrieval rows: latency of a batch of 10 queries (one query sequence), top-10, over N
references of dimension 4096 (unit-norm, clustered synthetic descriptors), for exact faiss
inner product and IVF-PQ, beside numpy brute force (matmul + argpartition) in the same run;
IVF-PQ recall@10 = fraction of queries whose exact nearest neighbour is in its top 10.
Synthetic references: one of 1000 place centres + a 64-d appearance variation + isotropic
noise; a query is a reference plus noise (a revisit of that place).
References are generated and searched in chunks of 100k rows, so that N = 1M (16 GB as
float32) does not have to be resident: the exact and numpy figures for N > 100k are sums of
per-chunk searches plus the merge; IVF-PQ holds all N (64 bytes per reference).

Usage: python tools/bench/encoder.py [--sizes 10000 100000 1000000] [--skip-encoder]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, median_time_ms  # noqa: E402

from seqvpr.vpr import PRESETS, IndexConfig, NetVLADEncoder, ReferenceIndex  # noqa: E402

DIM = 4096
CHUNK = 100_000
QUERIES = 10
TOP_K = 10


def loop_netvlad(features: torch.Tensor, assignment: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """NetVLAD as pytorch-NetVlad / gmberton write it: one residual tensor per cluster."""
    batch, channels = features.shape[:2]
    local = F.normalize(features, dim=1)
    soft = F.softmax(F.conv2d(local, assignment).view(batch, -1, local[0, 0].numel()), dim=1)
    flat = local.view(batch, channels, -1)
    vlad = torch.stack(
        [((flat - centroids[k].view(1, channels, 1)) * soft[:, k : k + 1]).sum(-1) for k in range(len(centroids))],
        dim=1,
    )
    return F.normalize(F.normalize(vlad, dim=2).flatten(1), dim=1)


def encoder_rows(repeats: int) -> None:
    print("| encoder | input | batch | seqvpr (img/s) | torchvision backbone alone (img/s) | "
          "NetVLAD pooling: seqvpr / loop baseline (ms per batch) |")
    print("|---|---|---|---|---|---|")
    for preset, batch in (("netvlad-vgg16", 1), ("netvlad-vgg16", 16), ("small", 1), ("small", 16)):
        torch.manual_seed(0)
        encoder = NetVLADEncoder(PRESETS[preset]).eval()
        config = encoder.config
        images = torch.rand(batch, 3, config.image_height, config.image_width)
        with torch.inference_mode():
            features = encoder.local_features(images)
            ours = median_time_ms(lambda: encoder(images), repeats, warmup=1)
            backbone = median_time_ms(lambda: encoder.backbone(images), repeats, warmup=1)
            pool = median_time_ms(lambda: encoder.netvlad(features), repeats * 3, warmup=1)
            weight, centroids = encoder.netvlad.conv.weight, encoder.netvlad.centroids
            loop = median_time_ms(lambda: loop_netvlad(features, weight, centroids), repeats * 3, warmup=1)
            same = torch.allclose(encoder.netvlad(features), loop_netvlad(features, weight, centroids), atol=1e-5)
        print(f"| {preset} ({config.output_dim}-d) | {config.image_width}x{config.image_height} | {batch} | "
              f"{1e3 * batch / ours:.2f} | {1e3 * batch / backbone:.2f} | {pool:.1f} / {loop:.1f} |"
              + ("" if same else " MISMATCH"))


def synthetic_chunk(index: int, centres: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """100k unit-norm references (seeded by chunk index): one of 1000 place centres, plus a
    64-d latent variation (appearance), plus isotropic noise of 0.3 of the centre's norm."""
    rng = np.random.default_rng(1000 + index)
    labels = rng.integers(0, len(centres), CHUNK)
    chunk = rng.standard_normal((CHUNK, DIM), dtype=np.float32)
    chunk *= np.float32(0.3 / np.sqrt(DIM))
    chunk += centres[labels]
    chunk += rng.standard_normal((CHUNK, len(basis)), dtype=np.float32) @ basis
    chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
    return chunk


def numpy_top_k(references: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ references.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1)
    return np.take_along_axis(top_scores, order, axis=1), np.take_along_axis(top, order, axis=1)


def merge(results: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.concatenate([r[0] for r in results], axis=1)
    indices = np.concatenate([r[1] for r in results], axis=1)
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


def retrieval_row(size: int, nlist: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    centres = (rng.standard_normal((1000, DIM)) / np.sqrt(DIM)).astype(np.float32)
    basis = (rng.standard_normal((64, DIM)) / np.sqrt(DIM)).astype(np.float32)
    chunks = max(1, size // CHUNK)
    rows = min(size, CHUNK)
    ivfpq = ReferenceIndex.empty(DIM, IndexConfig(kind="ivfpq", nlist=nlist, nprobe=16, pq_subquantizers=64,
                                                  device="cpu"))
    exact_ms = numpy_ms = build_s = 0.0
    exact_parts, numpy_parts = [], []
    queries = None
    for index in range(chunks):
        references = synthetic_chunk(index, centres, basis)[:rows]
        if queries is None:
            picks = rng.choice(rows, QUERIES, replace=False)
            noise = rng.standard_normal((QUERIES, DIM)) * (0.3 / np.sqrt(DIM))
            queries = (references[picks] + noise).astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            start = time.perf_counter()
            ivfpq.train(references, seed=0)
            build_s += time.perf_counter() - start
        flat = ReferenceIndex.build(references, IndexConfig(device="cpu"))
        exact_ms += median_time_ms(lambda: flat.search(queries, TOP_K), repeats, warmup=1)
        numpy_ms += median_time_ms(lambda: numpy_top_k(references, queries, TOP_K), repeats, warmup=1)
        part = flat.search(queries, TOP_K)
        exact_parts.append((part.scores, part.indices + index * rows))
        brute = numpy_top_k(references, queries, TOP_K)
        numpy_parts.append((brute[0], brute[1] + index * rows))
        start = time.perf_counter()
        ivfpq.add(references)
        build_s += time.perf_counter() - start
        del references, flat
    start = time.perf_counter()
    exact = merge(exact_parts, TOP_K)
    brute = merge(numpy_parts, TOP_K)
    merge_ms = 1e3 * (time.perf_counter() - start) / 2
    approximate_ms = median_time_ms(lambda: ivfpq.search(queries, TOP_K), repeats, warmup=1)
    found = ivfpq.search(queries, TOP_K).indices
    recall = np.mean([truth in row for truth, row in zip(exact[1][:, 0], found)])
    agree = np.array_equal(exact[1][:, 0], brute[1][:, 0])
    resident = "" if chunks == 1 else f" ({chunks} chunks)"
    print(f"| {size:,}{resident} | {exact_ms + merge_ms:.1f} | {approximate_ms:.2f} | {recall:.2f} | "
          f"{numpy_ms + merge_ms:.1f} | {(numpy_ms + merge_ms) / (exact_ms + merge_ms):.1f}x | "
          f"{(numpy_ms + merge_ms) / approximate_ms:.0f}x | {nlist} | {build_s:.0f} |"
          + ("" if agree else " TOP-1 MISMATCH"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                        help="reference counts for the retrieval rows (none: skip them)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-encoder", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine_line()}")
    if not args.skip_encoder:
        encoder_rows(args.repeats)
        print()
    if not args.sizes:
        return
    print(f"retrieval: {QUERIES} queries, top-{TOP_K}, D={DIM}, float32, IVF-PQ m=64 (64 B/vector), nprobe=16")
    print("| references | faiss exact (ms) | faiss IVF-PQ (ms) | IVF-PQ recall@10 | numpy brute force (ms) | "
          "exact speed-up | IVF-PQ speed-up | nlist | IVF-PQ train+add (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        nlist = {10_000: 64, 100_000: 256}.get(size, 512)
        retrieval_row(size, nlist, args.repeats)


if __name__ == "__main__":
    main()
