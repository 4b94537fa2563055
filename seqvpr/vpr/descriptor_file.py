"""The descriptors file that ``seqvpr extract`` writes: one ``.npz``, no pickles.

Arrays (the first two are what ``seqvpr align`` reads as a signal, so a descriptors
file can be aligned directly):

- ``times``: (N,) float64, capture time of each image in seconds;
- ``values``: (N, D) float32 or float16, the L2-normalised global descriptors;
- ``image_names``: (N,) str, image paths relative to the input folder or traverse;
- ``positions``: (N, 2) float64, UTM (easting, northing) metres — only when known;
- ``utm_zone``: () str, the zone of ``positions`` (e.g. ``30U``) — only with positions;
- ``skipped``: (M,) str, unreadable images left out (``--skip-bad``), possibly empty;
- ``metadata``: () str, JSON: the encoder config, where the weights came from, the input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqvpr.io import atomic_path

__all__ = ["DescriptorFile", "write_descriptor_file", "read_descriptor_file"]


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
        ValueError: a required array is missing; names the file and the arrays found.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as archive:
        missing = sorted({"times", "values", "image_names"} - set(archive.files))
        if missing:
            raise ValueError(f"{path}: not a descriptors file, missing {missing} (has {sorted(archive.files)})")
        arrays = {key: archive[key] for key in archive.files}
    return DescriptorFile(
        times=arrays["times"],
        values=arrays["values"],
        image_names=arrays["image_names"],
        positions=arrays.get("positions"),
        utm_zone=str(arrays["utm_zone"]) if "utm_zone" in arrays else None,
        skipped=tuple(str(name) for name in arrays.get("skipped", ())),
        metadata=json.loads(str(arrays["metadata"])) if "metadata" in arrays else {},
    )
