"""Shared builders for alignment tests."""

from __future__ import annotations

import numpy as np
import torch

from seqvpr.align import Signal


def random_signal_pair(
    rng: np.random.Generator,
    batch: int = 1,
    reference_length: int = 12,
    query_length: int = 6,
    dim: int = 3,
    smooth: bool = True,
) -> tuple[Signal, Signal]:
    """Reference and query with jittered, strictly increasing times, float64."""

    def times(count: int) -> np.ndarray:
        steps = rng.uniform(0.5, 1.5, size=(batch, count - 1))
        start = rng.uniform(-2, 2, size=(batch, 1))
        return np.concatenate([start, start + np.cumsum(steps, axis=1)], axis=1)

    def values(count: int) -> np.ndarray:
        noise = rng.normal(size=(batch, count, dim))
        return np.cumsum(noise, axis=1) * 0.5 if smooth else noise

    reference = Signal(torch.from_numpy(times(reference_length)), torch.from_numpy(values(reference_length)))
    query = Signal(torch.from_numpy(times(query_length)), torch.from_numpy(values(query_length)))
    return reference, query
