"""TimeErr / TimeDev: hand-computed values, sign changes, and a fine-grid oracle."""

import math

import numpy as np
import pytest
import torch

from seqvpr.audio.alignment import Alignment
from seqvpr.audio.metrics import time_err_loss, time_errors


def identity(end=4.0):
    return Alignment(np.array([0.0, end]), np.array([0.0, end]))


def test_constant_offset():
    predicted = Alignment(np.array([0.0, 4.0]), np.array([1.0, 5.0]))
    errors = time_errors(predicted, identity())
    assert errors.time_err_s == pytest.approx(1.0)
    assert errors.time_dev_s == pytest.approx(1.0)
    assert errors.span_s == pytest.approx(4.0)


def test_symmetric_sign_change():
    # e(s) = s - 1 on [0, 2]: two triangles of area 1/2; integral of e^2 = 2/3.
    truth = identity(2.0)
    predicted = Alignment(np.array([0.0, 2.0]), np.array([-1.0, 3.0]))
    errors = time_errors(predicted, truth)
    assert errors.time_err_s == pytest.approx(0.5)
    assert errors.time_dev_s == pytest.approx(math.sqrt(1.0 / 3.0))


def test_asymmetric_sign_change():
    # e(s) = s - 0.5 on [0, 2]: triangles 0.125 and 1.125 -> TimeErr 1.25 / 2.
    # integral of e^2 = [(s - 0.5)^3 / 3]_0^2 = (3.375 + 0.125) / 3.
    predicted = Alignment(np.array([0.0, 2.0]), np.array([-0.5, 3.5]))
    errors = time_errors(predicted, identity(2.0))
    assert errors.time_err_s == pytest.approx(0.625)
    assert errors.time_dev_s == pytest.approx(math.sqrt(3.5 / 3.0 / 2.0))


def test_breakpoints_of_both_alignments_count():
    # Truth bends at s = 1 (slope 1 then 2); prediction is the chord from (0,0) to (2,3).
    # e = 0.5 s on [0, 1] and 1.5 - 0.5 s on [1, 2] (a tent of height 0.5): area 0.5.
    truth = Alignment(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 3.0]))
    predicted = Alignment(np.array([0.0, 2.0]), np.array([0.0, 3.0]))
    errors = time_errors(predicted, truth)
    assert errors.time_err_s == pytest.approx(0.25)
    # integral of e^2 = 2 * int_0^1 0.25 s^2 ds = 1/6, over S = 2.
    assert errors.time_dev_s == pytest.approx(math.sqrt(1.0 / 12.0))


def test_span_and_constant_extension():
    # The prediction stops at s = 1 and stays at 1 after it; evaluated on [0, 3].
    predicted = Alignment(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    errors = time_errors(predicted, identity(3.0), 0.0, 3.0)
    # e = 0 on [0, 1], 1 - s on [1, 3]: area 2 -> 2/3.
    assert errors.time_err_s == pytest.approx(2.0 / 3.0)
    assert errors.span_s == pytest.approx(3.0)
    with pytest.raises(ValueError, match="end > start"):
        time_errors(predicted, identity(), 2.0, 2.0)


def test_against_fine_grid_oracle():
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth_s = np.sort(rng.uniform(0, 10, 12))
        truth = Alignment(truth_s, np.cumsum(rng.uniform(0, 2, 12)))
        predicted_s = np.sort(rng.uniform(-1, 11, 9))
        predicted = Alignment(predicted_s, np.cumsum(rng.uniform(0, 2, 9)) + rng.normal())
        grid = np.linspace(truth.start, truth.end, 400_001)
        error = predicted(grid) - truth(grid)
        span = truth.end - truth.start
        expected_err = np.trapezoid(np.abs(error), grid) / span
        expected_dev = math.sqrt(np.trapezoid(error**2, grid) / span)
        errors = time_errors(predicted, truth)
        assert errors.time_err_s == pytest.approx(expected_err, rel=1e-6, abs=1e-8)
        assert errors.time_dev_s == pytest.approx(expected_dev, rel=1e-6, abs=1e-8)


def test_loss_equals_metric_and_differentiates():
    knots = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    target = knots.clone()
    warp = torch.tensor([[0.5, 0.6, 2.5, 2.7]], dtype=torch.float64, requires_grad=True)
    loss = time_err_loss(warp, target, knots)
    expected = time_errors(Alignment(knots[0].numpy(), warp[0].detach().numpy()),
                           Alignment(knots[0].numpy(), target[0].numpy()))
    assert float(loss.detach()) == pytest.approx(expected.time_err_s)
    assert torch.autograd.gradcheck(lambda w: time_err_loss(w, target, knots), (warp,))


def test_loss_respects_lengths():
    knots = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    warp = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 100.0]], dtype=torch.float64)
    loss = time_err_loss(warp, knots, knots, torch.tensor([3, 2]))
    assert loss.tolist() == pytest.approx([1.0, 1.0])
