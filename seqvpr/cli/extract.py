"""``seqvpr extract``: images of a traverse → a NetVLAD descriptors file (resumable)."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from seqvpr.errors import SeqvprError

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

Work is saved in chunks next to the output (<out>.partial/); rerunning the same command
after an interruption resumes there. The output is written atomically at the end.
Unreadable images stop the run with their names, or with --skip-bad are left out and
listed in the file's `skipped` array.
"""

LOGGER = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff"}
MANIFEST_VERSION = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", type=Path, help="traverse folder (with traverse.csv) or folder of images")
    parser.add_argument("--out", type=Path, required=True, help="output descriptors file (.npz)")
    encoder = parser.add_argument_group("encoder")
    choice = encoder.add_mutually_exclusive_group()
    choice.add_argument("--model", type=Path, help="seqvpr or published NetVLAD checkpoint")
    choice.add_argument(
        "--preset", choices=("netvlad-vgg16", "small"), default=None,
        help="architecture when there is no --model (default netvlad-vgg16)",
    )
    encoder.add_argument(
        "--backbone-weights", default="imagenet", metavar="imagenet|random|PATH",
        help="VGG16 weights for --preset: imagenet (torchvision, needs internet once), "
        "random, or a torchvision vgg16 .pth file (default imagenet)",
    )
    encoder.add_argument(
        "--kmeans-images", type=int, default=500,
        help="images sampled (evenly) for the k-means cluster initialisation of --preset (default 500)",
    )
    encoder.add_argument("--image-size", metavar="WxH", help="input size, e.g. 240x180 (default: the encoder's)")
    encoder.add_argument("--save-model", type=Path, help="also write the encoder used as a seqvpr checkpoint")
    encoder.add_argument("--seed", type=int, default=0, help="seed of random weights and k-means (default 0)")
    work = parser.add_argument_group("run")
    work.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    work.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default auto")
    work.add_argument("--float16", action="store_true", help="store descriptors as float16 (half the size)")
    work.add_argument(
        "--timestamps", choices=("auto", "us", "s", "index"), default="auto",
        help="how file names give times: us, s, or index (frame number); default auto",
    )
    work.add_argument("--chunk-size", type=int, default=256, help="images per resumable chunk (default 256)")
    work.add_argument("--skip-bad", action="store_true", help="leave out unreadable images (listed in the file)")
    work.add_argument("--restart", action="store_true", help="discard partial results of an earlier run")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from seqvpr.descriptor_cache import encoder_fingerprint
    from seqvpr.vpr import load_encoder, save_encoder
    from seqvpr.vpr.descriptor_file import DescriptorFile, write_descriptor_file

    for option in ("batch_size", "chunk_size", "kmeans_images"):
        if getattr(args, option) < 1:
            raise SeqvprError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}")
    names, times, positions, utm_zone = _inputs(args.images, args.timestamps)
    device = _device(args.device)
    partial = args.out.with_name(args.out.name + ".partial")
    manifest = {
        "version": MANIFEST_VERSION,
        "images": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        "count": len(names),
        "chunk_size": args.chunk_size,
        "float16": args.float16,
        "encoder": _encoder_source(args),
    }
    _prepare_partial(partial, manifest, restart=args.restart)
    encoder_file = partial / "encoder.pt"
    if encoder_file.is_file():
        encoder = load_encoder(encoder_file)
        LOGGER.info("resuming in %s", partial)
    else:
        encoder = _build_encoder(args, names, device)
        save_encoder(encoder, encoder_file)
    if args.save_model is not None:
        save_encoder(encoder, args.save_model)
    encoder = encoder.to(device).eval()

    chunks = range(0, len(names), args.chunk_size)
    done = [start for start in chunks if _chunk_path(partial, start).is_file()]
    started = time.perf_counter()
    with (
        ThreadPoolExecutor(max_workers=4) as pool,
        tqdm(total=len(names), initial=sum(min(args.chunk_size, len(names) - s) for s in done),
             unit="img", desc="extract") as progress,
    ):
        for start in chunks:
            if start in done:
                continue
            chunk_names = names[start : start + args.chunk_size]
            images = pool.map(lambda name: _read(args.images / name, encoder.config), chunk_names)
            values, kept, bad = [], [], []
            batch: list[torch.Tensor] = []
            for offset, (name, image) in enumerate(zip(chunk_names, images)):
                if image is None:
                    bad.append(name)
                else:
                    batch.append(image)
                    kept.append(start + offset)
                if len(batch) == args.batch_size or (offset == len(chunk_names) - 1 and batch):
                    with torch.inference_mode():
                        values.append(encoder(torch.stack(batch).to(device)).float().cpu().numpy())
                    batch = []
                progress.update(1)
            if bad and not args.skip_bad:
                raise SeqvprError(
                    f"unreadable image(s) in {args.images}: {', '.join(bad)} "
                    "(fix or remove them, or pass --skip-bad to leave them out)"
                )
            stored = np.concatenate(values) if values else np.zeros((0, encoder.output_dim), np.float32)
            _write_chunk(partial, start, stored.astype(np.float16 if args.float16 else np.float32), kept, bad)
    seconds = time.perf_counter() - started

    values, kept, skipped = _gather(partial, chunks, encoder.output_dim)
    if skipped:
        LOGGER.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(skipped))
    if len(kept) == 0:
        raise SeqvprError(f"no readable images in {args.images}")
    result = DescriptorFile(
        times=times[kept],
        values=values,
        image_names=np.asarray(names, dtype=str)[kept],
        positions=positions[kept] if positions is not None else None,
        utm_zone=utm_zone,
        skipped=tuple(skipped),
        metadata={
            "encoder_fingerprint": encoder_fingerprint(encoder),
            "encoder": encoder.config.to_dict(),
            "encoder_source": manifest["encoder"],
            "input": str(args.images),
            "timestamps": args.timestamps,
        },
    )
    write_descriptor_file(args.out, result)
    shutil.rmtree(partial)
    print(json.dumps({
        "out": str(args.out), "images": len(names), "descriptors": len(kept), "dim": encoder.output_dim,
        "dtype": str(values.dtype), "skipped": len(skipped), "device": str(device),
        "seconds_this_run": round(seconds, 3),
    }))
    return 0


