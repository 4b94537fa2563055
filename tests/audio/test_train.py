"""audio-train: every loss runs on the shared run machinery; DecDTW lowers TimeErr; resume."""

import dataclasses

import numpy as np
import pytest
import torch

from seqvpr.audio.methods import align_batch, score_batch
from seqvpr.audio.model import AudioEncoder, load_audio_model
from seqvpr.audio.slices import AudioSlices, collate_slices
from seqvpr.train.audio import AUDIO_LOSSES, AudioTrainConfig, audio_train, slice_loss
from seqvpr.train.run import LoopConfig


def _loop(steps, batch_size=1):
    return LoopConfig(epochs=steps, batch_size=batch_size, validations_per_epoch=1, max_steps=steps, amp=False)


def _short(item, frames=64):
    """The slice's first ``frames`` score frames and the performance frames they need."""
    score_times = item.score_times[:frames]
    keep = item.performance_times <= item.truth(score_times[-1]) + 1.0
    return dataclasses.replace(item, score_times=score_times, score_values=item.score_values[:frames],
                               performance_times=item.performance_times[keep],
                               performance_values=item.performance_values[keep],
                               truth=item.truth.restrict(score_times[0], score_times[-1]))


@pytest.mark.parametrize("loss", AUDIO_LOSSES)
def test_every_loss_gives_finite_gradients(tiny_data, loss):
    dataset = AudioSlices(tiny_data, "train", "chroma")
    batch = collate_slices([_short(dataset[0])])
    torch.manual_seed(0)
    encoder = AudioEncoder(12)
    value = slice_loss(encoder, batch, AudioTrainConfig(features="chroma", loss=loss))
    value.backward()
    assert torch.isfinite(value)
    gradients = [p.grad for p in encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert sum(float(g.abs().sum()) for g in gradients) > 0


def test_encoder_output_is_unit_norm_and_ignores_padding():
    torch.manual_seed(0)
    encoder = AudioEncoder(12)
    values = torch.randn(2, 9, 12)
    lengths = torch.tensor([9, 5])
    output = encoder(values, lengths)
    assert output.shape == (2, 9, 128)
    assert torch.allclose(output[0].norm(dim=-1), torch.ones(9), atol=1e-5)
    alone = encoder(values[1:, :5])
    assert torch.allclose(output[1, :5], alone[0], atol=1e-5)


def test_decdtw_training_lowers_time_err(tiny_data):
    dataset = AudioSlices(tiny_data, "train", "chroma")
    batch = collate_slices([dataset[0]])
    config = AudioTrainConfig(features="chroma", loss="decdtw")
    torch.manual_seed(0)
    encoder = AudioEncoder(12)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-3)

    def time_err():
        encoder.eval()
        return score_batch(batch, align_batch(batch, "gdtw", config.resolved_lam, encoder))[0].time_err_s

    before = time_err()
    for _ in range(15):
        encoder.train()
        optimizer.zero_grad()
        slice_loss(encoder, batch, config).backward()
        optimizer.step()
    after = time_err()
    assert after < 0.5 * before, (before, after)


def test_run_folder_checkpoint_and_resume(tiny_data, tmp_path):
    config = AudioTrainConfig(features="cqt", loss="along-gt", lr=1e-3, loop=_loop(2))
    result = audio_train(tiny_data, tmp_path / "run", config, progress=False)
    assert result.steps == 2 and len(result.metrics) == 2
    assert {"val_time_err_ms", "val_time_dev_ms"} <= set(result.metrics[-1])
    for name in ("best.pt", "last.pt", "metrics.csv", "curves.png", "config.yaml", "command.txt"):
        assert (tmp_path / "run" / name).is_file()
    model = load_audio_model(tmp_path / "run" / "best.pt")
    assert (model.features, model.loss, model.lam) == ("cqt", "along-gt", 0.1)
    again = audio_train(tiny_data, tmp_path / "run", config, progress=False)  # finished: resumes, no new steps
    assert again.steps == 2 and np.isclose(again.best_metric, result.best_metric)
