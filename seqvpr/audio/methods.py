"""Slice alignment methods of the paper's Table 1, on :class:`~seqvpr.audio.slices.SliceBatch`.

- DTW (Base (D), and the Soft-DTW / Along-GT / DILATE rows): subsequence DTW of the score
  excerpt into the performance window; the warp at each score frame is the mean
  performance time matched to it.
- GDTW (Base (G), DecDTW rows): subsequence GDTW with the feature's lambda
  (0.1 / 0.7 / 0.9 for CQT / chroma / melspec, appendix A.4), M = 2 x slice length.

Both return per slice the predicted :class:`~seqvpr.audio.alignment.Alignment` over the
score frames, which :func:`~seqvpr.audio.metrics.time_errors` scores exactly.
"""

from __future__ import annotations

import torch

from seqvpr.align import GDTWConfig, dtw, gdtw
from seqvpr.audio.alignment import Alignment
from seqvpr.audio.metrics import TimeErrors, time_errors
from seqvpr.audio.slices import SliceBatch

__all__ = ["PAPER_LAMBDA", "align_batch", "gdtw_config", "score_batch"]

# GDTW lambda per base feature (appendix A.4, selected by grid search on validation TimeErr).
PAPER_LAMBDA = {"cqt": 0.1, "chroma": 0.7, "melspec": 0.9}


def gdtw_config(lam: float, slice_frames: int = 256) -> GDTWConfig:
    """The GDTW problem of a slice: subsequence, M = 2 x slice length."""
    return GDTWConfig(subsequence=True, lam=lam, grid_size=2 * slice_frames)


def align_batch(batch: SliceBatch, method: str, lam: float, encoder: torch.nn.Module | None = None) -> list[Alignment]:
    """Predicted alignments of a batch of slices.

    Args:
        batch: the slices.
        method: ``dtw`` or ``gdtw``.
        lam: GDTW lambda (ignored by ``dtw``).
        encoder: an :class:`~seqvpr.audio.model.AudioEncoder` applied to both sides, or None
            for the base features.

    Returns:
        One alignment per slice, over its score frames.
    """
    reference, query = batch.reference, batch.query
    if encoder is not None:
        with torch.no_grad():
            reference, query = encoder.embed(reference), encoder.embed(query)
    if method == "dtw":
        warp = dtw(reference, query, subsequence=True).warp
        knots = query.times
    elif method == "gdtw":
        result = gdtw(reference, query, gdtw_config(lam, query.max_length))
        warp, knots = result.warp, result.knots
    else:
        raise ValueError(f"method must be 'dtw' or 'gdtw', got {method!r}")
    alignments = []
    for index, length in enumerate(query.lengths.tolist()):
        performance = torch.cummax(warp[index, :length], 0).values  # DTW read-outs may tie
        alignments.append(Alignment(knots[index, :length].numpy(), performance.numpy()))
    return alignments


def score_batch(batch: SliceBatch, alignments: list[Alignment]) -> list[TimeErrors]:
    """TimeErr / TimeDev of each slice's predicted alignment against its exact truth."""
    return [time_errors(alignment, item.truth) for alignment, item in zip(alignments, batch.slices)]
