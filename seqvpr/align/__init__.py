"""The generic alignment core: GDTW (continuous-time DTW) and classic DTW.

Depends on torch, numpy and numba only; knows nothing of images, audio or ROS.

- :class:`Signal`: batched piecewise-linear signals (times, values, lengths).
- :func:`gdtw` with :class:`GDTWConfig` -> :class:`GDTWResult`: the optimal continuous
  warp by DP with iterative refinement.
- :func:`gdtw_objective`: the GDTW objective at a given warp (differentiable).
- :func:`dtw` -> :class:`DTWResult`: classic and subsequence DTW.
- :func:`decdtw` / :class:`DecDTW`: the optimal warp as a differentiable layer.
- Losses: :func:`soft_dtw_loss`, :func:`otam_loss`, :func:`dilate_loss`,
  :func:`along_gt_loss`, :func:`warp_error_loss`.
"""

from seqvpr.align.decdtw import DecDTW, DecDTWFunction, decdtw
from seqvpr.align.dtw import DTWResult, dtw, pairwise_sq_distances
from seqvpr.align.gdtw import (
    GDTWConfig,
    GDTWProblem,
    GDTWResult,
    InnerProducts,
    gdtw,
    gdtw_objective,
    resolve_problem,
)
from seqvpr.align.losses import (
    along_gt_loss,
    dilate_loss,
    otam_loss,
    soft_alignment,
    soft_dtw,
    soft_dtw_loss,
    warp_error_loss,
)
from seqvpr.align.signal import Signal

__all__ = [
    "DecDTW",
    "DecDTWFunction",
    "DTWResult",
    "GDTWConfig",
    "GDTWProblem",
    "GDTWResult",
    "InnerProducts",
    "Signal",
    "along_gt_loss",
    "decdtw",
    "dilate_loss",
    "dtw",
    "gdtw",
    "gdtw_objective",
    "otam_loss",
    "pairwise_sq_distances",
    "resolve_problem",
    "soft_alignment",
    "soft_dtw",
    "soft_dtw_loss",
    "warp_error_loss",
]
