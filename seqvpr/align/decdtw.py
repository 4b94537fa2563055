r"""DecDTW: the optimal GDTW warp as a differentiable layer (paper §5-6).

The layer computes

    phi* = argmin_phi  sum_i w_i ||R(phi_i) - Q(t_i)||^2 + lambda sum_i dt_i (dphi_i / dt_i - e)^2
           subject to  s_min e <= dphi_i / dt_i <= s_max e,  |phi_i - c(t_i)| <= beta T_ref,
                       tau_1 <= phi_i <= tau_N  (and phi_1 = tau_1, phi_m = tau_N in full mode)

(:mod:`seqvpr.align.gdtw` states it in full) and returns phi*, shape (B, m). The forward pass
runs the GDTW solver (DP with refinement) under ``no_grad`` and moves the DP answer to the
exact local optimum of the piecewise-quadratic objective with its active set
(:mod:`seqvpr.align._active_set`); the backward pass differentiates
the solution implicitly at phi* (:mod:`seqvpr.align._implicit`), giving gradients with
respect to the reference values, the query values, lambda, the band beta and the slope
bounds s_min, s_max - each only when it requires grad. Times (reference times, knot times)
are data, not parameters: they take no gradient.

Three forms, ddn style: :class:`DecDTWFunction` (the ``autograd.Function``), :func:`decdtw`
(the function) and :class:`DecDTW` (an ``nn.Module`` holding the solver's hyperparameters).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import torch
from torch import Tensor, nn

from seqvpr.align._active_set import CONVERGED, local_optimum
from seqvpr.align._implicit import local_model, warp_vjp
from seqvpr.align.gdtw import GDTWConfig, gdtw
from seqvpr.align.signal import Signal

__all__ = ["DecDTW", "DecDTWFunction", "decdtw"]

logger = logging.getLogger(__name__)

Scalar = float | int | Tensor


def _reduce_to(grad: Tensor | None, like: Tensor | None) -> Tensor | None:
    """Sums a (B,) or (B, m - 1) gradient down to the shape the input was given in."""
    if grad is None or like is None:
        return None
    if like.dim() == 0:
        grad = grad.sum()
    elif like.dim() == 1 and grad.dim() == 2:
        grad = grad.sum(1)
    return grad.to(like.dtype).reshape(like.shape)


class DecDTWFunction(torch.autograd.Function):
    """Autograd function: ``apply(reference_values, query_values, lam, slope_min, slope_max,
    band, reference, query, config, polish) -> warp (B, m)``.

    ``reference`` and ``query`` are the :class:`Signal` objects whose ``values`` are the first
    two arguments (passed separately so autograd sees them); ``lam``, ``slope_min``,
    ``slope_max`` and ``band`` are tensors (``band`` may be None) and override the fields of
    ``config``; ``polish`` returns the exact local optimum instead of the DP answer. Prefer :func:`decdtw`,
    which prepares these arguments.
    """

    @staticmethod
    def forward(
        ctx,
        reference_values: Tensor,
        query_values: Tensor,
        lam: Tensor,
        slope_min: Tensor,
        slope_max: Tensor,
        band: Tensor | None,
        reference: Signal,
        query: Signal,
        config: GDTWConfig,
        polish: bool,
    ) -> Tensor:
        solve_config = replace(config, lam=lam, slope_min=slope_min, slope_max=slope_max, band=band)
        needs_grad = any(ctx.needs_input_grad[:6])
        result = gdtw(reference, query, solve_config)
        if not (polish or needs_grad):
            return result.warp
        problem = result.problem
        band64 = None if band is None else band.detach().to(torch.float64).expand(reference.batch_size)
        optimum = local_optimum(reference, result, band64)
        failed = int((optimum.status != CONVERGED).sum())
        if failed:
            logger.warning(
                "DecDTW: %d of %d items kept the DP answer (the exact local optimum was not found); "
                "their gradients are approximate", failed, reference.batch_size,
            )
        warp = optimum.warp
        if needs_grad:
            model = local_model(reference, problem, optimum.active, result.inner_products)
            ctx.model, ctx.problem, ctx.warp = model, problem, warp
            ctx.signals = (reference, query)
            ctx.knots_are_samples = config.knots is None
            ctx.given = (lam, slope_min, slope_max, band)
            ctx.save_for_backward(reference_values, query_values)
        return warp if polish else result.warp

    @staticmethod
    def backward(ctx, grad_warp: Tensor):
        reference_values, query_values = ctx.saved_tensors  # checks for in-place edits
        reference, query = ctx.signals
        needs = tuple(bool(x) for x in ctx.needs_input_grad[:6])
        grads = warp_vjp(
            grad_warp, reference, query, ctx.problem, ctx.model, ctx.warp, needs, ctx.knots_are_samples
        )
        grad_reference, grad_query = grads.reference_values, grads.query_values
        lam, slope_min, slope_max, band = ctx.given
        return (
            None if grad_reference is None else grad_reference.to(reference_values.dtype),
            None if grad_query is None else grad_query.to(query_values.dtype),
            _reduce_to(grads.lam, lam),
            _reduce_to(grads.slope_min, slope_min),
            _reduce_to(grads.slope_max, slope_max),
            _reduce_to(grads.band, band),
            None,
            None,
            None,
            None,
        )


def _as_parameter(name: str, value: Scalar | None, device: torch.device) -> Tensor | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.device != device:
            raise ValueError(f"{name} is on {value.device} but the signals are on {device}")
        return value
    if not isinstance(value, float | int):
        raise ValueError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    return torch.tensor(float(value), dtype=torch.float64, device=device)


def decdtw(
    reference: Signal, query: Signal, config: GDTWConfig | None = None, polish: bool = True
) -> Tensor:
    """The optimal GDTW warp, differentiable by implicit differentiation.

    Args:
        reference: B reference signals, times (B, N), values (B, N, D).
        query: B query signals, times (B, n), values (B, n, D).
        config: solver options (:class:`GDTWConfig`). ``lam``, ``slope_min``,
            ``slope_max`` and ``band`` may be tensors that require grad: lam and band a
            scalar or (B,), the slope bounds a scalar, (B,) or (B, m - 1).
        polish: return the exact local optimum near the DP answer (working-set iterations on
            the piecewise-quadratic objective), a smooth function of the inputs, instead of
            the DP answer itself. Gradients are those of the exact local optimum either way.

    Returns:
        phi* at the knots (the query times unless ``config.knots`` is set), shape (B, m),
        float64 (times always are); padding knots repeat the last valid value.

    Raises:
        ValueError: on mismatched signals, lambda < 0, band outside [0, 1],
            s_min > s_max, infeasible constraints, or non-tensor, non-float parameters.
    """
    config = config or GDTWConfig()
    if not isinstance(reference, Signal) or not isinstance(query, Signal):
        raise ValueError("reference and query must be seqvpr.align.Signal objects")
    device = reference.device
    lam = _as_parameter("lam", config.lam, device)
    slope_min = _as_parameter("slope_min", config.slope_min, device)
    slope_max = _as_parameter("slope_max", config.slope_max, device)
    band = _as_parameter("band", config.band, device)
    return DecDTWFunction.apply(
        reference.values, query.values, lam, slope_min, slope_max, band, reference, query, config, polish
    )


class DecDTW(nn.Module):
    """DecDTW layer: holds the GDTW solver's hyperparameters; returns the optimal warp.

    Args:
        subsequence: free ends (the query lies inside the reference) instead of pinned ends.
        lam: default regularisation weight lambda >= 0.
        grid_size: candidates per knot M; default max(50, N_ref + 1).
        refinements: refinement iterations after the first DP solve.
        refine_factor: eta in (0, 1), the shrink factor of each refinement.
        slope_min, slope_max: default slope bounds, in units of the expected slope e.
        band: default band beta in [0, 1], or None for no band.
        kernel: DP kernel, ``"fast"`` or ``"brute"``.
        polish: return the exact local optimum near the DP answer (see :func:`decdtw`).

    Example:
        >>> layer = DecDTW(subsequence=True, lam=0.1, grid_size=50)
        >>> warp = layer(reference, query)            # (B, m), differentiable
        >>> warp = layer(reference, query, lam=lam)   # lam: a tensor that requires grad
    """

    def __init__(
        self,
        subsequence: bool = False,
        lam: float = 0.1,
        grid_size: int | None = None,
        refinements: int = 3,
        refine_factor: float = 0.125,
        slope_min: float = 0.0,
        slope_max: float = math.inf,
        band: float | None = None,
        kernel: str = "fast",
        polish: bool = True,
    ):
        super().__init__()
        self.polish = polish
        self.config = GDTWConfig(
            subsequence=subsequence,
            lam=lam,
            grid_size=grid_size,
            refinements=refinements,
            refine_factor=refine_factor,
            slope_min=slope_min,
            slope_max=slope_max,
            band=band,
            kernel=kernel,
        )

    def forward(
        self,
        reference: Signal,
        query: Signal,
        lam: Scalar | None = None,
        band: Scalar | None = None,
        slope_min: Scalar | None = None,
        slope_max: Scalar | None = None,
        knots: Tensor | None = None,
    ) -> Tensor:
        """Aligns ``query`` to ``reference``; arguments left None take the layer's defaults.

        Args:
            reference: B reference signals, values (B, N, D).
            query: B query signals, values (B, n, D).
            lam: lambda, float or tensor, scalar or (B,).
            band: beta, float or tensor, scalar or (B,).
            slope_min, slope_max: float or tensor, scalar, (B,) or (B, m - 1).
            knots: knot times, (m,) or (B, m); default the query's sample times.

        Returns:
            The optimal warp phi*, shape (B, m).
        """
        overrides = {
            name: value
            for name, value in (
                ("lam", lam), ("band", band), ("slope_min", slope_min), ("slope_max", slope_max),
                ("knots", knots),
            )
            if value is not None
        }
        return decdtw(reference, query, replace(self.config, **overrides), self.polish)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"subsequence={c.subsequence}, lam={c.lam}, grid_size={c.grid_size}, "
            f"refinements={c.refinements}, band={c.band}, slope=[{c.slope_min}, {c.slope_max}]"
        )
