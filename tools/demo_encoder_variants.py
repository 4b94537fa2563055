"""Compare untrained encoder configurations on a demo world (docs/demo.md, "why this one").

Each variant is a NetVLADEncoder with random VGG16 weights (seed 0) cut after some block,
NetVLAD clusters by k-means on reference images and optional PCA-whitening, evaluated
with `seqvpr.evaluation.localize_pairs` on the world's test pairs.

Usage (after `seqvpr demo --out demo-output`, which renders the world and builds pairs):
    python tools/demo_encoder_variants.py demo-output [--init-images 150]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from seqvpr.data.images import read_rgb
from seqvpr.data.traverse import find_traverses
from seqvpr.evaluation import EvaluationConfig, accuracy_rows, localize_pairs
from seqvpr.vpr.encoder import EncoderConfig, NetVLADEncoder, images_to_tensor

VARIANTS = {
    # name: (VGG16 blocks, clusters, width, height, PCA dimension or None)
    "conv3_3 K=16 (small preset) + PCA 128": (3, 16, 120, 90, 128),
    "conv2_2 K=32 + PCA 128": (2, 32, 120, 90, 128),
    "conv1_2 K=16": (1, 16, 120, 90, None),
    "conv1_2 K=32": (1, 32, 120, 90, None),
    "conv1_2 K=32, 160x120": (1, 32, 160, 120, None),
    "conv1_2 K=64 (the demo)": (1, 64, 120, 90, None),
}


def build(spec, images, seed=0) -> NetVLADEncoder:
    blocks, clusters, width, height, pca = spec
    torch.manual_seed(seed)
    encoder = NetVLADEncoder(EncoderConfig(backbone_blocks=blocks, num_clusters=clusters,
                                           image_width=width, image_height=height)).eval()
    batches = [images_to_tensor(images[i : i + 16], encoder.config) for i in range(0, len(images), 16)]
    encoder.initialize_clusters(batches, seed=seed)
    if pca:
        encoder.fit_pca(batches, pca)
    return encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo_output", type=Path, help="the --out folder of a seqvpr demo run")
    parser.add_argument("--init-images", type=int, default=150, help="reference images for k-means/PCA")
    args = parser.parse_args()
    prepared, pairs = args.demo_output / "prepared", sorted((args.demo_output / "pairs").glob("test_*.csv"))
    reference = min(find_traverses(prepared, check_images=False), key=lambda traverse: traverse.name)
    picks = np.linspace(0, len(reference) - 1, args.init_images).round().astype(int)
    images = [read_rgb(reference.image_path(index)) for index in picks]
    print("| untrained encoder | Base (D) @10 m | Base (G) @10 m | Indep @10 m |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:
        for name, spec in VARIANTS.items():
            results = localize_pairs(pairs, prepared, {name: build(spec, images)}, Path(cache), EvaluationConfig(),
                               progress=False)
            rows = {row["alignment"]: row["acc@10m"] for row in accuracy_rows(results, "max")
                    if row["condition"] == "all"}
            print(f"| {name} | {rows['dtw']:.1f} | {rows['gdtw']:.1f} | {rows['independent']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