def _inputs(folder: Path, timestamps: str):
    """Image names (relative to ``folder``), times (s), positions (or None) and UTM zone (or None)."""
    from seqvpr.data.traverse import TRAVERSE_CSV, read_traverse

    if (folder / TRAVERSE_CSV).is_file():
        if timestamps != "auto":
            raise SeqvprError(f"--timestamps does not apply to a traverse: {folder / TRAVERSE_CSV} gives the times")
        traverse = read_traverse(folder, check_images=False)
        names = [str(name) for name in traverse.image_paths]
        return names, traverse.times_s, traverse.positions, str(traverse.zone)
    names, times = list_images(folder, timestamps)
    return names, times, None, None


def list_images(folder: Path, timestamps: str = "auto") -> tuple[list[str], Any]:
    """Image file names of ``folder`` in time order, and their times in seconds.

    Args:
        folder: directory with the images (not searched recursively).
        timestamps: ``us`` (integer names, microseconds), ``s`` (numeric names, seconds),
            ``index`` (frame number, names sorted) or ``auto`` (the first that fits).

    Returns:
        The names and a float64 array of times, shape (N,), strictly increasing.
    """
    import numpy as np

    if not folder.is_dir():
        raise SeqvprError(f"{folder}: not a folder of images")
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not names:
        raise SeqvprError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    stems = [Path(name).stem for name in names]
    if timestamps == "auto":
        if all(stem.isdigit() for stem in stems):
            timestamps = "us"
        elif all(_is_number(stem) for stem in stems):
            timestamps = "s"
        else:
            timestamps = "index"
            LOGGER.warning("%s: file names are not times; using the frame index as time (s)", folder)
    if timestamps == "index":
        return names, np.arange(len(names), dtype=np.float64)
    bad = [name for name, stem in zip(names, stems) if not (stem.isdigit() if timestamps == "us" else _is_number(stem))]
    if bad:
        raise SeqvprError(f"--timestamps {timestamps}: file name(s) are not times: {', '.join(bad[:5])}")
    values = np.array([int(s) / 1e6 if timestamps == "us" else float(s) for s in stems], dtype=np.float64)
    order = np.argsort(values, kind="stable")
    names, values = [names[i] for i in order], values[order]
    repeated = np.flatnonzero(np.diff(values) <= 0)
    if repeated.size:
        i = int(repeated[0])
        raise SeqvprError(f"{names[i]} and {names[i + 1]} have the same time {float(values[i])!r} s")
    return names, values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower() not in {"nan", "inf", "-inf", "infinity"}


