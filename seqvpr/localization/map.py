"""Maps: the reference traverses a robot localizes against, as one folder on disk.

A map folder holds, for one or several reference traverses (e.g. several conditions of
one route), their frames' descriptors, times, positions and headings as memory-mapped
``.npy`` arrays, one faiss index over all frames, and ``map.yaml`` describing them::

    MAP/map.yaml          format, version, encoder fingerprint and config, UTM zone,
                          index kind, and per traverse: name, condition, first row, frames
    MAP/descriptors.npy   (N, D) float32, unit L2 norm, rows grouped by traverse (centred:
                          see below)
    MAP/centres.npy       (T, D) float32, per traverse the mean descriptor subtracted
                          (only in a map built with condition centring)
    MAP/projection.npy    (D, d) float32, orthonormal columns: the principal directions the
                          index's vectors are projected onto (only when d < D)
    MAP/times.npy         (N,) float64, capture times (s), increasing within a traverse
    MAP/positions.npy     (N, 2) float64, UTM (easting, northing) metres
    MAP/headings.npy      (N,) float64, ENU radians
    MAP/successor_inner.npy  (N,) float64, inner product of each descriptor with the next
                          one of its traverse (0 at a traverse's end)
    MAP/index.faiss       faiss index over descriptors.npy, projected when projection.npy
                          is there (exact IndexFlatIP up to
                          ``exact_max_frames``, IVF or IVF-PQ beyond)

Loading maps the arrays and the index into memory lazily (``np.load(mmap_mode="r")``,
faiss ``IO_FLAG_MMAP``), so opening a 100k-frame map costs milliseconds, not a read of
every descriptor. A window of reference frames never spans two traverses: rows
``first_row .. first_row + frames - 1`` are one traverse.

**Condition centring** (``MapConfig.centre``, on by default; ``centring: traverse_mean`` in
map.yaml). A condition adds much the same to the descriptor of every image of a traverse:
night darkens every frame, snow whitens it. Subtracting the traverse's mean descriptor
(then normalising again) removes that shared part and keeps what tells places apart; the
localizer subtracts a running mean of the query's own keyframes in the same way. On the
synthetic world this lifts the share of sunny keyframes whose nearest map frame is within
10 m from 17 % to 57 % with the demo's encoder (docs/localization.md).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seqvpr.data.geo import UtmZone
from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path
from seqvpr.localization.config import MapConfig

__all__ = ["MAP_FORMAT", "MAP_VERSION", "Map", "MapTraverse", "MapPart", "load_map", "write_map", "build_map"]

LOGGER = logging.getLogger(__name__)

MAP_FORMAT = "seqvpr.map"
MAP_VERSION = 2  # 2: condition centring (``centring``, centres.npy); 1 (no centring) is still read
READABLE_VERSIONS = (1, 2)
MAP_YAML = "map.yaml"
ARRAYS = {"descriptors": 2, "times": 1, "positions": 2, "headings": 1, "successor_inner": 1}
INDEX_FILE = "index.faiss"
CENTRES_FILE = "centres.npy"
PROJECTION_FILE = "projection.npy"
PCA_SAMPLE = 20_000  # map rows the principal directions are fitted on
# A projected index proposes max(SHORTLIST_FACTOR * k, SHORTLIST_MIN) frames for the exact re-rank.
SHORTLIST_FACTOR = 4
SHORTLIST_MIN = 32
# Searches of a flat index for at most this many queries run on one faiss thread.
SINGLE_THREAD_QUERIES = 2


@dataclass(frozen=True)
class MapTraverse:
    """One reference traverse inside a map: rows ``first_row .. first_row + frames - 1``."""

    name: str
    condition: str
    first_row: int
    frames: int


@dataclass(frozen=True)
class MapPart:
    """One traverse to write into a map.

    Attributes:
        name, condition: the traverse's name and condition label.
        times: capture times (s), shape (n,), strictly increasing.
        positions: UTM (easting, northing) metres, shape (n, 2).
        headings: ENU radians, shape (n,).
        descriptors: shape (n, D); normalised to unit L2 norm when written.
    """

    name: str
    condition: str
    times: np.ndarray
    positions: np.ndarray
    headings: np.ndarray
    descriptors: np.ndarray


class Map:
    """A loaded map (arrays memory-mapped; the faiss index loads on first search).

    Attributes:
        root: the map folder.
        descriptors: (N, D) float32.
        times: (N,) float64 seconds.
        positions: (N, 2) float64 UTM (easting, northing) metres.
        headings: (N,) float64 ENU radians.
        successor_inner: (N,) float64, <descriptor k, descriptor k + 1> within a
            traverse (0 for a traverse's last frame), for the alignment.
        traverses: the traverses, in row order.
        zone: UTM zone of every position.
        fingerprint: fingerprint of the encoder that made the descriptors.
        encoder: that encoder's config (a plain dict).
        index_kind: ``flat``, ``ivf`` or ``ivfpq``.
        centres: (T, D) float32, each traverse's subtracted mean descriptor, or None for a
            map built without condition centring.
        projection: (D, d) float32 with orthonormal columns, the directions the index's
            vectors are projected onto, or None when the index holds whole descriptors.
    """

    def __init__(self, root: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.root = root
        self.descriptors = arrays["descriptors"]
        # Plain ndarray views of the memory maps (no copy): indexing a np.memmap wraps every
        # result in a new memmap object, which the per-keyframe lookups paid for.
        self.times = np.asarray(arrays["times"])
        self.positions = np.asarray(arrays["positions"])
        self.headings = np.asarray(arrays["headings"])
        self.successor_inner = np.asarray(arrays["successor_inner"])
        self.traverses = tuple(MapTraverse(**item) for item in meta["traverses"])
        self.zone = UtmZone.parse(meta["utm_zone"])
        self.fingerprint = str(meta["encoder_fingerprint"])
        self.encoder = dict(meta.get("encoder") or {})
        self.index_kind = str(meta["index"]["kind"])
        self.nprobe = int(meta["index"].get("nprobe", 16))
        self._starts = np.array([t.first_row for t in self.traverses] + [len(self.times)], dtype=np.int64)
        self.centres = arrays.get("centres")
        self.projection = arrays.get("projection")
        self._index = None
        self._projection_tensor = None
        self._path_length: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.times)

    @property
    def dim(self) -> int:
        return int(self.descriptors.shape[1])

    @property
    def centred(self) -> bool:
        """Whether the descriptors were condition-centred (queries must be centred too)."""
        return self.centres is not None

    @property
    def centre_prior(self) -> np.ndarray:
        """The mean of the traverses' centres, shape (D,): a query's mean before it has its own."""
        if self.centres is None:
            raise SeqvprError(f"{self.root}: map built without condition centring has no centres")
        return np.asarray(self.centres, dtype=np.float64).mean(axis=0)

    def proposal_vectors(self, values: np.ndarray) -> np.ndarray:
        """Descriptors (n, D) as the index holds them: projected and normalised, float32."""
        values = np.asarray(values, dtype=np.float32)
        if self.projection is None:
            return values
        import torch

        # torch, not numpy: numpy's BLAS threads keep spinning after the product and steal
        # the cores faiss and the alignment need next.
        if self._projection_tensor is None:  # (D, d) in memory: read once, not per keyframe
            self._projection_tensor = torch.from_numpy(np.array(self.projection, dtype=np.float32))
        projected = (torch.from_numpy(values) @ self._projection_tensor).numpy()
        return projected / np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)

    def neighbours(self, values: np.ndarray, k: int) -> np.ndarray:
        """Rows of the k map frames most similar to each of ``values`` (n, D), shape (n, k).

        An index of whole descriptors is searched directly. An index of projections
        (``projection``) yields a shortlist of ``max(SHORTLIST_FACTOR * k, SHORTLIST_MIN)``
        frames, which are then ranked by their exact inner products with the whole
        descriptors: the result is the exact top k whenever the shortlist holds it, at a
        fraction of the scan's bytes. Rows are -1 where fewer than k frames were found.
        """
        from seqvpr.vpr._faiss import faiss_threads

        values = np.asarray(values, dtype=np.float32)
        # The localizer searches one new keyframe at a time: one thread scans a flat index
        # fastest (an IVF index's probed lists are worth sharing out).
        single = self.index_kind == "flat" and len(values) <= SINGLE_THREAD_QUERIES
        threads = faiss_threads(1) if single else contextlib.nullcontext()
        with threads:
            if self.projection is None:
                return self.index.search(values, k).indices
            shortlist = self.index.search(self.proposal_vectors(values),
                                          max(SHORTLIST_FACTOR * k, SHORTLIST_MIN)).indices
        rows = np.full((len(values), k), -1, dtype=np.int64)
        for i, candidates in enumerate(shortlist):
            candidates = candidates[candidates >= 0]
            order = np.sort(candidates)  # ascending rows read the memory map in order
            scores = np.asarray(self.descriptors[order], dtype=np.float32) @ values[i]
            best = order[np.argsort(-scores, kind="stable")[:k]]
            rows[i, : len(best)] = best
        return rows

    @property
    def index(self):
        """The faiss index as a :class:`seqvpr.vpr.ReferenceIndex` (loaded on first use)."""
        if self._index is None:
            dim = self.dim if self.projection is None else int(self.projection.shape[1])
            self._index = _read_index(self.root / INDEX_FILE, self.index_kind, self.nprobe, dim)
        return self._index

    @property
    def path_length_m(self) -> np.ndarray:
        """Distance travelled since the start of each row's traverse, shape (N,), metres."""
        if self._path_length is None:
            steps = np.linalg.norm(np.diff(np.asarray(self.positions), axis=0), axis=1)
            steps[self._starts[1:-1] - 1] = 0.0  # no step across a traverse boundary
            total = np.concatenate([[0.0], np.cumsum(steps)])
            self._path_length = total - np.repeat(total[self._starts[:-1]], np.diff(self._starts))
        return self._path_length

    def traverse_of(self, rows: np.ndarray) -> np.ndarray:
        """Traverse number of each row, shape like ``rows``."""
        return np.searchsorted(self._starts, rows, side="right") - 1

    def rows_of(self, traverse: int) -> slice:
        """The rows of traverse number ``traverse``."""
        return slice(int(self._starts[traverse]), int(self._starts[traverse + 1]))

    def window_rows(self, traverse: int, start_s: float, end_s: float) -> slice:
        """Rows of ``traverse`` covering [start_s, end_s]: the frames inside plus the frame before and after."""
        rows = self.rows_of(traverse)
        times = self.times[rows]
        first = max(int(np.searchsorted(times, start_s, side="right")) - 1, 0)
        last = min(int(np.searchsorted(times, end_s, side="left")) + 1, len(times))
        return slice(rows.start + first, rows.start + last)

    def positions_at(self, traverses: np.ndarray, times_s: np.ndarray) -> np.ndarray:
        """Positions (K, 2) of ``traverses[k]`` at ``times_s[k]``: :meth:`pose_at`'s position
        for K lookups at once."""
        traverses, times_s = np.asarray(traverses, dtype=np.int64), np.asarray(times_s, dtype=np.float64)
        out = np.empty((len(times_s), 2))
        for traverse in np.unique(traverses):
            pick = traverses == traverse
            start, stop = int(self._starts[traverse]), int(self._starts[traverse + 1])
            times = self.times[start:stop]
            clipped = np.clip(times_s[pick], times[0], times[-1])
            upper = np.clip(np.searchsorted(times, clipped, side="right"), 1, len(times) - 1)
            span = times[upper] - times[upper - 1]
            fraction = np.divide(clipped - times[upper - 1], span, out=np.zeros_like(span), where=span > 0)
            out[pick] = ((1 - fraction)[:, None] * self.positions[start + upper - 1]
                         + fraction[:, None] * self.positions[start + upper])
        return out

    def pose_at(self, traverse: int, time_s: float) -> tuple[np.ndarray, float]:
        """Position (easting, northing) and heading of ``traverse`` interpolated at ``time_s``."""
        rows = self.rows_of(traverse)
        times = self.times[rows]
        time_s = float(np.clip(time_s, times[0], times[-1]))
        upper = int(np.clip(np.searchsorted(times, time_s, side="right"), 1, len(times) - 1))
        lower = upper - 1
        span = times[upper] - times[lower]
        fraction = (time_s - times[lower]) / span if span > 0 else 0.0
        a, b = rows.start + lower, rows.start + upper
        position = (1 - fraction) * self.positions[a] + fraction * self.positions[b]
        turn = np.angle(np.exp(1j * (self.headings[b] - self.headings[a])))
        heading = float(np.angle(np.exp(1j * (self.headings[a] + fraction * turn))))
        return np.asarray(position, dtype=np.float64), heading


def load_map(path: str | Path) -> Map:
    """Open a map folder.

    Raises:
        SeqvprError: not a map, a missing or malformed file (named), arrays that disagree.
    """
    root = Path(path)
    meta_path = root / MAP_YAML
    if not meta_path.is_file():
        raise SeqvprError(f"{root}: not a seqvpr map (no {MAP_YAML}); build one with `seqvpr map build`")
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SeqvprError(f"{meta_path}: not valid YAML ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != MAP_FORMAT:
        raise SeqvprError(f"{meta_path}: format is not {MAP_FORMAT!r}")
    if meta.get("version") not in READABLE_VERSIONS:
        raise SeqvprError(f"{meta_path}: map version {meta.get('version')!r}; this seqvpr reads "
                          f"{' and '.join(map(str, READABLE_VERSIONS))}")
    for key in ("encoder_fingerprint", "utm_zone", "traverses", "index", "frames"):
        if key not in meta:
            raise SeqvprError(f"{meta_path}: missing key {key!r}")
    arrays = {}
    for name, ndim in ARRAYS.items():
        file = root / f"{name}.npy"
        if not file.is_file():
            raise SeqvprError(f"{root}: map file {file.name} is missing")
        try:
            arrays[name] = np.load(file, mmap_mode="r", allow_pickle=False)
        except ValueError as error:
            raise SeqvprError(f"{file}: not a readable .npy array ({error})") from error
        if arrays[name].ndim != ndim or len(arrays[name]) != meta["frames"]:
            raise SeqvprError(
                f"{file}: shape {arrays[name].shape} does not fit {meta['frames']} frames in {MAP_YAML}"
            )
    centring = meta.get("centring", "none")
    if centring not in ("none", "traverse_mean"):
        raise SeqvprError(f"{meta_path}: centring must be 'none' or 'traverse_mean', got {centring!r}")
    if centring == "traverse_mean":
        file = root / CENTRES_FILE
        if not file.is_file():
            raise SeqvprError(f"{root}: map file {CENTRES_FILE} is missing (map.yaml says centring: traverse_mean)")
        try:
            arrays["centres"] = np.load(file, allow_pickle=False)
        except ValueError as error:
            raise SeqvprError(f"{file}: not a readable .npy array ({error})") from error
        expected = (len(meta["traverses"]), arrays["descriptors"].shape[1])
        if arrays["centres"].shape != expected or not np.all(np.isfinite(arrays["centres"])):
            raise SeqvprError(f"{file}: shape {arrays['centres'].shape} (finite values), expected {expected}")
    proposal_dim = meta.get("proposal_dim")
    if proposal_dim is not None:
        file = root / PROJECTION_FILE
        if not file.is_file():
            raise SeqvprError(f"{root}: map file {PROJECTION_FILE} is missing (map.yaml says proposal_dim: "
                              f"{proposal_dim})")
        try:
            arrays["projection"] = np.load(file, allow_pickle=False)
        except ValueError as error:
            raise SeqvprError(f"{file}: not a readable .npy array ({error})") from error
        expected = (arrays["descriptors"].shape[1], proposal_dim)
        if arrays["projection"].shape != expected or not np.all(np.isfinite(arrays["projection"])):
            raise SeqvprError(f"{file}: shape {arrays['projection'].shape} (finite values), expected {expected}")
    if arrays["positions"].shape[1] != 2:
        raise SeqvprError(f"{root / 'positions.npy'}: shape {arrays['positions'].shape}, expected (N, 2)")
    if not (root / INDEX_FILE).is_file():
        raise SeqvprError(f"{root}: map file {INDEX_FILE} is missing")
    try:
        loaded = Map(root, arrays, meta)
    except (KeyError, TypeError, ValueError) as error:
        raise SeqvprError(f"{meta_path}: malformed ({error})") from error
    if loaded._starts[0] != 0 or np.any(np.diff(loaded._starts) < 2):
        raise SeqvprError(f"{meta_path}: traverse rows must start at 0 and hold at least 2 frames each")
    return loaded


def write_map(
    out: str | Path,
    parts: Sequence[MapPart],
    *,
    zone: str,
    fingerprint: str,
    encoder: dict[str, Any],
    config: MapConfig | None = None,
) -> Map:
    """Write a map folder from per-traverse arrays (the last files written are index, yaml).

    Args:
        out: the map folder (created).
        parts: the traverses, each with at least two frames.
        zone: UTM zone of every position, e.g. ``"30U"``.
        fingerprint: fingerprint of the encoder that made the descriptors.
        encoder: that encoder's config, stored for information.
        config: index and centring settings.
    """
    from seqvpr.vpr.retrieval import IndexConfig, ReferenceIndex

    config = config or MapConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [part.name for part in parts]
    if not parts or len(set(names)) != len(names):
        raise SeqvprError(f"a map needs one or more traverses with distinct names, got {names}")
    for part in parts:
        if len(part.times) < 2 or np.any(np.diff(part.times) <= 0):
            raise SeqvprError(f"traverse {part.name}: needs >= 2 frames with strictly increasing times")
    descriptors = np.concatenate([np.asarray(part.descriptors, dtype=np.float32) for part in parts])
    norms = np.linalg.norm(descriptors, axis=1, keepdims=True)
    if not np.all(np.isfinite(descriptors)) or np.any(norms == 0):
        raise SeqvprError("map descriptors must be finite and non-zero")
    descriptors /= norms
    first_rows = np.cumsum([0] + [len(part.times) for part in parts])
    centres = None
    if config.centre:
        centres = np.stack([descriptors[a:b].mean(axis=0, dtype=np.float64)
                            for a, b in zip(first_rows[:-1], first_rows[1:])]).astype(np.float32)
        for traverse, (a, b) in enumerate(zip(first_rows[:-1], first_rows[1:])):
            descriptors[a:b] -= centres[traverse]
        norms = np.linalg.norm(descriptors, axis=1, keepdims=True)
        if np.any(norms <= 1e-6):
            raise SeqvprError("map descriptors: a frame equals its traverse's mean descriptor, so centring leaves "
                              "nothing of it; build the map with centring off (MapConfig.centre = False)")
        descriptors /= norms
    successor = np.zeros(len(descriptors))
    successor[:-1] = np.einsum("nd,nd->n", descriptors[:-1], descriptors[1:], dtype=np.float64)
    successor[first_rows[1:] - 1] = 0.0
    arrays = {
        "descriptors": descriptors,
        "successor_inner": successor,
        "times": np.concatenate([np.asarray(part.times, dtype=np.float64) for part in parts]),
        "positions": np.concatenate([np.asarray(part.positions, dtype=np.float64) for part in parts]),
        "headings": np.concatenate([np.asarray(part.headings, dtype=np.float64) for part in parts]),
    }
    if centres is not None:
        arrays["centres"] = centres
    else:
        (out / CENTRES_FILE).unlink(missing_ok=True)
    indexed = descriptors
    if config.proposal_dim is not None and config.proposal_dim < descriptors.shape[1]:
        arrays["projection"] = _principal_directions(descriptors, config.proposal_dim)
        indexed = descriptors @ arrays["projection"]
        indexed /= np.maximum(np.linalg.norm(indexed, axis=1, keepdims=True), 1e-12)
    else:
        (out / PROJECTION_FILE).unlink(missing_ok=True)
    for name, array in arrays.items():
        with atomic_path(out / f"{name}.npy") as temporary, open(temporary, "wb") as handle:
            np.save(handle, array)
    count = len(descriptors)
    kind = "flat" if count <= config.exact_max_frames else config.large_index
    index_config = IndexConfig(kind=kind, nlist=config.nlist, nprobe=config.nprobe,
                               pq_subquantizers=config.pq_subquantizers, device="cpu")
    index = ReferenceIndex.build(indexed, index_config)
    _write_index(index, out / INDEX_FILE)
    meta = {
        "format": MAP_FORMAT,
        "version": MAP_VERSION,
        "frames": int(count),
        "dim": int(descriptors.shape[1]),
        "utm_zone": str(zone),
        "encoder_fingerprint": str(fingerprint),
        "encoder": encoder,
        "index": {"kind": kind, "nlist": index.config.nlist, "nprobe": config.nprobe},
        "centring": "traverse_mean" if centres is not None else "none",
        "proposal_dim": int(indexed.shape[1]) if "projection" in arrays else None,
        "traverses": [
            {"name": part.name, "condition": part.condition, "first_row": int(first), "frames": len(part.times)}
            for part, first in zip(parts, first_rows)
        ],
    }
    with atomic_path(out / MAP_YAML) as temporary:
        temporary.write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    LOGGER.info("wrote map %s: %d traverses, %d frames, %s index", out, len(parts), count, kind)
    return load_map(out)


def build_map(
    traverse_dirs: Sequence[str | Path],
    model: str | Path,
    out: str | Path,
    config: MapConfig | None = None,
    *,
    progress: bool = True,
) -> Map:
    """Encode traverse folders with an encoder checkpoint and write them as one map.

    Frames closer than ``config.reference_spacing_m`` of path to the previous kept one are
    left out. Each traverse's descriptors are kept in ``out/partial/<name>.npz`` (a descriptors
    file tagged with the encoder fingerprint) until the map is written, so an interrupted
    build resumes where it stopped; a complete map of the same traverses and encoder is
    returned as it is.

    Args:
        traverse_dirs: prepared traverse folders (``traverse.csv``), all in one UTM zone.
        model: encoder checkpoint (any format :func:`seqvpr.vpr.load_encoder` reads).
        out: the map folder.
        config: index and encoding settings.
        progress: show progress bars.
    """
    from seqvpr.data.traverse import read_traverse
    from tqdm import tqdm

    from seqvpr.extraction import (
        DescriptorFile,
        encode_images,
        encoder_fingerprint,
        read_descriptor_file,
        write_descriptor_file,
    )
    from seqvpr.vpr import load_encoder

    config = config or MapConfig()
    from seqvpr.data.pairs import distance_subsample

    traverses = []
    for directory in traverse_dirs:
        traverse = read_traverse(directory)
        if config.reference_spacing_m > 0:
            keep = np.zeros(len(traverse), dtype=bool)
            keep[distance_subsample(traverse.path_length_m, 0, config.reference_spacing_m)] = True
            traverse = traverse.subset(keep)
        traverses.append(traverse)
    zones = {str(traverse.zone) for traverse in traverses}
    if len(zones) != 1:
        raise SeqvprError(f"map traverses must share one UTM zone, got {sorted(zones)}")
    encoder = load_encoder(model).to(config.device).eval()
    fingerprint = encoder_fingerprint(encoder)
    if (Path(out) / MAP_YAML).is_file():
        existing = load_map(out)
        same_traverses = [(t.name, t.frames) for t in existing.traverses] == [(t.name, len(t)) for t in traverses]
        wanted = config.proposal_dim if config.proposal_dim is not None and config.proposal_dim < existing.dim else None
        same_index = (None if existing.projection is None else existing.projection.shape[1]) == wanted
        if existing.fingerprint == fingerprint and same_traverses and existing.centred == config.centre and same_index:
            LOGGER.info("map %s is complete; nothing to do", out)
            return existing
    partial = Path(out) / "partial"
    parts = []
    for traverse in traverses:
        cache = partial / f"{traverse.name}.npz"
        values = None
        if cache.is_file():
            cached = read_descriptor_file(cache)
            if cached.metadata.get("encoder_fingerprint") == fingerprint and len(cached.times) == len(traverse):
                values = cached.values
        if values is None:
            paths = [traverse.image_path(i) for i in range(len(traverse))]
            with tqdm(total=len(paths), unit="img", desc=f"map {traverse.name}", disable=not progress) as bar:
                values, _, unreadable = encode_images(encoder, paths, config.batch_size, config.device, bar)
            if unreadable:
                raise SeqvprError(f"traverse {traverse.name}: unreadable image(s), e.g. {unreadable[0]}")
            write_descriptor_file(cache, DescriptorFile(
                times=traverse.times_s, values=values, image_names=np.asarray(traverse.image_paths, dtype=str),
                metadata={"encoder_fingerprint": fingerprint, "traverse": traverse.name},
            ))
        parts.append(MapPart(traverse.name, traverse.condition, traverse.times_s, traverse.positions,
                             traverse.headings_rad, values))
    result = write_map(out, parts, zone=zones.pop(), fingerprint=fingerprint,
                       encoder=encoder.config.to_dict(), config=config)
    shutil.rmtree(partial)
    return result


def _principal_directions(descriptors: np.ndarray, dim: int) -> np.ndarray:
    """(D, dim) float32 orthonormal columns: the top right singular vectors of the
    descriptors (of a seeded sample of ``PCA_SAMPLE`` rows on large maps). The rows are
    unit vectors whose traverse means were removed (or not), so no mean is subtracted:
    the directions keep the most of their inner products."""
    import torch

    rows = descriptors
    if len(rows) > PCA_SAMPLE:
        pick = np.sort(np.random.default_rng(0).choice(len(rows), PCA_SAMPLE, replace=False))
        rows = rows[pick]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        _, _, vectors = torch.svd_lowrank(torch.from_numpy(np.asarray(rows, dtype=np.float32)), q=min(
            dim + 16, *rows.shape), niter=4)
    finally:
        torch.random.set_rng_state(generator_state)
    basis = vectors[:, :dim].numpy().astype(np.float32)
    if basis.shape[1] < dim:  # fewer rows than directions: complete the basis
        extra = np.linalg.qr(np.hstack([basis, np.eye(basis.shape[0], dim, dtype=np.float32)]))[0]
        basis = extra[:, :dim].astype(np.float32)
    return basis


def _write_index(index, path: Path) -> None:
    from seqvpr.vpr._faiss import import_faiss

    faiss = import_faiss()
    with atomic_path(path) as temporary:
        # A plain faiss file (not ReferenceIndex's .npz), so that loading can memory-map it.
        faiss.write_index(index.cpu_faiss_index(), str(temporary))


def _read_index(path: Path, kind: str, nprobe: int, dim: int):
    from seqvpr.vpr._faiss import import_faiss
    from seqvpr.vpr.retrieval import IndexConfig, ReferenceIndex

    faiss = import_faiss()
    flags = faiss.IO_FLAG_MMAP_IFC if kind == "flat" else faiss.IO_FLAG_MMAP
    try:
        index = faiss.read_index(str(path), flags | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as error:
        raise SeqvprError(f"{path}: not a readable faiss index ({str(error).splitlines()[0]})") from error
    if index.d != dim:
        raise SeqvprError(f"{path}: index dimension {index.d} differs from the map's descriptors ({dim})")
    return ReferenceIndex(index, IndexConfig(kind=kind, nprobe=nprobe, device="cpu"), dim)
