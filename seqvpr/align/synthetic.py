"""Synthetic signal pairs with a known warp, for demos, tests and benchmarks.

A reference is a smooth random function of time, f(tau) = sum_k a_k sin(w_k tau + p_k) per
feature, sampled at a fixed rate. A query samples the same function at warped times
phi(t) = phi_0 + integral of a tempo that varies smoothly around 1, at jittered times, plus
Gaussian noise. The true warp phi is therefore known exactly at every query time.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from seqvpr.align.signal import Signal

__all__ = ["warped_pair"]


def warped_pair(
    seed: int = 0,
    batch: int = 1,
    dim: int = 16,
    reference_duration_s: float = 60.0,
    reference_rate_hz: float = 1.0,
    query_samples: int = 20,
    query_rate_hz: float = 1.0,
    tempo_variation: float = 0.3,
    noise: float = 0.2,
    subsequence: bool = True,
    dtype: torch.dtype = torch.float32,
) -> tuple[Signal, Signal, Tensor]:
    """Draws B reference/query pairs with a known warp.

    Args:
        seed: random seed; the same seed gives the same pairs.
        batch: number of pairs B.
        dim: feature dimension D.
        reference_duration_s: reference length in seconds.
        reference_rate_hz: reference sampling rate.
        query_samples: query length n (samples).
        query_rate_hz: mean query sampling rate; sample times are jittered by up to 30 %.
        tempo_variation: amplitude of the tempo's variation around 1 (0 = constant speed).
        noise: standard deviation of the Gaussian noise added to the query.
        subsequence: place the query inside the reference (True) or make it span the
            whole reference (False).
        dtype: floating dtype of the returned tensors.

    Returns:
        ``(reference, query, true_warp)``: two :class:`Signal` batches and the true
        reference time at every query sample, shape (B, n).
    """
    rng = np.random.default_rng(seed)
    components = 6
    amplitude = rng.normal(size=(batch, components, dim)) / math.sqrt(components)
    frequency = rng.uniform(0.15, 0.9, size=(batch, components, 1))
    phase = rng.uniform(0, 2 * math.pi, size=(batch, components, dim))

    def evaluate(at: np.ndarray) -> np.ndarray:  # (B, K) -> (B, K, D)
        angles = frequency[:, None] * at[:, :, None, None] + phase[:, None]
        return (amplitude[:, None] * np.sin(angles)).sum(axis=2)

    reference_count = int(round(reference_duration_s * reference_rate_hz)) + 1
    reference_times = np.tile(np.arange(reference_count) / reference_rate_hz, (batch, 1))

    period = 1.0 / query_rate_hz
    steps = period * (1.0 + rng.uniform(-0.3, 0.3, size=(batch, query_samples - 1)))
    query_times = np.concatenate([np.zeros((batch, 1)), np.cumsum(steps, axis=1)], axis=1)
    query_times += rng.uniform(0, 100, size=(batch, 1))  # queries keep their own clock
    elapsed = query_times - query_times[:, :1]
    wobble = rng.uniform(0, 2 * math.pi, size=(batch, 1))
    cycle = elapsed[:, -1:] + 1e-9
    # phi' = 1 + v sin(2 pi s / T + w), integrated in closed form.
    progress = elapsed + tempo_variation * cycle / (2 * math.pi) * (
        np.cos(wobble) - np.cos(2 * math.pi * elapsed / cycle + wobble)
    )
    span = reference_times[:, -1:]
    if subsequence:
        length = progress[:, -1:]
        if bool((length >= span).any()):
            raise ValueError("query_samples / query_rate_hz is too long for the reference")
        start = rng.uniform(0.1, 0.9, size=(batch, 1)) * (span - length)
        true_warp = start + progress
    else:
        true_warp = progress / progress[:, -1:] * span
    query_values = evaluate(true_warp) + noise * rng.normal(size=(batch, query_samples, dim))

    def tensor(array: np.ndarray) -> Tensor:
        return torch.from_numpy(array).to(dtype)

    reference = Signal(tensor(reference_times), tensor(evaluate(reference_times)))
    query = Signal(tensor(query_times), tensor(query_values))
    return reference, query, tensor(true_warp)