def _device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise SeqvprError("--device cuda: no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _image_size(text: str | None) -> dict[str, int]:
    if text is None:
        return {}
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SeqvprError(f"--image-size must look like 240x180, got {text!r}") from None
    return {"image_width": width, "image_height": height}


def _encoder_source(args: argparse.Namespace) -> dict[str, Any]:
    """What decides the encoder's weights; a resumed run must match it."""
    if args.model is not None:
        if not args.model.is_file():
            raise SeqvprError(f"--model {args.model}: no such file")
        digest = hashlib.sha256()
        with open(args.model, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return {"model": str(args.model), "sha256": digest.hexdigest(), "image_size": args.image_size}
    return {
        "preset": args.preset or "netvlad-vgg16", "backbone_weights": args.backbone_weights,
        "kmeans_images": args.kmeans_images, "seed": args.seed, "image_size": args.image_size,
    }


def _build_encoder(args: argparse.Namespace, names: Sequence[str], device):
    import dataclasses

    import numpy as np
    import torch

    from seqvpr.vpr import PRESETS, NetVLADEncoder, load_encoder, load_imagenet_backbone

    size = _image_size(args.image_size)
    if args.model is not None:
        return load_encoder(args.model, **size)
    config = dataclasses.replace(PRESETS[args.preset or "netvlad-vgg16"], **size)
    torch.manual_seed(args.seed)
    encoder = NetVLADEncoder(config)
    if args.backbone_weights == "imagenet":
        load_imagenet_backbone(encoder)
    elif args.backbone_weights != "random":
        load_imagenet_backbone(encoder, Path(args.backbone_weights))
    encoder = encoder.to(device)
    picks = np.unique(np.linspace(0, len(names) - 1, min(args.kmeans_images, len(names))).round().astype(int))
    images = [_read(args.images / names[i], config) for i in picks]
    bad = [names[i] for i, image in zip(picks, images) if image is None]
    if bad and not args.skip_bad:
        raise SeqvprError(f"unreadable image(s) in {args.images}: {', '.join(bad)} (or pass --skip-bad)")
    good = [image for image in images if image is not None]
    batches = (torch.stack(good[i : i + args.batch_size]).to(device) for i in range(0, len(good), args.batch_size))
    per_image = max(1, min(100, 50_000 // max(1, len(good))))
    encoder.initialize_clusters(batches, per_image=per_image, seed=args.seed)
    return encoder.cpu()


def _read(path: Path, config):
    """The image as a (3, H, W) float tensor at the encoder's input size, or None if unreadable."""
    from seqvpr.data.images import read_rgb
    from seqvpr.vpr import images_to_tensor

    try:
        image = read_rgb(path)
    except (OSError, ValueError) as error:
        LOGGER.debug("unreadable image %s: %s", path, error)
        return None
    return images_to_tensor([image], config)[0]


def _prepare_partial(partial: Path, manifest: dict[str, Any], *, restart: bool) -> None:
    manifest_path = partial / "manifest.json"
    if partial.exists() and restart:
        shutil.rmtree(partial)
    if manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        if previous != manifest:
            changed = sorted(k for k in manifest if previous.get(k) != manifest[k])
            raise SeqvprError(
                f"{partial} holds partial results of a different run (differs in {', '.join(changed)}); "
                "rerun with the same inputs and options, or pass --restart to discard them"
            )
        return
    from seqvpr.io import atomic_path

    partial.mkdir(parents=True, exist_ok=True)
    with atomic_path(manifest_path) as temporary:
        temporary.write_text(json.dumps(manifest, indent=1))


def _chunk_path(partial: Path, start: int) -> Path:
    return partial / f"chunk_{start:09d}.npz"


def _write_chunk(partial: Path, start: int, values, kept: list[int], bad: list[str]) -> None:
    import numpy as np

    from seqvpr.io import atomic_path

    with atomic_path(_chunk_path(partial, start)) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, values=values, kept=np.asarray(kept, dtype=np.int64), bad=np.asarray(bad, dtype=str))


def _gather(partial: Path, chunks: range, dim: int):
    import numpy as np

    values, kept, bad = [], [], []
    for start in chunks:
        with np.load(_chunk_path(partial, start), allow_pickle=False) as chunk:
            values.append(chunk["values"])
            kept.append(chunk["kept"])
            bad.extend(str(name) for name in chunk["bad"])
    return np.concatenate(values).reshape(-1, dim), np.concatenate(kept), bad
