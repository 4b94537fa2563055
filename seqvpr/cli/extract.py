"""``seqvpr extract``: images of a traverse → a NetVLAD descriptors file (resumable)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seqvpr.cli.argtypes import positive_int

NAME = "extract"
HELP = "compute NetVLAD-VGG16 descriptors of a traverse or a folder of images (batched, resumable)"
DESCRIPTION = """\
Compute one global descriptor per image and write them, with the image times, to an .npz
descriptors file (arrays `times` (N,) seconds and `values` (N, D), so `seqvpr align` can
read it directly; see docs/encoder.md for every array).

Input: a traverse folder in seqvpr's format (with traverse.csv, see docs/data.md: image
paths, times and UTM positions are taken from it and positions are written alongside), or a
plain folder of images (.png .jpg .jpeg .bmp .ppm .tif .tiff, not recursive) whose times
come from the file names: integer names are RobotCar-style microseconds (`<ts_us>.png`),
decimal names are seconds, anything else gets the frame index (--timestamps to force one).

Encoder: --model loads a seqvpr checkpoint or a published NetVLAD checkpoint (pytorch-
NetVlad, Patch-NetVLAD, gmberton/DecDTW, DecDTW Lightning, OpenIBL; detected from its keys)
or the MATLAB NetVLAD release exported as a struct .mat.
Without --model, --preset builds the architecture, loads the VGG16 backbone
(--backbone-weights: imagenet = torchvision's file, downloaded once or given as a path;
random for tests) and initialises the NetVLAD clusters by k-means on the input images;
--save-model keeps that encoder, so that other traverses can be described with the same one.

Options come from --config FILE (YAML, see config/extract.yaml) and the flags below, which
win. Work is saved in chunks next to the output (<out>.partial/); rerunning the same command
after an interruption resumes there. The output is written atomically at the end.
Unreadable images stop the run with their names, or with --skip-bad are left out and
listed in the file's `skipped` array.
"""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", type=Path, help="traverse folder (with traverse.csv) or folder of images")
    parser.add_argument("--out", type=Path, required=True, help="output descriptors file (.npz)")
    parser.add_argument("--config", type=Path, default=None,
                        help="options from a YAML file (see config/extract.yaml); flags win")
    encoder = parser.add_argument_group("encoder")
    choice = encoder.add_mutually_exclusive_group()
    choice.add_argument("--model", type=Path, help="seqvpr or published NetVLAD checkpoint")
    choice.add_argument(
        "--preset", choices=("netvlad-vgg16", "small"), default=None,
        help="architecture when there is no --model (default netvlad-vgg16)",
    )
    encoder.add_argument(
        "--backbone-weights", default=None, metavar="imagenet|random|PATH",
        help="VGG16 weights for --preset: imagenet (torchvision, needs internet once), "
        "random, or a torchvision vgg16 .pth file (default imagenet)",
    )
    encoder.add_argument(
        "--kmeans-images", type=positive_int, default=None,
        help="images sampled (evenly) for the k-means cluster initialisation of --preset (default 500)",
    )
    encoder.add_argument("--image-size", metavar="WxH", help="input size, e.g. 240x180 (default: the encoder's)")
    encoder.add_argument("--save-model", type=Path, help="also write the encoder used as a seqvpr checkpoint")
    encoder.add_argument("--seed", type=int, default=None, help="seed of random weights and k-means (default 0)")
    work = parser.add_argument_group("run")
    work.add_argument("--batch-size", type=positive_int, default=None, help="images per forward pass (default 16)")
    work.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default auto")
    work.add_argument("--float16", action="store_true", default=None, help="store descriptors as float16 (half the size)")
    work.add_argument(
        "--timestamps", choices=("auto", "us", "s", "index"), default=None,
        help="how file names give times: us, s, or index (frame number); default auto",
    )
    work.add_argument("--chunk-size", type=positive_int, default=None, help="images per resumable chunk (default 256)")
    work.add_argument("--skip-bad", action="store_true", default=None, help="leave out unreadable images (listed in the file)")
    work.add_argument("--restart", action="store_true", help="discard partial results of an earlier run")


def run(args: argparse.Namespace) -> int:
    from seqvpr.config import options_config
    from seqvpr.extraction import ExtractConfig, extract, read_descriptor_file, resolve_device

    config = options_config(ExtractConfig, args.config, {
        "model": args.model, "preset": args.preset, "backbone_weights": args.backbone_weights,
        "kmeans_images": args.kmeans_images, "image_size": args.image_size, "seed": args.seed,
        "batch_size": args.batch_size, "device": args.device, "float16": args.float16,
        "timestamps": args.timestamps, "chunk_size": args.chunk_size, "skip_bad": args.skip_bad,
    })
    started = time.perf_counter()
    out = extract(config, args.images, args.out, save_model=args.save_model, restart=args.restart)
    seconds = time.perf_counter() - started
    result = read_descriptor_file(out)
    print(json.dumps({
        "out": str(out), "images": len(result.times) + len(result.skipped), "descriptors": len(result.times),
        "dim": result.values.shape[1], "dtype": str(result.values.dtype), "skipped": len(result.skipped),
        "device": str(resolve_device(config.device)), "seconds_this_run": round(seconds, 3),
    }))
    return 0
