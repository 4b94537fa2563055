"""A torch ``Dataset`` over sequence pairs: images with times, positions and true warp."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from seqvpr.data.images import read_rgb
from seqvpr.data.pair_files import read_pairs
from seqvpr.data.pairs import SequencePair

__all__ = ["SequencePairDataset", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SequencePairDataset(Dataset):
    """Sequence pairs from a pairs CSV, with their images loaded and normalised.

    Each item is a dict:

    - ``reference_images``: (R, 3, H, W) float32, RGB normalised by ``mean``/``std``;
    - ``query_images``: (Q, 3, H, W) float32;
    - ``reference_times``: (R,) float64 seconds since the reference's first frame;
    - ``query_times``: (Q,) float64 seconds since the query's first frame;
    - ``reference_positions``: (R, 2) float64 (easting, northing) UTM metres;
    - ``query_positions``: (Q, 2) float64;
    - ``true_warp``: (Q,) float64 reference time of each query frame;
    - ``true_positions``: (Q, 2) float64 projection of the query onto the reference;
    - ``index``: the pair's row in the CSV (0-based, int).

    Positions stay float64: UTM northings (~5.7e6 m) lose metres in float32.

    Args:
        pairs_csv: a file written by ``seqvpr pairs``.
        traverse_root: directory holding ``<traverse>/<image path>``.
        image_size: (W, H) to resize every image to, or None to keep their size.
        mean, std: per-channel normalisation of RGB values in 0..1.
    """

    def __init__(
        self,
        pairs_csv: str | os.PathLike,
        traverse_root: str | os.PathLike,
        image_size: tuple[int, int] | None = (240, 180),
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        self.pairs: list[SequencePair] = read_pairs(pairs_csv)
        self.traverse_root = Path(traverse_root)
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, traverse: str, images: np.ndarray) -> torch.Tensor:
        import cv2

        frames = []
        for image in images:
            rgb = read_rgb(self.traverse_root / traverse / str(image))
            if self.image_size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(self.image_size):
                rgb = cv2.resize(rgb, tuple(self.image_size), interpolation=cv2.INTER_AREA)
            frames.append(torch.from_numpy(np.ascontiguousarray(rgb)))
        stacked = torch.stack(frames).permute(0, 3, 1, 2).float() / 255.0
        return (stacked - self.mean) / self.std

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        return {
            "reference_images": self._load(pair.reference, pair.reference_images),
            "query_images": self._load(pair.query, pair.query_images),
            "reference_times": torch.from_numpy(pair.reference_times_s.copy()),
            "query_times": torch.from_numpy(pair.query_times_s.copy()),
            "reference_positions": torch.from_numpy(pair.reference_positions.copy()),
            "query_positions": torch.from_numpy(pair.query_positions.copy()),
            "true_warp": torch.from_numpy(pair.true_warp_s.copy()),
            "true_positions": torch.from_numpy(pair.true_positions.copy()),
            "index": index,
        }
