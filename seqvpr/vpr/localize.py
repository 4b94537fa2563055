"""Sequence localization: query poses read off a geotagged reference at the aligned times.

Given a reference sequence (descriptors, times, positions) and a query sequence
(descriptors, times), each method assigns every query frame a reference time; the
predicted query position is the reference track, linear in time between frames,
evaluated there:

- ``gdtw``: subsequence GDTW (continuous-time warp, lambda = 0.1 by default) — the paper's
  Base (G) and, with fine-tuned descriptors, DecDTW;
- ``dtw``: classic subsequence DTW; a query frame matched to several reference frames takes
  their mean time — the paper's Base (D);
- ``independent``: each query frame on its own takes the time of its nearest reference
  frame in descriptor space (Indep).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqvpr.align import GDTWConfig, Signal, dtw, gdtw, pairwise_sq_distances

__all__ = ["METHODS", "Localization", "LocalizerConfig", "localize"]

METHODS = ("gdtw", "dtw", "independent")


@dataclass(frozen=True)
class LocalizerConfig:
    """How query frames are placed on the reference.

    Attributes:
        method: one of ``gdtw``, ``dtw``, ``independent``.
        gdtw: GDTW options for ``method="gdtw"`` (the paper: subsequence, lambda 0.1, M 50).
    """

    method: str = "gdtw"
    gdtw: GDTWConfig = field(default_factory=lambda: GDTWConfig(subsequence=True, lam=0.1, grid_size=50))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")


@dataclass(frozen=True)
class Localization:
    """Predicted query poses.

    Attributes:
        reference_times: reference time assigned to each query frame, shape (B, n), float64.
        positions: predicted (easting, northing) in metres, shape (B, n, 2), float64.
        cost: alignment cost per pair, shape (B,); None for ``independent``.
    """

    reference_times: Tensor
    positions: Tensor
    cost: Tensor | None


def localize(
    reference: Signal,
    query: Signal,
    reference_positions: Tensor,
    config: LocalizerConfig | None = None,
) -> Localization:
    """Places each query frame on the reference and reads its position off the track.

    Args:
        reference: reference descriptors, times (B, N) s, values (B, N, D).
        query: query descriptors, times (B, n) s, values (B, n, D).
        reference_positions: (easting, northing) of each reference frame in metres,
            shape (B, N, 2).
        config: method and solver options.

    Returns:
        A :class:`Localization`.

    Raises:
        ValueError: on mismatched shapes.
    """
    config = config or LocalizerConfig()
    expected = (reference.batch_size, reference.max_length, 2)
    if tuple(reference_positions.shape) != expected:
        raise ValueError(f"reference_positions must have shape {expected}, got {tuple(reference_positions.shape)}")
    cost = None
    if config.method == "gdtw":
        result = gdtw(reference, query, config.gdtw)
        times, cost = result.warp, result.cost
    elif config.method == "dtw":
        result = dtw(reference, query, subsequence=True)
        times, cost = result.warp, result.cost
    else:
        with torch.no_grad():
            distances = pairwise_sq_distances(query.values, reference.values)
        padding = ~reference.valid_mask()[:, None, :]
        nearest = distances.masked_fill(padding, float("inf")).argmin(dim=2)
        times = reference.times.gather(1, nearest)
    # UTM eastings (~1e5-1e6 m) need float64 as much as epoch times do.
    track = Signal(reference.times, reference_positions.to(torch.float64), reference.lengths)
    return Localization(reference_times=times, positions=track.at(times), cost=cost)
