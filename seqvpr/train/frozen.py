"""Frozen and trainable parts of a NetVLAD encoder, and the on-disk cache of frozen features.

Fine-tuning trains the last layers of the encoder (the paper: conv5 + NetVLAD). The
layers before them are frozen, so their output for an image never changes during a run:
:class:`FrozenFeatures` computes it once per image and keeps it on disk as float16, keyed
by the image's content (SHA-1 of the file) and by a hash of the frozen layers (weights,
input size, pixel normalisation), so runs with other seeds or losses reuse it. Each
training step then runs only :class:`TrainablePart`.

Cache layout: ``<cache>/<frozen hash>/features.npy`` (float16, (N, C, H, W), memory-mapped)
and ``keys.json`` (the N image keys in row order); both replaced atomically when images
are added, features first, and rows are only ever appended, so a reader always finds a
row for every key it read. Runs that share a cache take turns adding images (an exclusive
``flock`` on ``.lock``); without it, two runs adding different images at once could leave
one run's keys over the other's features. Holding the lock, a writer also deletes the
temporary files of a writer that was killed mid-write.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path
from seqvpr.vpr.encoder import NetVLADEncoder, images_to_tensor
from seqvpr.vpr.vgg import BLOCKS, conv_indices

__all__ = ["VGG16_CONV_LAYERS", "FrozenPart", "TrainablePart", "split_encoder", "FrozenFeatures", "image_key"]

logger = logging.getLogger(__name__)


def _named_convolutions() -> dict[str, int]:
    named, before = {}, 0
    for block in BLOCKS:
        indices = conv_indices(block)
        named.update({f"conv{block}_{k}": index for k, index in enumerate(indices[before:], start=1)})
        before = len(indices)
    return named


# "convB_K" (the K-th convolution of block B) -> its index in torchvision's VGG16 `features`,
# from the VGG16 table of seqvpr.vpr.vgg (the encoder's backbone keeps these indices).
VGG16_CONV_LAYERS = _named_convolutions()


class FrozenPart(nn.Module):
    """Pixel normalisation and the backbone layers before the first trainable one.

    Shares its layers with the encoder. ``forward``: RGB in [0, 1], (B, 3, H, W) ->
    features (B, C, H', W').
    """

    def __init__(self, encoder: NetVLADEncoder, start: int) -> None:
        super().__init__()
        self.encoder_config = encoder.config
        self.layers = nn.Sequential(*list(encoder.backbone.children())[:start])
        self.register_buffer("_scale", encoder._pixel_scale, persistent=False)
        self.register_buffer("_mean", encoder._pixel_mean, persistent=False)
        self.register_buffer("_std", encoder._pixel_std, persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        # The encoder's memory layout, so that features match its own to the last bit.
        images = images.contiguous(memory_format=torch.channels_last)
        return self.layers((images * self._scale - self._mean) / self._std)

    def fingerprint(self) -> str:
        """A hash of the weights, the input size and the pixel normalisation."""
        digest = hashlib.sha1(json.dumps(self.encoder_config.to_dict(), sort_keys=True).encode())
        digest.update(str(len(self.layers)).encode())
        for name, tensor in sorted(self.layers.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


class TrainablePart(nn.Module):
    """The remaining backbone layers, NetVLAD and PCA (if any); shares them with the encoder.

    ``forward``: frozen features (B, C, H', W') -> descriptors (B, D), L2-normalised.
    """

    def __init__(self, encoder: NetVLADEncoder, start: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*list(encoder.backbone.children())[start:])
        self.netvlad = encoder.netvlad
        self.pca = encoder.pca

    def forward(self, features: Tensor) -> Tensor:
        descriptors = self.netvlad(self.layers(features))
        return self.pca(descriptors) if self.pca is not None else descriptors


def split_encoder(encoder: NetVLADEncoder, trainable_from: str) -> tuple[FrozenPart, TrainablePart]:
    """Splits the encoder at a layer; the frozen part's parameters stop requiring grad.

    Args:
        encoder: the model to fine-tune.
        trainable_from: first trainable layer: a VGG16 convolution (``conv5_1`` trains
            conv5_1..conv5_3 and NetVLAD, the paper's choice) or ``netvlad`` (NetVLAD and
            PCA only).

    Raises:
        SeqvprError: the layer is unknown or not in this encoder's backbone.
    """
    depth = len(encoder.backbone)
    if trainable_from == "netvlad":
        start = depth
    elif trainable_from in VGG16_CONV_LAYERS:
        start = VGG16_CONV_LAYERS[trainable_from]
        if start >= depth:
            last = max((name for name, index in VGG16_CONV_LAYERS.items() if index < depth), key=VGG16_CONV_LAYERS.get)
            raise SeqvprError(
                f"trainable_from {trainable_from!r} is not in this encoder: its backbone has "
                f"{encoder.config.backbone_blocks} VGG16 block(s) and ends at {last}"
            )
    else:
        raise SeqvprError(
            f"trainable_from must be 'netvlad' or one of {', '.join(VGG16_CONV_LAYERS)}, got {trainable_from!r}"
        )
    frozen, trainable = FrozenPart(encoder, start), TrainablePart(encoder, start)
    frozen.requires_grad_(False)
    trainable.requires_grad_(True)
    return frozen, trainable


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Holds an exclusive ``flock`` on the file ``lock`` (created if need be) for the block;
    other processes, and other threads of this one, asking for it wait."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def image_key(path: Path) -> str:
    """The cache key of an image file: SHA-1 of its bytes."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


