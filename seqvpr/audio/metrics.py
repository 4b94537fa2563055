r"""TimeErr and TimeDev of an audio-to-score alignment (Thickstun et al. 2020; paper eq. 9).

For a predicted alignment phi and the ground truth phi_gt, both piecewise linear in score
time s over the evaluated span [a, b] of length S = b - a:

    TimeErr = 1/S \int_a^b |phi(s) - phi_gt(s)| ds,
    TimeDev = sqrt(1/S \int_a^b (phi(s) - phi_gt(s))^2 ds).

The error e = phi - phi_gt is piecewise linear with breakpoints at the union of both
changepoint sets, so both integrals are exact sums over its linear pieces. On a piece of
length h from e0 to e1:

    \int e^2   = h (e0^2 + e0 e1 + e1^2) / 3,
    \int |e|   = h (|e0| + |e1|) / 2                      if e0 e1 >= 0,
               = h (e0^2 + e1^2) / (2 (|e0| + |e1|))        if the sign changes
                 (two triangles meeting at the root s0 = h |e0| / (|e0| + |e1|)).

The same sums over the knots of a GDTW warp give :func:`time_err_loss`, the training loss
of DecDTW: differentiable with respect to the warp wherever e is not zero at a knot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from seqvpr.audio.alignment import Alignment

__all__ = ["TimeErrors", "error_integrals", "time_err_loss", "time_errors"]


@dataclass(frozen=True)
class TimeErrors:
    """Errors of one predicted alignment against the truth over a score span.

    Attributes:
        time_err_s: mean absolute error, seconds.
        time_dev_s: root mean squared error, seconds.
        span_s: length S of the evaluated score span, seconds.
    """

    time_err_s: float
    time_dev_s: float
    span_s: float


def error_integrals(dt: Tensor, start: Tensor, stop: Tensor) -> tuple[Tensor, Tensor]:
    """Exact integrals of |e| and e^2 over linear pieces of an error e.

    Args:
        dt: length of each piece, shape (..., K), >= 0.
        start: e at the start of each piece, shape (..., K).
        stop: e at the end of each piece, shape (..., K).

    Returns:
        ``(abs_integral, square_integral)``, each summed over the last axis, shape (...).
    """
    magnitude = start.abs() + stop.abs()
    same_sign = start * stop >= 0
    safe = torch.where(same_sign, torch.ones_like(magnitude), magnitude)
    crossing = dt * (start.square() + stop.square()) / (2.0 * safe)
    absolute = torch.where(same_sign, 0.5 * dt * magnitude, crossing)
    square = dt * (start.square() + start * stop + stop.square()) / 3.0
    return absolute.sum(-1), square.sum(-1)


def time_errors(predicted: Alignment, truth: Alignment, start: float | None = None,
                end: float | None = None) -> TimeErrors:
    """TimeErr and TimeDev of ``predicted`` against ``truth``, integrated exactly.

    Args:
        predicted: the predicted alignment.
        truth: the ground-truth alignment.
        start, end: the score span [a, b] to evaluate; default the truth's span. Either
            alignment is constant beyond its own changepoints.

    Raises:
        ValueError: if the span is empty.
    """
    start = truth.start if start is None else float(start)
    end = truth.end if end is None else float(end)
    if not end > start:
        raise ValueError(f"the evaluated score span must have end > start, got [{start}, {end}]")
    points = np.concatenate([[start, end], predicted.score_s, truth.score_s])
    points = np.unique(points[(points >= start) & (points <= end)])
    error = torch.from_numpy(predicted(points) - truth(points))
    absolute, square = error_integrals(torch.from_numpy(np.diff(points)), error[:-1], error[1:])
    span = end - start
    return TimeErrors(float(absolute) / span, float(np.sqrt(float(square) / span)), span)


def time_err_loss(warp: Tensor, target: Tensor, knots: Tensor, lengths: Tensor | None = None) -> Tensor:
    """TimeErr of warps given at knots, as a differentiable loss (DecDTW trains on it).

    Both the warp and the target are taken as linear between the knots; the mean absolute
    error over [knots_0, knots_{L-1}] is integrated exactly (see the module header).

    Args:
        warp: predicted performance times at the knots, shape (B, m).
        target: true performance times at the knots, shape (B, m).
        knots: score times of the knots, shape (B, m), increasing within each item.
        lengths: valid knots per item, shape (B,); default m.

    Returns:
        TimeErr per item in the units of the times, shape (B,).
    """
    if warp.shape != target.shape or warp.shape != knots.shape or warp.dim() != 2:
        raise ValueError(f"warp, target and knots must share a shape (B, m); got {tuple(warp.shape)}, "
                         f"{tuple(target.shape)}, {tuple(knots.shape)}")
    batch, size = warp.shape
    if lengths is None:
        lengths = torch.full((batch,), size, device=warp.device)
    knots = knots.to(warp.dtype)
    error = warp - target.to(warp.dtype)
    valid = torch.arange(size - 1, device=warp.device)[None] < (lengths[:, None] - 1)
    dt = torch.where(valid, knots[:, 1:] - knots[:, :-1], 0.0)
    absolute, _ = error_integrals(dt, error[:, :-1], error[:, 1:])
    return absolute / dt.sum(1)
