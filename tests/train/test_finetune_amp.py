"""`finetune` under bfloat16 autocast on the CPU (`loop.amp: always`): the AMP path of the
training loop, exercised where there is no GPU."""

import pytest
import torch

from seqvpr.align import DecDTW
from seqvpr.config import config_from_dict
from seqvpr.data.pair_files import read_pairs
from seqvpr.errors import SeqvprError
from seqvpr.train.finetune import LOSSES, FinetuneConfig, PairBatch, SequenceLoss, finetune
from seqvpr.train.run import LoopConfig


@pytest.mark.parametrize("loss", LOSSES)
def test_alignment_losses_are_float64_and_untouched_by_autocast(pairs_world, loss):
    """Autocast leaves float64 tensors alone: given the same descriptors, every loss and its
    gradient are bit-identical with and without bfloat16 autocast, so the solver runs in
    float64 inside."""
    batch = PairBatch.build(read_pairs(pairs_world.train)[:4], pairs_world.prepared, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    descriptors = torch.nn.functional.normalize(torch.randn(len(batch.images), 32, generator=generator), dim=1)
    criterion = SequenceLoss(FinetuneConfig(loss=loss))
    results = []
    for amp in (False, True):
        leaf = descriptors.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            value = criterion(batch, leaf)
        value.backward()
        results.append((value.detach(), leaf.grad))
    (plain, plain_grad), (autocast, autocast_grad) = results
    assert plain.dtype == autocast.dtype == torch.float64
    assert torch.equal(plain, autocast) and torch.equal(plain_grad, autocast_grad)
    assert bool(torch.isfinite(autocast)) and plain_grad.abs().sum() > 0


def test_amp_setting_takes_true_false_or_always():
    assert not LoopConfig(amp=True).autocast(torch.device("cpu"))
    assert LoopConfig(amp=True).autocast(torch.device("cuda"))
    assert LoopConfig(amp="always").autocast(torch.device("cpu"))
    assert not LoopConfig(amp=False).autocast(torch.device("cuda"))
    assert config_from_dict(LoopConfig, {"amp": "always"}).amp == "always"
    with pytest.raises(SeqvprError, match="amp"):
        config_from_dict(LoopConfig, {"amp": "sometimes"})
    with pytest.raises(ValueError, match="amp must be true, false or 'always'"):
        LoopConfig(amp="bf16")


def record_forward(records):
    """A global forward hook noting, per training-time call, the module kind, whether CPU
    autocast was on, and the dtypes going in and out."""

    def hook(module, args, output):
        if not module.training:
            return
        if isinstance(module, DecDTW):
            reference, query = args
            records.append(("decdtw", torch.is_autocast_enabled("cpu"),
                            (reference.times.dtype, reference.values.dtype, query.times.dtype, query.values.dtype),
                            output.dtype))
        elif isinstance(module, SequenceLoss):
            records.append(("loss", torch.is_autocast_enabled("cpu"), bool(torch.isfinite(output)), output.dtype))
        elif isinstance(module, torch.nn.Conv2d):
            records.append(("conv", torch.is_autocast_enabled("cpu"), args[0].dtype, output.dtype))

    return torch.nn.modules.module.register_module_forward_hook(hook)


def train_three_steps(world, out, amp, records):
    # conv1_2 and NetVLAD trained, a validation after every step (15 steps per epoch).
    config = FinetuneConfig(trainable_from="conv1_2", lr=1e-3, val_max_pairs=8, cache_dir=out.parent / "cache",
                            loop=LoopConfig(epochs=1, batch_size=8, validations_per_epoch=15, max_steps=3, amp=amp))
    handle = record_forward(records)
    try:
        return finetune([world.train], [world.val], world.prepared, world.base_model, out, config, progress=False)
    finally:
        handle.remove()


def test_finetune_under_cpu_autocast_keeps_the_solver_float64_and_tracks_float32(pairs_world, tmp_path):
    plain_records, amp_records = [], []
    plain = train_three_steps(pairs_world, tmp_path / "float32", False, plain_records)
    amp = train_three_steps(pairs_world, tmp_path / "amp", "always", amp_records)

    # float32 run: no autocast anywhere.
    assert not any(record[1] for record in plain_records)
    assert {record[3] for record in plain_records if record[0] == "conv"} == {torch.float32}
    # AMP run: the trainable convolutions ran in bfloat16 under autocast ...
    convs = [record for record in amp_records if record[0] == "conv"]
    assert convs and all(enabled and out == torch.bfloat16 for _, enabled, _, out in convs)
    # ... and the DecDTW layer got float64 signals and returned a float64 warp, at every step.
    solver = [record for record in amp_records if record[0] == "decdtw"]
    assert len(solver) == 3
    assert all(enabled and dtypes == (torch.float64,) * 4 and out == torch.float64
               for _, enabled, dtypes, out in solver)
    losses = [record for record in amp_records if record[0] == "loss"]
    assert len(losses) == 3 and all(finite and dtype == torch.float64 for _, _, finite, dtype in losses)

    # Close to the float32 run. Step 1 starts from the same weights, so its loss differs only
    # by the encoder's bfloat16 forward (8 significant bits: each rounding is off by up to
    # 2^-9 = 0.2%; measured 9e-5 relative on the loss, hence 1e-3); later rows also carry
    # the earlier steps' bfloat16 gradients (measured up to 1.1e-3 relative, hence 1e-2).
    # Weights are not compared entry by entry: Adam's first steps move every weight by about
    # lr whatever its gradient's size, so where a gradient is near zero bfloat16 noise flips
    # the step's sign and the entry differs by up to 2 lr per step.
    assert [row["step"] for row in amp.metrics] == [1, 2, 3]
    assert amp.metrics[0]["train_loss"] == pytest.approx(plain.metrics[0]["train_loss"], rel=1e-3)
    for expected, got in zip(plain.metrics, amp.metrics):
        for key in ("train_loss", "val_max_error_m", "val_mean_error_m"):
            assert got[key] == pytest.approx(expected[key], rel=1e-2), key
    trained = torch.load(tmp_path / "amp" / "last.pt", weights_only=True)["state_dict"]
    base = torch.load(pairs_world.base_model, weights_only=True)["state_dict"]
    assert all(bool(torch.isfinite(value).all()) for value in trained.values())
    assert not torch.equal(trained["backbone.2.weight"], base["backbone.2.weight"])