class FrozenFeatures:
    """Frozen-part outputs of images, computed once and cached (or recomputed each time).

    Args:
        frozen: the frozen part (its fingerprint names the cache folder).
        cache: cache root folder, or None to run the frozen layers on every request (the
            slow path, kept for comparison and for datasets too large to cache).
        device: where features are returned (and computed).
        batch_size: images per batch when computing.
    """

    def __init__(self, frozen: FrozenPart, cache: Path | None, device: torch.device, batch_size: int = 16) -> None:
        self.frozen = frozen.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.folder = None if cache is None else Path(cache) / frozen.fingerprint()
        self._rows: dict[Path, int] = {}
        self._array: np.ndarray | None = None

    @torch.no_grad()
    def _compute(self, paths: Sequence[Path]) -> Tensor:
        from seqvpr.data.images import read_rgb

        outputs = []
        for start in range(0, len(paths), self.batch_size):
            images = [read_rgb(path) for path in paths[start : start + self.batch_size]]
            batch = images_to_tensor(images, self.frozen.encoder_config).to(self.device)
            outputs.append(self.frozen(batch))
        return torch.cat(outputs)

    def prepare(self, paths: Sequence[Path], progress: bool = False) -> None:
        """Makes the features of ``paths`` available, computing and caching missing ones.

        Raises:
            SeqvprError: an image file is missing.
        """
        missing_files = [path for path in paths if not Path(path).is_file()]
        if missing_files:
            raise SeqvprError(f"image {missing_files[0]} does not exist ({len(missing_files)} missing in all)")
        if self.folder is None:
            return
        from tqdm import tqdm

        unique = sorted(set(map(Path, paths)))
        keys = {path: image_key(path) for path in tqdm(unique, desc="hashing images", disable=not progress,
                                                         leave=False)}
        if not set(keys.values()) <= set(self._stored_keys()):
            self._add(keys, progress)
        stored = self._stored_keys()
        position = {key: row for row, key in enumerate(stored)}
        self._rows = {path: position[key] for path, key in keys.items()}
        self._array = self._open()

    def _add(self, keys: dict[Path, str], progress: bool) -> None:
        """Computes and appends the features of the images the cache lacks, holding its lock
        (another run may have added some of them meanwhile)."""
        from tqdm import tqdm

        self.folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.folder / ".lock"):
            # Writers hold the lock, so temporary files here are those of a writer killed mid-write.
            for leftover in [*self.folder.glob(".features.npy.*.tmp"), *self.folder.glob(".keys.json.*.tmp")]:
                leftover.unlink(missing_ok=True)
            stored = self._stored_keys()
            new = sorted({key: path for path, key in keys.items() if key not in stored}.items())
            if not new:
                return
            old = self._open() if stored else None
            features = []
            chunks = range(0, len(new), self.batch_size)
            for start in tqdm(chunks, desc="frozen features", unit="batch", disable=not progress, leave=False):
                chunk = [path for _, path in new[start : start + self.batch_size]]
                features.append(self._compute(chunk).to(torch.float16).cpu().numpy())
            added = np.concatenate(features)
            rows = (len(stored) if old is None else len(old)) + len(added)
            with atomic_path(self.folder / "features.npy") as temporary:
                array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float16,
                                                  shape=(rows, *added.shape[1:]))
                if old is not None:
                    array[: len(old)] = old
                array[rows - len(added):] = added
                array.flush()
                del array
            with atomic_path(self.folder / "keys.json") as temporary:
                temporary.write_text(json.dumps(stored + [key for key, _ in new]), encoding="utf-8")
            logger.info("cached frozen features of %d images in %s", len(new), self.folder)

    def _stored_keys(self) -> list[str]:
        record = self.folder / "keys.json"
        return json.loads(record.read_text(encoding="utf-8")) if record.is_file() else []

    def _open(self) -> np.ndarray:
        return np.load(self.folder / "features.npy", mmap_mode="r")

    def __call__(self, paths: Sequence[Path]) -> Tensor:
        """Frozen features of images (prepared first when caching), float32, (B, C, H', W')."""
        if self.folder is None:
            return self._compute([Path(path) for path in paths])
        rows = [self._rows[Path(path)] for path in paths]
        return torch.from_numpy(np.asarray(self._array[rows], dtype=np.float32)).to(self.device)
