"""Descriptor extraction: images -> NetVLAD descriptors -> one ``.npz`` descriptors file.

One piece of code serves three uses: the ``seqvpr extract`` step (:func:`extract`: a
traverse or a folder of images, batched and resumable), the per-encoder cache that
evaluation reads (:func:`cached_descriptors`) and precomputed files given instead of an
encoder (:func:`precomputed_descriptors`). All of them read and write the same
descriptors file, ``.npz`` with no pickles:

- ``times``: (N,) float64, capture time of each image in seconds;
- ``values``: (N, D) float32 or float16, the L2-normalised global descriptors;
- ``image_names``: (N,) str, image paths relative to the input folder or traverse;
- ``positions``: (N, 2) float64, UTM (easting, northing) metres — only when known;
- ``utm_zone``: () str, the zone of ``positions`` (e.g. ``30U``) — only with positions;
- ``skipped``: (M,) str, unreadable images left out (``skip_bad``), possibly empty;
- ``metadata``: () str, JSON: the encoder config and fingerprint, where the weights came
  from, the input.

``times`` and ``values`` are what ``seqvpr align`` reads as a signal, so a descriptors
file can be aligned directly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path, read_npz
from seqvpr.vpr.encoder import EncoderConfig, NetVLADEncoder, images_to_tensor

__all__ = [
    "DescriptorFile",
    "write_descriptor_file",
    "read_descriptor_file",
    "ExtractConfig",
    "extract",
    "list_images",
    "resolve_device",
    "encoder_fingerprint",
    "encode_images",
    "cached_descriptors",
    "precomputed_descriptors",
    "IMAGE_SUFFIXES",
    "check_finite",
]

LOGGER = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff"}
MANIFEST_VERSION = 1
TIMESTAMP_MODES = ("auto", "us", "s", "index")


@dataclass(frozen=True)
class DescriptorFile:
    """Descriptors of a sequence of images, with their times and (optionally) positions.

    Attributes:
        times: capture times in seconds, shape (N,).
        values: descriptors, shape (N, D), float32 or float16.
        image_names: image paths, shape (N,).
        positions: UTM (easting, northing) in metres, shape (N, 2), or None.
        utm_zone: the zone of ``positions``, or None.
        skipped: unreadable images that were left out.
        metadata: JSON-serialisable description of how the file was made.
    """

    times: np.ndarray
    values: np.ndarray
    image_names: np.ndarray
    positions: np.ndarray | None = None
    utm_zone: str | None = None
    skipped: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        count = len(self.times)
        if np.shape(self.times) != (count,) or np.ndim(self.values) != 2 or len(self.values) != count:
            raise ValueError(
                f"expected times (N,) and values (N, D), got {np.shape(self.times)} and {np.shape(self.values)}"
            )
        if np.shape(self.image_names) != (count,):
            raise ValueError(f"image_names must have shape ({count},), got {np.shape(self.image_names)}")
        if self.positions is not None and np.shape(self.positions) != (count, 2):
            raise ValueError(f"positions must have shape ({count}, 2), got {np.shape(self.positions)}")
        if (self.positions is None) != (self.utm_zone is None):
            raise ValueError("positions and utm_zone go together: give both or neither")


def write_descriptor_file(path: str | Path, data: DescriptorFile) -> Path:
    """Write ``data`` to ``path`` (``.npz``) atomically."""
    arrays: dict[str, np.ndarray] = {
        "times": np.asarray(data.times, dtype=np.float64),
        "values": np.asarray(data.values),
        "image_names": np.asarray(data.image_names, dtype=str),
        "skipped": np.asarray(data.skipped, dtype=str),
        "metadata": np.array(json.dumps(data.metadata)),
    }
    if data.positions is not None:
        arrays["positions"] = np.asarray(data.positions, dtype=np.float64)
        arrays["utm_zone"] = np.array(str(data.utm_zone))
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def read_descriptor_file(path: str | Path) -> DescriptorFile:
    """Read a file written by :func:`write_descriptor_file`.

    Raises:
        SeqvprError: the file is missing, unreadable or lacks a required array; names the
            file and the arrays found.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"{path}: no such descriptors file")
    arrays = read_npz(path, "a descriptors file")
    missing = sorted({"times", "values", "image_names"} - set(arrays))
    if missing:
        raise SeqvprError(f"{path}: not a descriptors file, missing {missing} (has {sorted(arrays)})")
    try:
        return DescriptorFile(
            times=arrays["times"],
            values=arrays["values"],
            image_names=arrays["image_names"],
            positions=arrays.get("positions"),
            utm_zone=str(arrays["utm_zone"]) if "utm_zone" in arrays else None,
            skipped=tuple(str(name) for name in arrays.get("skipped", ())),
            metadata=json.loads(str(arrays["metadata"])) if "metadata" in arrays else {},
        )
    except ValueError as error:
        raise SeqvprError(f"{path}: {error}") from error


