"""The slices of an audio data set as a torch Dataset, batched into :class:`Signal` pairs.

A slice is a score excerpt (the query: ``score_frames`` feature frames at score times) and
a performance window (the reference: frames at performance times), with the ground-truth
alignment restricted to the excerpt's score span. Times are absolute seconds of the
score and of the performance recording, so a warp is directly an alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqvpr.align import Signal
from seqvpr.audio.alignment import Alignment
from seqvpr.audio.dataset import SPLITS, AudioDataConfig, read_table, read_truth
from seqvpr.audio.features import FEATURE_DIMS
from seqvpr.config import load_config
from seqvpr.errors import SeqvprError

__all__ = ["AudioSlice", "AudioSlices", "SliceBatch", "collate_slices"]


@dataclass(frozen=True)
class AudioSlice:
    """One slice.

    Attributes:
        name: slice id.
        performance: performance id.
        score_times: score seconds of the query frames, shape (n,).
        score_values: query features, shape (n, D), float32.
        performance_times: performance seconds of the reference frames, shape (N,).
        performance_values: reference features, shape (N, D), float32.
        truth: the true alignment over the slice's score span.
    """

    name: str
    performance: str
    score_times: np.ndarray
    score_values: np.ndarray
    performance_times: np.ndarray
    performance_values: np.ndarray
    truth: Alignment


@dataclass(frozen=True)
class SliceBatch:
    """A batch of slices as GDTW inputs.

    Attributes:
        reference: performance windows, values (B, N, D).
        query: score excerpts, values (B, n, D).
        target: true performance time at each query frame, shape (B, n), float64.
        slices: the slices themselves (names, exact truths).
    """

    reference: Signal
    query: Signal
    target: Tensor
    slices: list[AudioSlice]


class AudioSlices(torch.utils.data.Dataset):
    """The slices of one split for one feature kind.

    Args:
        root: a folder written by ``seqvpr audio-data build``.
        split: ``train``, ``val`` or ``test``.
        kind: ``cqt``, ``chroma`` or ``melspec`` (must have been cached).
        limit: keep only the first ``limit`` slices (None = all).

    Raises:
        SeqvprError: a missing manifest or feature cache, an unknown split or kind.
    """

    def __init__(self, root: str | Path, split: str, kind: str, limit: int | None = None) -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise SeqvprError(f"unknown split {split!r}; expected one of {SPLITS}")
        if kind not in FEATURE_DIMS:
            raise SeqvprError(f"unknown feature type {kind!r}; expected one of {sorted(FEATURE_DIMS)}")
        self.config = load_config(self.root / "config.yaml", AudioDataConfig)
        if kind not in self.config.features:
            raise SeqvprError(f"{self.root} caches features {list(self.config.features)}, not {kind!r}; "
                              f"rebuild it with {kind} in `features`")
        self.kind = kind
        rows = [row for row in read_table(self.root / "slices.csv") if row["split"] == split]
        self.rows = rows[:limit] if limit is not None else rows
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, Alignment]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _performance(self, name: str) -> tuple[np.ndarray, np.ndarray, Alignment]:
        if name not in self._cache:
            path = self.root / "features" / self.kind / f"{name}.npz"
            if not path.is_file():
                raise SeqvprError(f"{path}: missing feature cache; rerun `seqvpr audio-data build`")
            with np.load(path) as cached:
                score, performance = cached["score_values"], cached["performance_values"]
            truth = read_truth(self.root / "performances" / name / "truth.csv")
            self._cache[name] = (score, performance, truth)
        return self._cache[name]

    def __getitem__(self, index: int) -> AudioSlice:
        row = self.rows[index]
        score, performance, truth = self._performance(row["performance"])
        rate = self.config.feature_config.frame_rate
        start, count = int(row["score_start"]), int(row["score_frames"])
        window, length = int(row["performance_start"]), int(row["performance_frames"])
        score_frames = np.arange(start, start + count)
        performance_frames = np.arange(window, window + length)
        score_times = score_frames / rate
        return AudioSlice(
            row["slice"], row["performance"], score_times, score[score_frames],
            performance_frames / rate, performance[performance_frames],
            truth.restrict(float(score_times[0]), float(score_times[-1])),
        )


def collate_slices(slices: list[AudioSlice]) -> SliceBatch:
    """Pads slices into a :class:`SliceBatch` (performance windows differ in length)."""
    reference = Signal.from_sequences(
        [(torch.from_numpy(item.performance_times), torch.from_numpy(item.performance_values)) for item in slices])
    query = Signal.from_sequences(
        [(torch.from_numpy(item.score_times), torch.from_numpy(item.score_values)) for item in slices])
    target = torch.from_numpy(np.stack([item.truth(item.score_times) for item in slices]))
    return SliceBatch(reference, query, target, list(slices))
