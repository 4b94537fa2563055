import numpy as np
import pytest
import torch

from seqvpr.align import Signal
from seqvpr.align.synthetic import warped_pair
from seqvpr.vpr.localize import LocalizerConfig, localize
from seqvpr.vpr.metrics import accuracy, sequence_errors


def straight_track(times):
    """10 m/s east with a gentle north drift: (B, N) s -> (B, N, 2) m."""
    return torch.stack([10.0 * times, 0.5 * times], dim=-1)


@pytest.mark.parametrize("method", ["gdtw", "dtw", "independent"])
def test_exact_subsequence_with_offset_clock_gives_reference_positions(method):
    reference, _, _ = warped_pair(seed=1, batch=3, reference_duration_s=24.0, dtype=torch.float64)
    query = Signal(reference.times[:, 7:17] + 1000.0, reference.values[:, 7:17])
    positions = straight_track(reference.times)
    result = localize(reference, query, positions, LocalizerConfig(method=method))
    errors = sequence_errors(result.positions, positions[:, 7:17])
    # GDTW is exact to its final grid spacing (~1e-3 s, i.e. 1 cm at 10 m/s).
    assert float(errors.max.max()) < 0.05
    torch.testing.assert_close(result.reference_times, reference.times[:, 7:17], atol=2e-3, rtol=0)


def test_gdtw_tracks_a_varying_tempo_better_than_dtw_and_independent():
    reference, query, true_warp = warped_pair(seed=4, batch=16, query_samples=10, noise=0.3,
                                              dtype=torch.float64)
    positions = straight_track(reference.times)
    truth = straight_track(true_warp)
    mean_max_error = {}
    for method in ("gdtw", "dtw", "independent"):
        result = localize(reference, query, positions, LocalizerConfig(method=method))
        mean_max_error[method] = float(sequence_errors(result.positions, truth).max.mean())
    assert mean_max_error["gdtw"] < min(mean_max_error["dtw"], mean_max_error["independent"])
    assert mean_max_error["gdtw"] < 5.0  # metres; 10 m between reference frames


def test_positions_shape_is_checked():
    reference, query, _ = warped_pair(seed=0)
    with pytest.raises(ValueError, match=r"reference_positions must have shape \(1, 61, 2\)"):
        localize(reference, query, torch.zeros(1, 60, 2))


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method must be one of"):
        LocalizerConfig(method="seqslam")


def test_sequence_errors_and_accuracy_on_hand_computed_values():
    predicted = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]],
                              [[1.0, 0.0], [0.0, 0.0], [9.0, 9.0]]])
    truth = torch.zeros(2, 3, 2)
    errors = sequence_errors(predicted, truth, lengths=torch.tensor([3, 2]))
    assert errors.max.tolist() == [5.0, 1.0]
    assert errors.mean.tolist() == pytest.approx([2.0, 0.5])
    assert torch.isnan(errors.frame[1, 2])
    assert accuracy(errors.max, (1.0, 2.0, 5.0, 10.0)) == {1.0: 0.0, 2.0: 50.0, 5.0: 50.0, 10.0: 100.0}
    with pytest.raises(ValueError, match="empty"):
        accuracy(np.array([]))
