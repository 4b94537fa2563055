"""Nearest-neighbour retrieval of reference frames by descriptor inner product (faiss).

For L2-normalised descriptors the inner product is the cosine similarity and ranks like
the Euclidean distance: ‖q − r‖² = 2 − 2⟨q, r⟩. Index kinds:

- ``flat``: exact search (``IndexFlatIP``), the default;
- ``ivf``: inverted file with exact vectors in each list (``IndexIVFFlat``): probes
  ``nprobe`` of ``nlist`` k-means cells, approximate, memory as flat;
- ``ivfpq``: inverted file with product-quantised residuals (``IndexIVFPQ``): ``m`` bytes
  per vector at 8 bits, for millions of frames.

``device="auto"`` uses a GPU when faiss-gpu is installed and sees one, else the CPU; the
API and the saved file are the same either way. An index is saved together with the map it
indexes: the reference timestamps (s) and positions (UTM easting, northing in metres, plus
the zone) of its rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seqvpr.io import atomic_path
from seqvpr.vpr._faiss import import_faiss

__all__ = ["IndexConfig", "SearchResult", "ReferenceIndex"]

logger = logging.getLogger(__name__)

INDEX_FORMAT = "seqvpr.reference_index"
INDEX_VERSION = 1
IndexKind = Literal["flat", "ivf", "ivfpq"]


@dataclass(frozen=True)
class IndexConfig:
    """How to index reference descriptors.

    Attributes:
        kind: ``"flat"`` (exact), ``"ivf"`` or ``"ivfpq"``.
        nlist: IVF cells; None → round(√N), at most N / 39 (faiss wants ≥ 39 points per cell).
        nprobe: IVF cells visited per query.
        pq_subquantizers: PQ bytes per vector (``m``); must divide the dimension.
        pq_bits: bits per PQ code.
        train_points_per_list: IVF/PQ training uses at most this × nlist descriptors.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    kind: IndexKind = "flat"
    nlist: int | None = None
    nprobe: int = 16
    pq_subquantizers: int = 64
    pq_bits: int = 8
    train_points_per_list: int = 64
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "ivf", "ivfpq"):
            raise ValueError(f"kind must be 'flat', 'ivf' or 'ivfpq', got {self.kind!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.nlist is not None and self.nlist < 1 or self.nprobe < 1:
            raise ValueError(f"nlist and nprobe must be >= 1, got {self.nlist} and {self.nprobe}")


@dataclass(frozen=True)
class SearchResult:
    """Top-k references per query.

    Attributes:
        scores: inner products, shape (M, k), descending per row.
        indices: reference rows, shape (M, k) int64; −1 (score −inf) where the index holds
            fewer than k references or an IVF probe found fewer.
    """

    scores: np.ndarray
    indices: np.ndarray


class ReferenceIndex:
    """A faiss index over reference descriptors plus the map rows it indexes.

    Build with :meth:`build` (one call) or :meth:`empty` + :meth:`train` + :meth:`add`
    (streaming, for more references than fit in memory at once).
    """

    def __init__(self, index: Any, config: IndexConfig, dim: int) -> None:
        self._index = index
        self.config = config
        self.dim = dim
        self.times: np.ndarray | None = None
        self.positions: np.ndarray | None = None
        self.utm_zone: str | None = None
        self._set_nprobe()

    # -- construction ---------------------------------------------------------------
    @classmethod
    def empty(cls, dim: int, config: IndexConfig | None = None, *, num_references: int | None = None) -> ReferenceIndex:
        """An untrained, empty index.

        Args:
            dim: descriptor dimension D.
            config: index settings (default exact inner product on the best device).
            num_references: expected N, used for the default ``nlist``.
        """
        faiss = import_faiss()
        config = config or IndexConfig()
        if config.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            if config.nlist is None and num_references is None:
                raise ValueError("an IVF index needs config.nlist or num_references")
            nlist = config.nlist or max(1, min(round(math.sqrt(num_references)), num_references // 39))
            quantizer = faiss.IndexFlatIP(dim)
            if config.kind == "ivf":
                index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                if dim % config.pq_subquantizers:
                    raise ValueError(
                        f"pq_subquantizers ({config.pq_subquantizers}) must divide the "
                        f"descriptor dimension ({dim})"
                    )
                index = faiss.IndexIVFPQ(
                    quantizer, dim, nlist, config.pq_subquantizers, config.pq_bits,
                    faiss.METRIC_INNER_PRODUCT,
                )
            index.own_fields = True
            quantizer.this.disown()
            config = dataclasses.replace(config, nlist=nlist)
        reference_index = cls(_to_device(index, config.device), config, dim)
        return reference_index

    @classmethod
    def build(
        cls,
        descriptors: np.ndarray,
        config: IndexConfig | None = None,
        *,
        times: np.ndarray | None = None,
        positions: np.ndarray | None = None,
        utm_zone: str | None = None,
        seed: int = 0,
    ) -> ReferenceIndex:
        """Index reference descriptors (training IVF/PQ on a seeded sample of them).

        Args:
            descriptors: shape (N, D); converted to float32.
            config: index settings.
            times: reference timestamps in seconds, shape (N,), optional.
            positions: reference (easting, northing) in UTM metres, shape (N, 2), optional.
            utm_zone: the zone of ``positions``, e.g. ``"30U"``.
            seed: seed of the training sample.
        """
        descriptors = _as_matrix(descriptors, "descriptors")
        index = cls.empty(descriptors.shape[1], config, num_references=len(descriptors))
        if not index.is_trained:
            index.train(descriptors, seed=seed)
        index.add(descriptors, times=times, positions=positions)
        index.utm_zone = utm_zone
        return index

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def num_references(self) -> int:
        return int(self._index.ntotal)

    def train(self, descriptors: np.ndarray, *, seed: int = 0) -> None:
        """Train the IVF cells (and PQ codebooks) on descriptors, shape (N, D), N ≥ nlist."""
        descriptors = self._check(descriptors, "training descriptors")
        if self.config.kind == "flat":
            return
        limit = self.config.train_points_per_list * self.config.nlist
        if len(descriptors) > limit:
            rows = np.random.default_rng(seed).choice(len(descriptors), limit, replace=False)
            descriptors = descriptors[np.sort(rows)]
        if len(descriptors) < self.config.nlist:
            raise ValueError(
                f"training needs at least nlist={self.config.nlist} descriptors, got {len(descriptors)}"
            )
        self._index.train(descriptors)

    def add(
        self,
        descriptors: np.ndarray,
        *,
        times: np.ndarray | None = None,
        positions: np.ndarray | None = None,
    ) -> None:
        """Append references (rows N0..N0+n−1) with their optional times and positions.

        Args:
            descriptors: shape (n, D).
            times: shape (n,), seconds; give it for every call or for none.
            positions: shape (n, 2), UTM (easting, northing) metres; every call or none.
        """
        descriptors = self._check(descriptors, "descriptors")
        if not self.is_trained:
            raise ValueError("train the IVF index before adding references")
        count = len(descriptors)
        first = self.num_references == 0
        new_times = _append(self.times, times, (count,), "times", first)
        new_positions = _append(self.positions, positions, (count, 2), "positions", first)
        self._index.add(descriptors)
        self.times, self.positions = new_times, new_positions

    # -- search ---------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        """The k references with the largest inner product for each query.

        Args:
            queries: shape (M, D).
            k: neighbours per query, ≥ 1.
        """
        queries = self._check(queries, "queries")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scores, indices = self._index.search(queries, k)
        scores = np.where(indices < 0, -np.inf, scores).astype(np.float32)
        return SearchResult(scores=scores, indices=indices.astype(np.int64))

    # -- persistence ----------------------------------------------------------------
    def cpu_faiss_index(self) -> Any:
        """The faiss index itself, copied to the CPU if it lives on a GPU (for faiss's own writers)."""
        faiss = import_faiss()
        return faiss.index_gpu_to_cpu(self._index) if _on_gpu(self._index) else self._index

    def save(self, path: str | Path) -> Path:
        """Write index and map to one ``.npz`` (no pickles), atomically."""
        faiss = import_faiss()
        cpu_index = self.cpu_faiss_index()
        metadata = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "config": dataclasses.asdict(self.config),
            "dim": self.dim,
            "utm_zone": self.utm_zone,
        }
        arrays: dict[str, np.ndarray] = {
            "index": faiss.serialize_index(cpu_index),
            "metadata": np.array(json.dumps(metadata)),
        }
        if self.times is not None:
            arrays["times"] = self.times
        if self.positions is not None:
            arrays["positions"] = self.positions
        path = Path(path)
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: Literal["auto", "cpu", "cuda"] | None = None) -> ReferenceIndex:
        """Read a file written by :meth:`save` (optionally onto another device)."""
        faiss = import_faiss()
        path = Path(path)
        with np.load(path, allow_pickle=False) as archive:
            if "metadata" not in archive or "index" not in archive:
                raise ValueError(f"{path}: not a seqvpr reference index (keys {sorted(archive.files)})")
            metadata = json.loads(str(archive["metadata"]))
            if metadata.get("format") != INDEX_FORMAT or metadata.get("version") != INDEX_VERSION:
                raise ValueError(
                    f"{path}: format {metadata.get('format')!r} version {metadata.get('version')!r} "
                    f"is not {INDEX_FORMAT!r} version {INDEX_VERSION}"
                )
            index = faiss.deserialize_index(archive["index"])
            times = archive["times"] if "times" in archive else None
            positions = archive["positions"] if "positions" in archive else None
        config = IndexConfig(**metadata["config"])
        if device is not None:
            config = dataclasses.replace(config, device=device)
        loaded = cls(_to_device(index, config.device), config, int(metadata["dim"]))
        loaded.times, loaded.positions, loaded.utm_zone = times, positions, metadata["utm_zone"]
        return loaded

    # -- helpers --------------------------------------------------------------------
    def _check(self, matrix: np.ndarray, name: str) -> np.ndarray:
        matrix = _as_matrix(matrix, name)
        if matrix.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (n, {self.dim}), got {matrix.shape}")
        return matrix

    def _set_nprobe(self) -> None:
        if self.config.kind == "flat":
            return
        faiss = import_faiss()
        space = faiss.GpuParameterSpace() if _on_gpu(self._index) else faiss.ParameterSpace()
        space.set_index_parameter(self._index, "nprobe", self.config.nprobe)


def _as_matrix(matrix: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must have shape (n, D), got {matrix.shape}")
    return np.ascontiguousarray(matrix, dtype=np.float32)


def _append(
    existing: np.ndarray | None, new: np.ndarray | None, shape: tuple[int, ...], name: str, first: bool
) -> np.ndarray | None:
    if new is None:
        if existing is not None:
            raise ValueError(f"{name} were given for earlier references; give them for these too")
        return None
    new = np.asarray(new, dtype=np.float64)
    if new.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {new.shape}")
    if existing is None:
        if not first:
            raise ValueError(f"{name} were not given for earlier references")
        return new.copy()
    return np.concatenate([existing, new])


def _gpu_available(faiss: Any) -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _on_gpu(index: Any) -> bool:
    return "Gpu" in type(index).__name__


def _to_device(index: Any, device: str) -> Any:
    faiss = import_faiss()
    if device == "cpu" or (device == "auto" and not _gpu_available(faiss)):
        return index
    if not _gpu_available(faiss):
        raise ValueError(
            "device='cuda' needs faiss-gpu and a visible GPU: `pip install seqvpr[gpu]`"
        )
    resources = faiss.StandardGpuResources()
    gpu_index = faiss.index_cpu_to_gpu(resources, 0, index)
    gpu_index.referenced_objects = [resources]  # keep the resources alive with the index
    return gpu_index
