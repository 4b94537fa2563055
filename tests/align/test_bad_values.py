"""Values that used to give silently wrong warps: float16 overflow, values or lambda too large
for float64, a query longer than the reference in subsequence mode, mixed dtypes."""

from __future__ import annotations

import warnings

import pytest
import torch

from seqvpr.align import GDTWConfig, Signal, decdtw, gdtw
from seqvpr.errors import SeqvprError

TIMES = torch.arange(12.0, dtype=torch.float64)


def _values(scale: float = 1.0) -> torch.Tensor:
    return torch.stack([torch.sin(0.9 * TIMES), torch.cos(0.6 * TIMES), torch.sin(0.3 * TIMES)], -1) * scale


def _align(reference_values, query_values, **options):
    reference = Signal(TIMES, reference_values)
    query = Signal(TIMES[:5] + 3.2, query_values)
    return gdtw(reference, query, GDTWConfig(subsequence=True, **options))


@pytest.mark.parametrize("scale", [1.0, 400.0, 3000.0])
def test_float16_values_give_the_float32_warp(scale):
    values = _values(scale)
    query = values[3:8] + 0.01 * scale
    half = _align(values.half(), query.half())
    single = _align(values.half().float(), query.half().float())
    torch.testing.assert_close(half.warp, single.warp, rtol=0, atol=1e-9)
    assert bool(torch.isfinite(half.cost).all())


@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1e20), (torch.float64, 1e160)])
def test_values_too_large_to_square_raise(dtype, scale):
    values = _values(scale).to(dtype)
    with pytest.raises(SeqvprError, match=r"reference values overflow when squared in float\d\d .*largest"):
        _align(values, values[3:8])


def test_query_values_too_large_raise_naming_the_query():
    values = _values().float()
    with pytest.raises(SeqvprError, match="query values overflow"):
        _align(values, values[3:8] * 1e20)


def test_lambda_too_large_raises():
    values = _values()
    with pytest.raises(SeqvprError, match=r"lam = 1e\+300 is too large"):
        _align(values, values[3:8], lam=1e300)
    # The largest accepted lambda still solves to a finite cost.
    assert bool(torch.isfinite(_align(values, values[3:8], lam=1e20).cost).all())


def test_query_longer_than_reference_in_subsequence_mode_warns_with_durations():
    values = _values()
    reference = Signal(TIMES[:5], values[:5])
    query = Signal(TIMES, values)
    with pytest.warns(UserWarning, match=r"query spans 11 s .* reference lasts only 4 s"):
        gdtw(reference, query, GDTWConfig(subsequence=True))
    # Full alignment is meant to stretch: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gdtw(reference, query, GDTWConfig(subsequence=False))


def test_mixed_float32_and_float64_signals_align_in_float64():
    values = _values()
    mixed = _align(values.float().double(), values[3:8])
    torch.testing.assert_close(_align(values.float(), values[3:8]).warp, mixed.warp)
    reference = values.float().requires_grad_()
    query = values[3:8].clone().requires_grad_()
    warp = decdtw(Signal(TIMES, reference), Signal(TIMES[:5] + 3.2, query), GDTWConfig(subsequence=True))
    warp.sum().backward()
    assert reference.grad.dtype == torch.float32 and query.grad.dtype == torch.float64
