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
from seqvpr.vpr.encoder import image_to_tensor

__all__ = ["SequencePairDataset"]


class SequencePairDataset(Dataset):
    """Sequence pairs from a pairs CSV, with their images loaded.

    Images are RGB in [0, 1], resized like the encoder's own input
    (:func:`seqvpr.vpr.encoder.image_to_tensor`); the encoder normalises them, so a
    batch goes straight into :class:`~seqvpr.vpr.encoder.NetVLADEncoder`. Each item is a dict:

    - ``reference_images``: (R, 3, H, W) float32, RGB in [0, 1];
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
        image_size: (W, H) to resize every image to (the encoder's ``image_width``,
            ``image_height``), or None to keep their size.
    """

    def __init__(
        self,
        pairs_csv: str | os.PathLike,
        traverse_root: str | os.PathLike,
        image_size: tuple[int, int] | None = (240, 180),
    ) -> None:
        self.pairs: list[SequencePair] = read_pairs(pairs_csv)
        self.traverse_root = Path(traverse_root)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, traverse: str, images: np.ndarray) -> torch.Tensor:
        frames = [image_to_tensor(read_rgb(self.traverse_root / traverse / str(image)), self.image_size)
                  for image in images]
        return torch.stack(frames)

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
