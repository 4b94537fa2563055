"""Descriptors of traverse images, computed once per encoder and cached on disk.

The cache holds one descriptors file (:mod:`seqvpr.vpr.descriptor_file`) per traverse,
``<cache>/<traverse>.npz``, tagged with a fingerprint of the encoder's weights and config.
A second evaluation with the same encoder reads the files instead of encoding again; images
missing from a file (new pairs) are encoded and merged in; a file from another encoder is
recomputed. Files from ``seqvpr extract`` can serve as a cache too (``image_names`` must be
the image paths relative to the traverse folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from seqvpr.errors import SeqvprError
from seqvpr.vpr.descriptor_file import DescriptorFile, read_descriptor_file, write_descriptor_file
from seqvpr.vpr.encoder import NetVLADEncoder, images_to_tensor

__all__ = ["encoder_fingerprint", "encode_images", "cached_descriptors", "precomputed_descriptors"]

LOGGER = logging.getLogger(__name__)


def encoder_fingerprint(encoder: NetVLADEncoder) -> str:
    """A short hash of the encoder's config and weights."""
    digest = hashlib.sha1(json.dumps(encoder.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_images(
    encoder: NetVLADEncoder,
    paths: list[Path],
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = True,
    description: str = "encoding",
) -> np.ndarray:
    """Descriptors of image files, shape (len(paths), D), float32.

    Raises:
        ValueError: naming an image that cannot be read.
    """
    from tqdm import tqdm

    from seqvpr.data.images import read_rgb

    encoder = encoder.to(device).eval()
    output = np.empty((len(paths), encoder.output_dim), dtype=np.float32)
    starts = range(0, len(paths), batch_size)
    for start in tqdm(starts, desc=description, unit="batch", disable=not progress, leave=False):
        batch = paths[start : start + batch_size]
        images = []
        for path in batch:
            try:
                images.append(read_rgb(path))
            except (OSError, ValueError) as error:
                raise SeqvprError(f"cannot read image {path}: {error}") from error
        tensor = images_to_tensor(images, encoder.config).to(device)
        output[start : start + len(batch)] = encoder(tensor).float().cpu().numpy()
    return output


def cached_descriptors(
    encoder: NetVLADEncoder,
    cache_dir: Path,
    traverse_root: Path,
    wanted: dict[str, dict[str, float]],
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Descriptors of the wanted images of each traverse, from the cache or freshly encoded.

    Args:
        encoder: the encoder.
        cache_dir: folder of ``<traverse>.npz`` files (created if missing).
        traverse_root: folder holding ``<traverse>/`` image folders.
        wanted: traverse name -> {image path relative to its folder -> capture time, s}.
        batch_size, device: encoding settings.
        progress: show progress bars.

    Returns:
        traverse name -> {image path -> descriptor (D,)}.
    """
    fingerprint = encoder_fingerprint(encoder)
    result: dict[str, dict[str, np.ndarray]] = {}
    for traverse, times in sorted(wanted.items()):
        names = sorted(times)
        path = cache_dir / f"{traverse}.npz"
        known: dict[str, np.ndarray] = {}
        if path.exists():
            cached = read_descriptor_file(path)
            if cached.metadata.get("encoder_fingerprint") == fingerprint:
                known = dict(zip(cached.image_names.tolist(), cached.values.astype(np.float32)))
                times = {**dict(zip(cached.image_names.tolist(), cached.times.tolist())), **times}
            else:
                LOGGER.info("%s: made by another encoder, recomputing", path)
        missing = [name for name in names if name not in known]
        if missing:
            values = encode_images(encoder, [traverse_root / traverse / name for name in missing],
                                   batch_size, device, progress, description=f"encoding {traverse}")
            known.update(zip(missing, values))
            ordered = sorted(known, key=lambda name: times[name])
            write_descriptor_file(path, DescriptorFile(
                times=np.asarray([times[name] for name in ordered], dtype=np.float64),
                values=np.stack([known[name] for name in ordered]),
                image_names=np.asarray(ordered),
                metadata={"encoder_fingerprint": fingerprint, "encoder": encoder.config.to_dict(),
                          "traverse": traverse},
            ))
            LOGGER.info("%s: encoded %d images (%d cached)", traverse, len(missing), len(names) - len(missing))
        result[traverse] = {name: known[name] for name in names}
    return result


def precomputed_descriptors(folder: Path, wanted: dict[str, dict[str, float]]) -> dict[str, dict[str, np.ndarray]]:
    """Descriptors of the wanted images from ``<folder>/<traverse>.npz`` files, no encoder.

    The files are descriptors files (e.g. from ``seqvpr extract`` run on each traverse
    folder) whose ``image_names`` are image paths relative to the traverse folder.

    Raises:
        FileNotFoundError: a traverse has no file.
        ValueError: a file lacks wanted images (naming the file, how many and one of them).
    """
    result = {}
    for traverse, times in sorted(wanted.items()):
        path = folder / f"{traverse}.npz"
        if not path.is_file():
            raise SeqvprError(f"{path}: no descriptors file for traverse {traverse}")
        data = read_descriptor_file(path)
        known = dict(zip(data.image_names.tolist(), data.values.astype(np.float32)))
        missing = sorted(name for name in times if name not in known)
        if missing:
            raise SeqvprError(f"{path}: lacks descriptors of {len(missing)} image(s) the pairs use, "
                             f"e.g. {missing[0]!r}")
        result[traverse] = {name: known[name] for name in sorted(times)}
    return result