def check_finite(values: np.ndarray, names: Sequence[str], where: str) -> None:
    """Raise naming the images whose descriptors (rows of ``values``, (N, D)) are not finite.

    A NaN or infinite descriptor comes from broken weights or a broken image; it would
    make every distance to it NaN, so it is never written or used.
    """
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        shown = ", ".join(str(names[i]) for i in bad[:5])
        raise SeqvprError(
            f"{where}: {bad.size} of {len(values)} descriptors are not finite (NaN or inf), e.g. for {shown}; "
            "are the encoder's weights or these images broken?"
        )


@dataclass(frozen=True)
class ExtractConfig:
    """Options of :func:`extract` (``config/extract.yaml`` documents every key).

    Attributes:
        model: a seqvpr, published or MATLAB NetVLAD checkpoint; None builds ``preset``.
        preset: architecture without ``model`` (``netvlad-vgg16`` or ``small``).
        backbone_weights: VGG16 weights of a preset: ``imagenet``, ``random`` or a path.
        kmeans_images: images sampled evenly for the k-means cluster initialisation.
        image_size: input size ``WxH`` (e.g. ``240x180``), or None for the encoder's.
        seed: seed of random weights and k-means.
        batch_size: images per forward pass.
        device: ``auto``, ``cpu`` or ``cuda``.
        float16: store descriptors as float16.
        timestamps: how image file names give times: ``auto``, ``us``, ``s`` or ``index``.
        chunk_size: images per resumable chunk.
        skip_bad: leave out unreadable images (listed in ``skipped``) instead of stopping.
    """

    model: Path | None = None
    preset: str = "netvlad-vgg16"
    backbone_weights: str = "imagenet"
    kmeans_images: int = 500
    image_size: str | None = None
    seed: int = 0
    batch_size: int = 16
    device: str = "auto"
    float16: bool = False
    timestamps: str = "auto"
    chunk_size: int = 256
    skip_bad: bool = False

    def __post_init__(self) -> None:
        from seqvpr.vpr.encoder import PRESETS

        for name in ("batch_size", "chunk_size", "kmeans_images"):
            if getattr(self, name) < 1:
                raise SeqvprError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.preset not in PRESETS:
            raise SeqvprError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise SeqvprError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.timestamps not in TIMESTAMP_MODES:
            raise SeqvprError(f"timestamps must be one of {TIMESTAMP_MODES}, got {self.timestamps!r}")
        try:
            dataclasses.replace(PRESETS[self.preset], **self.size())
        except ValueError as error:
            raise SeqvprError(f"image_size {self.image_size}: {error}") from None

    def size(self) -> dict[str, int]:
        """``image_size`` as EncoderConfig fields (empty when None)."""
        if self.image_size is None:
            return {}
        try:
            width, height = (int(v) for v in self.image_size.lower().split("x"))
        except (ValueError, AttributeError):
            raise SeqvprError(f"image_size must look like 240x180, got {self.image_size!r}") from None
        return {"image_width": width, "image_height": height}


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` names: ``auto`` (CUDA when available, else the CPU),
    ``cpu``, ``cuda`` or ``cuda:N``; a device that does not exist here is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise SeqvprError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SeqvprError(f"device {name}: no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SeqvprError(f"device {name}: there are only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise SeqvprError(f"device {name!r}: only cpu and cuda devices are supported")
    return device


def encoder_fingerprint(encoder: NetVLADEncoder) -> str:
    """A short hash of the encoder's config and weights."""
    digest = hashlib.sha1(json.dumps(encoder.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _read(path: Path, config: EncoderConfig) -> torch.Tensor | None:
    """The image as a (3, H, W) float tensor in [0, 1] at the encoder's input size, or None if unreadable."""
    from seqvpr.data.images import read_rgb

    try:
        image = read_rgb(path)
    except (OSError, ValueError) as error:
        LOGGER.debug("unreadable image %s: %s", path, error)
        return None
    return images_to_tensor([image], config)[0]


@torch.inference_mode()
def encode_images(
    encoder: NetVLADEncoder,
    paths: Sequence[Path],
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    progress: Any = None,
) -> tuple[np.ndarray, list[int], list[Path]]:
    """Descriptors of image files, read by four threads and encoded in batches.

    Args:
        encoder: the encoder, already on ``device`` and in eval mode.
        paths: image files.
        batch_size: images per forward pass.
        device: where the encoder runs.
        progress: a tqdm bar to advance by one per image, or None.

    Returns:
        The descriptors of the readable images, shape (K, D) float32, their indices into
        ``paths`` (K,), and the unreadable paths.
    """
    values, kept, bad = [], [], []
    batch: list[torch.Tensor] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = pool.map(lambda path: _read(path, encoder.config), paths)
        for index, (path, image) in enumerate(zip(paths, images)):
            if image is None:
                bad.append(path)
            else:
                batch.append(image)
                kept.append(index)
            if batch and (len(batch) == batch_size or index == len(paths) - 1):
                values.append(encoder(torch.stack(batch).to(device)).float().cpu().numpy())
                batch = []
            if progress is not None:
                progress.update(1)
    stacked = np.concatenate(values) if values else np.zeros((0, encoder.output_dim), np.float32)
    return stacked, kept, bad


def list_images(folder: Path, timestamps: str = "auto") -> tuple[list[str], np.ndarray]:
    """Image file names of ``folder`` in time order, and their times in seconds.

    Args:
        folder: directory with the images (not searched recursively).
        timestamps: ``us`` (integer names, microseconds), ``s`` (numeric names, seconds),
            ``index`` (frame number, names sorted) or ``auto`` (the first that fits).

    Returns:
        The names and a float64 array of times, shape (N,), strictly increasing.
    """
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
    values = np.array([_time_s(stem, timestamps) for stem in stems], dtype=np.float64)
    bad = [name for name, value in zip(names, values) if not np.isfinite(value)]
    if bad:
        unit = "microseconds (digits only)" if timestamps == "us" else "seconds"
        raise SeqvprError(
            f"{folder}: file names are not finite times in {unit} (--timestamps {timestamps}): "
            f"not times: {', '.join(bad[:5])}; rename them or pass --timestamps index"
        )
    order = np.argsort(values, kind="stable")
    names, values = [names[i] for i in order], values[order]
    repeated = np.flatnonzero(np.diff(values) <= 0)
    if repeated.size:
        i = int(repeated[0])
        raise SeqvprError(f"{names[i]} and {names[i + 1]} have the same time {float(values[i])!r} s")
    return names, values


def _is_number(text: str) -> bool:
    """Whether a file name stem reads as a number (``1e400`` and ``nan`` too: names meant as times)."""
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text


def _time_s(stem: str, timestamps: str) -> float:
    """The time a file name stem gives, in seconds; NaN when it is not a finite time."""
    if timestamps == "us":
        if not stem.isdigit():
            return math.nan
        try:
            return int(stem) / 1e6
        except OverflowError:
            return math.nan
    return float(stem) if _is_number(stem) and math.isfinite(float(stem)) else math.nan


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


def _encoder_source(config: ExtractConfig) -> dict[str, Any]:
    """What decides the encoder's weights; a resumed run must match it."""
    if config.model is not None:
        if not config.model.is_file():
            raise SeqvprError(f"--model {config.model}: no such file")
        digest = hashlib.sha256()
        with open(config.model, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return {"model": str(config.model), "sha256": digest.hexdigest(), "image_size": config.image_size}
    return {
        "preset": config.preset, "backbone_weights": config.backbone_weights,
        "kmeans_images": config.kmeans_images, "seed": config.seed, "image_size": config.image_size,
    }


def _build_encoder(config: ExtractConfig, folder: Path, names: Sequence[str], device: torch.device) -> NetVLADEncoder:
    from seqvpr.vpr import PRESETS, load_encoder, load_imagenet_backbone

    if config.model is not None:
        return load_encoder(config.model, **config.size())
    encoder_config = dataclasses.replace(PRESETS[config.preset], **config.size())
    torch.manual_seed(config.seed)
    encoder = NetVLADEncoder(encoder_config)
    if config.backbone_weights == "imagenet":
        load_imagenet_backbone(encoder)
    elif config.backbone_weights != "random":
        load_imagenet_backbone(encoder, Path(config.backbone_weights))
    encoder = encoder.to(device)
    picks = np.unique(np.linspace(0, len(names) - 1, min(config.kmeans_images, len(names))).round().astype(int))
    images = [_read(folder / names[i], encoder_config) for i in picks]
    bad = [names[i] for i, image in zip(picks, images) if image is None]
    if bad and not config.skip_bad:
        raise SeqvprError(f"unreadable image(s) in {folder}: {', '.join(bad)} (or pass --skip-bad)")
    good = [image for image in images if image is not None]
    size = config.batch_size
    batches = (torch.stack(good[i : i + size]).to(device) for i in range(0, len(good), size))
    per_image = max(1, min(100, 50_000 // max(1, len(good))))
    encoder.initialize_clusters(batches, per_image=per_image, seed=config.seed)
    return encoder.cpu()


def _resumable(partial: Path, manifest: dict[str, Any], *, restart: bool) -> bool:
    """Whether ``partial`` holds work of this very run (``restart`` discards it first).

    Partial results of a run with other inputs or options are an error. A partial
    folder without a readable manifest holds nothing usable and is discarded. (A run
    that fails on its inputs fails before it creates ``partial``: see :func:`extract`.)
    """
    manifest_path = partial / "manifest.json"
    if partial.exists() and restart:
        shutil.rmtree(partial)
    if not partial.exists():
        return False
    previous = None
    if manifest_path.is_file():
        try:
            previous = json.loads(manifest_path.read_text())
        except ValueError:
            LOGGER.warning("%s: unreadable, starting over", manifest_path)
    if previous == manifest:
        return True
    if previous is not None:
        changed = sorted(k for k in manifest if previous.get(k) != manifest[k])
        raise SeqvprError(
            f"{partial} holds partial results of a different run (differs in {', '.join(changed)}); "
            "rerun with the same inputs and options, or pass --restart to discard them"
        )
    shutil.rmtree(partial)
    return False


def _start_partial(partial: Path, manifest: dict[str, Any]) -> None:
    partial.mkdir(parents=True, exist_ok=True)
    with atomic_path(partial / "manifest.json") as temporary:
        temporary.write_text(json.dumps(manifest, indent=1))


def _chunk_path(partial: Path, start: int) -> Path:
    return partial / f"chunk_{start:09d}.npz"


def _write_chunk(partial: Path, start: int, values: np.ndarray, kept: list[int], bad: list[str]) -> None:
    with atomic_path(_chunk_path(partial, start)) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, values=values, kept=np.asarray(kept, dtype=np.int64), bad=np.asarray(bad, dtype=str))


def _chunk_is_whole(path: Path, count: int, dim: int) -> bool:
    """Whether a saved chunk reads back with ``count`` images' worth of (values, kept, bad)."""
    try:
        arrays = read_npz(path, "a chunk of descriptors")
        values, kept, bad = arrays["values"], arrays["kept"], arrays["bad"]
    except (SeqvprError, KeyError) as error:
        LOGGER.warning("%s: damaged chunk (%s), computing it again", path, error)
        return False
    if values.shape != (len(kept), dim) or len(kept) + len(bad) != count or not np.isfinite(values).all():
        LOGGER.warning("%s: damaged chunk (values %s, %d kept, %d unreadable of %d images), computing it again",
                       path, values.shape, len(kept), len(bad), count)
        return False
    return True


def _gather(partial: Path, chunks: range, dim: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    values, kept, bad = [], [], []
    for start in chunks:
        chunk = read_npz(_chunk_path(partial, start), "a chunk of descriptors")
        values.append(chunk["values"])
        kept.append(chunk["kept"])
        bad.extend(str(name) for name in chunk["bad"])
    return np.concatenate(values).reshape(-1, dim), np.concatenate(kept), bad


def extract(
    config: ExtractConfig,
    images: Path,
    out: Path,
    *,
    save_model: Path | None = None,
    restart: bool = False,
    progress: bool = True,
) -> Path:
    """Describe every image of a traverse or a folder of images; write a descriptors file.

    Work is saved in chunks next to the output (``<out>.partial/``); calling again with
    the same inputs and options after an interruption resumes there. The output is
    written atomically at the end and the partial folder removed.

    Args:
        config: encoder and run options.
        images: a traverse folder (with ``traverse.csv``: times and positions come from it)
            or a plain folder of images (times from the file names, see :func:`list_images`).
        out: the descriptors file to write (``.npz``).
        save_model: also write the encoder used as a seqvpr checkpoint.
        restart: discard partial results of an earlier run with other options.
        progress: show a progress bar.

    Returns:
        ``out``.

    Raises:
        SeqvprError: unreadable inputs (named), partial results of another run, or no
            readable image at all.
    """
    from tqdm import tqdm

    from seqvpr.vpr import load_encoder, save_encoder

    names, times, positions, utm_zone = _inputs(images, config.timestamps)
    device = resolve_device(config.device)
    partial = out.with_name(out.name + ".partial")
    manifest = {
        "version": MANIFEST_VERSION,
        "images": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        "count": len(names),
        "chunk_size": config.chunk_size,
        "float16": config.float16,
        "encoder": _encoder_source(config),
    }
    if out.is_dir():
        raise SeqvprError(f"--out {out} is a folder; give the path of the .npz file to write")
    encoder_file = partial / "encoder.pt"
    if _resumable(partial, manifest, restart=restart) and encoder_file.is_file():
        encoder = load_encoder(encoder_file)
        LOGGER.info("resuming in %s", partial)
    else:
        # Everything that can fail on the user's input fails here, before .partial exists.
        encoder = _build_encoder(config, images, names, device)
        _start_partial(partial, manifest)
        save_encoder(encoder, encoder_file)
    if save_model is not None:
        save_encoder(encoder, save_model)
    encoder = encoder.to(device).eval()

    chunks = range(0, len(names), config.chunk_size)
    done = []
    for start in chunks:
        path = _chunk_path(partial, start)
        if path.is_file():
            if _chunk_is_whole(path, min(config.chunk_size, len(names) - start), encoder.output_dim):
                done.append(start)
            else:
                path.unlink()
    initial = sum(min(config.chunk_size, len(names) - start) for start in done)
    with tqdm(total=len(names), initial=initial, unit="img", desc="extract", disable=not progress) as bar:
        for start in chunks:
            if start in done:
                continue
            chunk_names = names[start : start + config.chunk_size]
            values, kept, bad = encode_images(encoder, [images / name for name in chunk_names],
                                              config.batch_size, device, bar)
            readable = set(kept)
            bad_names = [name for index, name in enumerate(chunk_names) if index not in readable]
            if bad and not config.skip_bad:
                raise SeqvprError(
                    f"unreadable image(s) in {images}: {', '.join(bad_names)} "
                    "(fix or remove them, or pass --skip-bad to leave them out)"
                )
            check_finite(values, [chunk_names[index] for index in kept], str(images))
            stored = values.astype(np.float16 if config.float16 else np.float32)
            _write_chunk(partial, start, stored, [start + index for index in kept], bad_names)

    values, kept, skipped = _gather(partial, chunks, encoder.output_dim)
    if skipped:
        LOGGER.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(skipped))
    if len(kept) == 0:
        raise SeqvprError(f"no readable images in {images}")
    write_descriptor_file(out, DescriptorFile(
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
            "input": str(images),
            "timestamps": config.timestamps,
            # What the evaluation cache checks before it reuses an entry (see cached_descriptors).
            "traverse_folder": str(images.resolve()),
            "image_keys": {names[index]: image_key(images / names[index]) for index in kept.tolist()},
        },
    ))
    shutil.rmtree(partial)
    return out


def image_key(path: Path) -> str:
    """What identifies an image's content for the cache: size, mtime and a BLAKE2 hash of its bytes."""
    data = path.read_bytes()
    return f"{len(data)}:{path.stat().st_mtime_ns}:{hashlib.blake2b(data, digest_size=16).hexdigest()}"


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

    The cache holds one descriptors file per traverse, ``<cache_dir>/<traverse>.npz``.
    An entry is reused only when everything it was made from is unchanged: the encoder
    (:func:`encoder_fingerprint`), the traverse folder (its absolute path) and the image
    itself (:func:`image_key`: size, modification time and content hash). Anything else
    (a replaced image, ``traverse_root`` pointing elsewhere, another encoder) is encoded
    again and the file rewritten. Non-finite descriptors are never written.

    Args:
        encoder: the encoder.
        cache_dir: folder of ``<traverse>.npz`` files (created if missing).
        traverse_root: folder holding ``<traverse>/`` image folders.
        wanted: traverse name -> {image path relative to its folder -> capture time, s}.
        batch_size, device: encoding settings.
        progress: show progress bars.

    Returns:
        traverse name -> {image path -> descriptor (D,)}.

    Raises:
        SeqvprError: an image cannot be read, or gives a non-finite descriptor (named).
    """
    from tqdm import tqdm

    fingerprint = encoder_fingerprint(encoder)
    encoder = encoder.to(device).eval()
    result: dict[str, dict[str, np.ndarray]] = {}
    for traverse, times in sorted(wanted.items()):
        names = sorted(times)
        folder = (Path(traverse_root) / traverse).resolve()
        keys = {}
        for name in names:
            if not (folder / name).is_file():
                raise SeqvprError(f"{folder / name}: no such image (the pairs refer to it)")
            keys[name] = image_key(folder / name)
        path = cache_dir / f"{traverse}.npz"
        known: dict[str, np.ndarray] = {}
        cached_keys: dict[str, str] = {}
        all_times = dict(times)
        if path.exists():
            try:
                cached = read_descriptor_file(path)
            except SeqvprError as error:
                LOGGER.warning("%s, recomputing", error)
            else:
                made_from = cached.metadata
                if made_from.get("encoder_fingerprint") != fingerprint:
                    LOGGER.info("%s: made by another encoder, recomputing", path)
                elif made_from.get("traverse_folder") != str(folder):
                    LOGGER.info("%s: made from %s, not %s, recomputing", path, made_from.get("traverse_folder"), folder)
                else:
                    recorded = dict(made_from.get("image_keys", {}))
                    for name, time, value in zip(cached.image_names.tolist(), cached.times.tolist(),
                                                 cached.values.astype(np.float32)):
                        # Entries of images not wanted now stay in the file; they are checked when wanted.
                        current = keys.get(name, recorded.get(name))
                        if name in recorded and recorded[name] == current and np.isfinite(value).all():
                            known[name], cached_keys[name] = value, current
                            all_times.setdefault(name, time)
                    stale = [name for name in names if name in recorded and name not in known]
                    if stale:
                        LOGGER.warning("%s: %d image(s) changed since they were encoded (e.g. %s), encoding them again",
                                       path, len(stale), stale[0])
        missing = [name for name in names if name not in known]
        if missing:
            with tqdm(total=len(missing), desc=f"encoding {traverse}", unit="img", disable=not progress,
                      leave=False) as bar:
                values, _, bad = encode_images(encoder, [folder / name for name in missing], batch_size, device, bar)
            if bad:
                raise SeqvprError(f"cannot read image(s) {', '.join(map(str, bad))}")
            check_finite(values, [str(folder / name) for name in missing], f"encoding {traverse}")
            known.update(zip(missing, values))
            cached_keys.update((name, keys[name]) for name in missing)
            ordered = sorted(known, key=lambda name: all_times[name])
            write_descriptor_file(path, DescriptorFile(
                times=np.asarray([all_times[name] for name in ordered], dtype=np.float64),
                values=np.stack([known[name] for name in ordered]),
                image_names=np.asarray(ordered),
                metadata={"encoder_fingerprint": fingerprint, "encoder": encoder.config.to_dict(),
                          "traverse": traverse, "traverse_folder": str(folder),
                          "image_keys": {name: cached_keys[name] for name in ordered}},
            ))
            LOGGER.info("%s: encoded %d images (%d cached)", traverse, len(missing), len(names) - len(missing))
        result[traverse] = {name: known[name] for name in names}
    return result


def precomputed_descriptors(folder: Path, wanted: dict[str, dict[str, float]]) -> dict[str, dict[str, np.ndarray]]:
    """Descriptors of the wanted images from ``<folder>/<traverse>.npz`` files, no encoder.

    The files are descriptors files (e.g. from :func:`extract` run on each traverse
    folder) whose ``image_names`` are image paths relative to the traverse folder. They
    must all come from one encoder: descriptors of two encoders are not comparable.

    Raises:
        SeqvprError: a traverse has no file, a file lacks wanted images (naming the
            file, how many and one of them), holds non-finite descriptors, or the files
            come from different encoders (naming two files and their fingerprints).
    """
    result = {}
    first: tuple[Path, str | None] | None = None
    for traverse, times in sorted(wanted.items()):
        path = folder / f"{traverse}.npz"
        if not path.is_file():
            raise SeqvprError(f"{path}: no descriptors file for traverse {traverse}")
        data = read_descriptor_file(path)
        fingerprint = data.metadata.get("encoder_fingerprint")
        if first is None:
            first = (path, fingerprint)
        elif fingerprint != first[1]:
            raise SeqvprError(
                f"{folder} mixes descriptors of different encoders: {first[0].name} has encoder fingerprint "
                f"{first[1] or 'none'}, {path.name} has {fingerprint or 'none'}; describe every traverse "
                "with one encoder (seqvpr extract --model the same checkpoint)"
            )
        known = dict(zip(data.image_names.tolist(), data.values.astype(np.float32)))
        missing = sorted(name for name in times if name not in known)
        if missing:
            raise SeqvprError(f"{path}: lacks descriptors of {len(missing)} image(s) the pairs use, "
                              f"e.g. {missing[0]!r}")
        names = sorted(times)
        values = np.stack([known[name] for name in names])
        check_finite(values, names, str(path))
        result[traverse] = dict(zip(names, values))
    return result
