"""The generic alignment core: GDTW (continuous-time DTW) and classic DTW.

Depends on torch, numpy and numba only; knows nothing of images, audio or ROS.

- :class:`Signal`: batched piecewise-linear signals (times, values, lengths).
- :func:`gdtw` with :class:`GDTWConfig` -> :class:`GDTWResult`: the optimal continuous
  warp by DP with iterative refinement.
- :func:`gdtw_objective`: the GDTW objective at a given warp (differentiable).
- :func:`dtw` -> :class:`DTWResult`: classic and subsequence DTW.
"""

from seqvpr.align.decdtw import DecDTW, DecDTWFunction, decdtw
from seqvpr.align.dtw import DTWResult, dtw, pairwise_sq_distances
from seqvpr.align.gdtw import GDTWConfig, GDTWProblem, GDTWResult, gdtw, gdtw_objective, resolve_problem
from seqvpr.align.signal import Signal

__all__ = [
    "DecDTW",
    "DecDTWFunction",
    "DTWResult",
    "GDTWConfig",
    "GDTWProblem",
    "GDTWResult",
    "Signal",
    "decdtw",
    "dtw",
    "gdtw",
    "gdtw_objective",
    "pairwise_sq_distances",
    "resolve_problem",
]
