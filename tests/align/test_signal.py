import math

import numpy as np
import pytest
import torch

from seqvpr.align import Signal


def test_unbatched_input_becomes_batch_of_one():
    signal = Signal(torch.arange(4.0), torch.ones(4, 3))
    assert signal.times.shape == (1, 4)
    assert signal.values.shape == (1, 4, 3)
    assert signal.lengths.tolist() == [4]


def test_accepts_numpy_and_keeps_times_in_float64():
    signal = Signal(np.arange(3), np.zeros((1, 3, 2), dtype=np.float32)[0])
    assert signal.values.dtype == torch.float32
    assert signal.times.dtype == torch.float64


def test_interpolation_matches_hand_computed_values():
    signal = Signal(torch.tensor([[0.0, 1.0, 3.0]]), torch.tensor([[[0.0], [2.0], [6.0]]]))
    at = torch.tensor([[0.0, 0.5, 1.0, 2.0, 3.0, -1.0, 4.0]])
    expected = [0.0, 1.0, 2.0, 4.0, 6.0, 0.0, 6.0]  # clamped outside the span
    assert signal.at(at)[0, :, 0].tolist() == pytest.approx(expected)


def test_from_sequences_pads_and_interpolation_ignores_padding():
    signal = Signal.from_sequences(
        [(torch.tensor([0.0, 1.0]), torch.tensor([[0.0], [1.0]])),
         (torch.tensor([0.0, 1.0, 2.0]), torch.tensor([[0.0], [1.0], [4.0]]))]
    )
    assert signal.lengths.tolist() == [2, 3]
    assert signal.end.tolist() == [1.0, 2.0]
    # Item 0 ends at t = 1: later times clamp to its last real sample, not the padding.
    values = signal.at(torch.tensor([[1.5, 0.5], [1.5, 0.5]]))[..., 0]
    assert values.tolist() == [[1.0, 0.5], [2.5, 0.5]]


def test_interpolation_is_differentiable_in_values_and_times():
    values = torch.tensor([[[0.0], [2.0], [6.0]]], dtype=torch.float64, requires_grad=True)
    at = torch.tensor([[0.25, 1.5]], dtype=torch.float64, requires_grad=True)
    signal = Signal(torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64), values)
    assert torch.autograd.gradcheck(lambda v, t: Signal(signal.times, v).at(t), (values, at))


@pytest.mark.parametrize(
    ("times", "values", "lengths", "message"),
    [
        (torch.tensor([[0.0, 1.0]]), torch.tensor([[[0.0], [math.nan]]]), None, r"values\[0, 1\] contains NaN"),
        (torch.tensor([[0.0, 1.0]]), torch.tensor([[[0.0], [math.inf]]]), None, r"values\[0, 1\] contains NaN or inf"),
        (torch.tensor([[0.0, math.inf]]), torch.zeros(1, 2, 1), None, r"times\[0, 1\] is inf"),
        (torch.tensor([[0.0, 1.0, 1.0]]), torch.zeros(1, 3, 1), None, "not strictly increasing"),
        (torch.tensor([[0.0, 2.0, 1.0]]), torch.zeros(1, 3, 1), None, "not strictly increasing"),
        (torch.zeros(1, 0), torch.zeros(1, 0, 2), None, "has 0 sample"),
        (torch.zeros(1, 1), torch.zeros(1, 1, 2), None, "has 1 sample"),
        (torch.zeros(0, 3), torch.zeros(0, 3, 2), None, "empty batch"),
        (torch.zeros(2, 3), torch.zeros(2, 4, 2), None, "does not match times shape"),
        (torch.zeros(2, 3), torch.zeros(2, 3), None, r"values must have shape \(B, N, D\)"),
        (torch.arange(3.0)[None], torch.zeros(1, 3, 0), None, "D = 0"),
        (torch.arange(3.0)[None], torch.zeros(1, 3, 2), torch.tensor([4]), "exceed the padded length"),
        (torch.arange(3.0)[None], torch.zeros(1, 3, 2), torch.tensor([1]), "has 1 sample"),
    ],
)
def test_bad_input_names_the_problem(times, values, lengths, message):
    with pytest.raises(ValueError, match=message):
        Signal(times, values, lengths)


def test_padding_may_hold_anything():
    times = torch.tensor([[0.0, 1.0, math.nan]])
    values = torch.tensor([[[1.0], [2.0], [math.inf]]])
    signal = Signal(times, values, torch.tensor([2]))
    assert signal.end.tolist() == [1.0]


def test_caller_tensors_are_not_modified():
    times = torch.tensor([[0.0, 1.0, -5.0]])
    values = torch.zeros(1, 3, 1)
    signal = Signal(times, values, torch.tensor([2]))
    signal.padded_times()
    assert times.tolist() == [[0.0, 1.0, -5.0]]
