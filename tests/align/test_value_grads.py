"""The values' gradients of DecDTW's backward: the numba pass and the torch path against a
per-knot loop that spells out the three formulas of seqvpr.align._value_grads."""

from __future__ import annotations

import pytest
import torch

from seqvpr.align._value_grads import value_gradients, value_gradients_cpu, value_gradients_torch


def _loop_oracle(reference, knot_values, segment, scaled, alpha):
    grad_reference = torch.zeros_like(reference, dtype=torch.float64)
    grad_knots = torch.zeros_like(knot_values, dtype=torch.float64)
    ref, qry = reference.double(), knot_values.double()
    for b in range(segment.shape[0]):
        for i in range(segment.shape[1]):
            k, s, a = int(segment[b, i]), float(scaled[b, i]), float(alpha[b, i])
            left, right, q = ref[b, k], ref[b, k + 1], qry[b, i]
            grad_reference[b, k] += s * (2 - 2 * a) * left - s * (1 - 2 * a) * right - s * q
            grad_reference[b, k + 1] += -s * (1 - 2 * a) * left - 2 * a * s * right + s * q
            grad_knots[b, i] = s * (right - left)
    return grad_reference, grad_knots


def _problem(seed: int, batch: int, ref_size: int, size: int, dim: int, dtype: torch.dtype):
    gen = torch.Generator().manual_seed(seed)
    reference = torch.randn(batch, ref_size, dim, generator=gen).to(dtype)
    knot_values = torch.randn(batch, size, dim, generator=gen).to(dtype)
    # Knots walk through the segments in order, several per segment at times; the first and
    # last segments are used, and some knots (padding, held knots) carry s = 0.
    steps = torch.randint(0, 2, (batch, size), generator=gen)
    segment = (steps.cumsum(1) - steps[:, :1]).clamp(max=ref_size - 2)
    segment[0] = torch.linspace(0, ref_size - 2, size).round().long()
    scaled = torch.randn(batch, size, generator=gen, dtype=torch.float64)
    scaled[:, -1] = 0.0
    alpha = torch.rand(batch, size, generator=gen, dtype=torch.float64)
    return reference, knot_values, segment, scaled, alpha


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 6, 5, 7), (2, 2, 3, 1), (4, 25, 10, 300)])
@pytest.mark.parametrize("implementation", [value_gradients_cpu, value_gradients_torch])
def test_value_gradients_match_the_per_knot_formulas(dtype, shape, implementation):
    reference, knot_values, segment, scaled, alpha = _problem(sum(shape), *shape, dtype)
    expected = _loop_oracle(reference, knot_values, segment, scaled, alpha)
    got = implementation(reference, knot_values, segment, scaled, alpha, True, True)
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for result, oracle in zip(got, expected):
        assert result.dtype == dtype and result.shape == oracle.shape
        torch.testing.assert_close(result.double(), oracle, **tolerance)


def test_rows_no_knot_touches_are_exactly_zero_and_requested_outputs_only():
    reference, knot_values, segment, scaled, alpha = _problem(5, 2, 12, 4, 9, torch.float64)
    segment[:] = torch.tensor([3, 3, 4, 5])
    scaled[:, -1] = 0.5  # row 4 then takes three query rows, row 5 two, row 6 one
    grad_reference, grad_knots = value_gradients_cpu(reference, knot_values, segment, scaled, alpha, True, False)
    assert grad_knots is None
    torch.testing.assert_close(grad_reference, _loop_oracle(reference, knot_values, segment, scaled, alpha)[0])
    touched = torch.zeros(12, dtype=torch.bool)
    touched[3:7] = True
    assert (grad_reference[:, ~touched] == 0).all()
    assert (grad_reference[:, touched] != 0).any()
    none, grad_knots = value_gradients(reference, knot_values, segment, scaled, alpha, False, True)
    assert none is None and grad_knots.shape == knot_values.shape


def test_dispatch_falls_back_to_torch_for_other_dtypes():
    reference, knot_values, segment, scaled, alpha = _problem(7, 2, 5, 3, 4, torch.float64)
    half = [x.to(torch.bfloat16) for x in (reference, knot_values)]
    got = value_gradients(*half, segment, scaled, alpha, True, True)
    expected = value_gradients_torch(*half, segment, scaled, alpha, True, True)
    for a, b in zip(got, expected):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a, b)
