"""`seqvpr finetune`: losses against slow oracles, the run folder, the frozen-feature cache,
and bad input."""

import contextlib
import csv
import json
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from seqvpr.align import GDTWConfig, gdtw
from seqvpr.cli import main
from seqvpr.data.pair_files import read_pairs
import seqvpr.train.frozen as frozen_module
from seqvpr.train.finetune import FinetuneConfig, PairBatch, SequenceLoss
from seqvpr.train.frozen import VGG16_CONV_LAYERS, FrozenFeatures, split_encoder
from seqvpr.vpr.weights import load_encoder

QUICK = """\
trainable_from: netvlad
lr: 1.0e-2
val_max_pairs: 16
loop: {epochs: 1, batch_size: 8, validations_per_epoch: 5}
"""


def finetune_args(world, out, *extra):
    config = out.parent / "quick.yaml"
    config.write_text(QUICK)
    return ["finetune", "--train", str(world.train), "--val", str(world.val), "--traverses", str(world.prepared),
            "--model", str(world.base_model), "--out", str(out), "--config", str(config), "--no-progress", *extra]


def batch_and_descriptors(world, count=4, dim=16, seed=0):
    pairs = read_pairs(world.train)[:count]
    batch = PairBatch.build(pairs, world.prepared, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    descriptors = torch.nn.functional.normalize(torch.randn(len(batch.images), dim, generator=generator,
                                                            dtype=torch.float64), dim=1)
    return pairs, batch, descriptors.requires_grad_(True)


def test_decdtw_loss_is_max_squared_position_error_at_the_warp(pairs_world):
    pairs, batch, descriptors = batch_and_descriptors(pairs_world)
    loss = SequenceLoss(FinetuneConfig())(batch, descriptors)
    reference, query = batch.signals(descriptors.detach())
    warp = gdtw(reference, query, GDTWConfig(subsequence=True, lam=0.1, grid_size=50)).warp.numpy()
    expected = []
    for item, pair in enumerate(pairs):
        positions = np.stack([np.interp(warp[item], pair.reference_times_s, pair.reference_positions[:, axis])
                              for axis in (0, 1)], axis=1)
        expected.append(((positions - pair.true_positions) ** 2).sum(1).max())
    # The layer polishes the DP answer (one Newton step), so its warp differs from the DP's slightly.
    assert float(loss.detach()) == pytest.approx(np.mean(expected), rel=0.05)
    loss.backward()
    assert torch.isfinite(descriptors.grad).all() and descriptors.grad.abs().sum() > 0


def test_decdtw_loss_gradient_matches_finite_differences(pairs_world):
    _, batch, descriptors = batch_and_descriptors(pairs_world, count=2)
    criterion = SequenceLoss(FinetuneConfig(reduction="mean"))
    criterion(batch, descriptors).backward()
    direction = torch.randn(descriptors.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps = 1e-6
    with torch.no_grad():
        plus = criterion(batch, descriptors + eps * direction)
        minus = criterion(batch, descriptors - eps * direction)
    numeric = float(plus - minus) / (2 * eps)
    analytic = float((descriptors.grad * direction).sum())
    assert analytic == pytest.approx(numeric, rel=1e-3, abs=1e-6)


def test_dilate_penalty_is_squared_gps_distance(pairs_world):
    pairs, batch, descriptors = batch_and_descriptors(pairs_world, count=2)
    from seqvpr.align.losses import dilate_loss

    omega = np.array([[[np.sum((q - r) ** 2) for r in pair.reference_positions] for q in pair.query_positions]
                      for pair in pairs])
    reference, query = batch.signals(descriptors)
    expected = dilate_loss(reference, query, torch.from_numpy(omega), alpha=0.0, gamma=0.1, subsequence=True)
    loss = SequenceLoss(FinetuneConfig(loss="dilate"))(batch, descriptors)
    assert float(loss.detach()) == pytest.approx(float(expected.detach().mean()), rel=1e-9)


@pytest.mark.parametrize("loss", ["otam", "along-gt", "soft-dtw"])
def test_baseline_losses_have_gradients(pairs_world, loss):
    _, batch, descriptors = batch_and_descriptors(pairs_world, count=2)
    SequenceLoss(FinetuneConfig(loss=loss))(batch, descriptors).backward()
    assert torch.isfinite(descriptors.grad).all() and descriptors.grad.abs().sum() > 0


def test_frozen_cache_matches_the_frozen_layers_and_is_reused(pairs_world, tmp_path):
    encoder = load_encoder(pairs_world.base_model)
    frozen, _ = split_encoder(encoder, "conv1_2")
    paths = sorted((pairs_world.prepared).glob("*/images/*.png"))[:20] or sorted(pairs_world.prepared.rglob("*.png"))[:20]
    cached = FrozenFeatures(frozen, tmp_path / "cache", torch.device("cpu"))
    cached.prepare(paths)
    direct = FrozenFeatures(frozen, None, torch.device("cpu"))(paths)
    assert cached(paths).shape == direct.shape == (20, 64, 36, 48)
    torch.testing.assert_close(cached(paths), direct, rtol=2e-3, atol=2e-3)  # float16 storage
    (store,) = (tmp_path / "cache").iterdir()
    stamp = (store / "features.npy").stat().st_mtime_ns
    FrozenFeatures(frozen, tmp_path / "cache", torch.device("cpu")).prepare(paths)
    assert (store / "features.npy").stat().st_mtime_ns == stamp
    with torch.no_grad():
        encoder.backbone[0].weight.add_(0.01)  # other frozen weights: another cache folder
    FrozenFeatures(frozen, tmp_path / "cache", torch.device("cpu")).prepare(paths[:2])
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_runs_adding_other_images_to_one_cache_at_once_take_turns(pairs_world, tmp_path, monkeypatch):
    """The first run stops between replacing features.npy and keys.json; a second run adding
    other images meanwhile must wait, or the first run's keys would end up over the second
    run's features."""
    frozen, _ = split_encoder(load_encoder(pairs_world.base_model), "conv1_2")
    paths = sorted(pairs_world.prepared.rglob("*.png"))[:12]
    cache, device = tmp_path / "cache", torch.device("cpu")
    paused, resume, waiting = threading.Event(), threading.Event(), threading.Event()
    atomic_path, exclusive = frozen_module.atomic_path, frozen_module._exclusive

    @contextlib.contextmanager
    def pausing_atomic_path(path):
        with atomic_path(path) as temporary:
            yield temporary
        if path.name == "features.npy" and threading.current_thread().name == "first":
            paused.set()
            resume.wait()

    def announced_exclusive(lock):
        if threading.current_thread().name == "second":
            waiting.set()
        return exclusive(lock)

    monkeypatch.setattr(frozen_module, "atomic_path", pausing_atomic_path)
    monkeypatch.setattr(frozen_module, "_exclusive", announced_exclusive)
    first = threading.Thread(target=FrozenFeatures(frozen, cache, device).prepare, args=(paths[:6],), name="first")
    second = threading.Thread(target=FrozenFeatures(frozen, cache, device).prepare, args=(paths[6:],), name="second")
    first.start()
    paused.wait()
    second.start()
    while not waiting.is_set() and second.is_alive():  # blocked on the lock, or done if there were none
        time.sleep(0.01)
    resume.set()
    first.join()
    second.join()
    (store,) = cache.iterdir()
    assert len(json.loads((store / "keys.json").read_text())) == 12
    features = FrozenFeatures(frozen, cache, device)
    features.prepare(paths)
    assert len(json.loads((store / "keys.json").read_text())) == 12  # nothing recomputed
    torch.testing.assert_close(features(paths), FrozenFeatures(frozen, None, device)(paths), rtol=2e-3, atol=2e-3)


def test_a_cache_write_cut_short_by_a_kill_is_cleaned_up_by_the_next_writer(pairs_world, tmp_path):
    frozen, _ = split_encoder(load_encoder(pairs_world.base_model), "conv1_2")
    paths = sorted(pairs_world.prepared.rglob("*.png"))[:4]
    FrozenFeatures(frozen, tmp_path, torch.device("cpu")).prepare(paths[:2])
    (store,) = tmp_path.iterdir()
    # A run that dies inside atomic_path while replacing features.npy (os._exit skips every cleanup).
    dying = "import os, sys\nfrom seqvpr.io import atomic_path\nwith atomic_path(sys.argv[1]) as temporary:\n" \
            "    temporary.write_bytes(b'half the features')\n    os._exit(9)\n"
    assert subprocess.run([sys.executable, "-c", dying, str(store / "features.npy")]).returncode == 9
    assert len(list(store.glob(".features.npy.*.tmp"))) == 1
    FrozenFeatures(frozen, tmp_path, torch.device("cpu")).prepare(paths[:2])  # nothing to add: a reader
    assert len(list(store.glob(".features.npy.*.tmp"))) == 1
    features = FrozenFeatures(frozen, tmp_path, torch.device("cpu"))
    features.prepare(paths)
    assert not list(store.glob(".*.tmp"))
    torch.testing.assert_close(features(paths), FrozenFeatures(frozen, None, torch.device("cpu"))(paths),
                               rtol=2e-3, atol=2e-3)


def test_layer_names_follow_torchvision_vgg16():
    torchvision = pytest.importorskip("torchvision")
    names, block, within = {}, 1, 0
    vgg = torchvision.models.vgg
    for index, layer in enumerate(vgg.make_layers(vgg.cfgs["D"])):  # what vgg16().features is built from
        if isinstance(layer, torch.nn.MaxPool2d):
            block, within = block + 1, 0
        elif isinstance(layer, torch.nn.Conv2d):
            within += 1
            names[f"conv{block}_{within}"] = index
    assert VGG16_CONV_LAYERS == names and len(names) == 13 and names["conv5_3"] == 28


def test_split_freezes_the_layers_before_the_trainable_one(pairs_world):
    encoder = load_encoder(pairs_world.base_model)
    frozen, trainable = split_encoder(encoder, "conv1_2")
    assert [p.requires_grad for p in frozen.parameters()] == [False, False]  # conv1_1
    assert all(p.requires_grad for p in trainable.parameters())
    assert trainable.layers[0] is encoder.backbone[2] and trainable.netvlad is encoder.netvlad
    images = torch.rand(2, 3, 36, 48)
    torch.testing.assert_close(trainable(frozen(images)), encoder(images))


def test_finetune_writes_a_run_that_trains_only_the_trainable_layers(pairs_world, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(finetune_args(pairs_world, out, "--max-steps", "6")) == 0
    assert "6 steps; best val max error" in capsys.readouterr().out
    for name in ("best.pt", "last.pt", "metrics.csv", "curves.png", "config.yaml", "command.txt"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(row["step"]) for row in rows] == [3, 6]  # 5 validations per epoch, budget 6 steps
    assert set(rows[0]) == {"step", "epoch", "train_loss", "val_max_error_m", "val_mean_error_m", "lr"}
    assert (out / "command.txt").read_text().startswith("seqvpr finetune --train")
    assert "val_max_pairs: 16" in (out / "config.yaml").read_text()
    base, tuned = load_encoder(pairs_world.base_model), load_encoder(out / "last.pt")
    assert torch.equal(base.backbone[2].weight, tuned.backbone[2].weight)  # frozen
    assert not torch.equal(base.netvlad.centroids, tuned.netvlad.centroids)  # trained
    load_encoder(out / "best.pt")


def test_bad_inputs_are_named(pairs_world, tmp_path, capsys):
    lines = pairs_world.train.read_text().splitlines()
    empty = tmp_path / "empty.csv"
    empty.write_text(lines[0] + "\n")
    assert main(finetune_args(pairs_world, tmp_path / "a", "--max-steps", "1")[:2] + [str(empty)]
                + finetune_args(pairs_world, tmp_path / "a")[3:]) == 2
    assert f"the train split is empty: no pairs in {empty}" in capsys.readouterr().err
    header = lines[0].split(",")
    column = header.index("query_image_3")
    row = lines[2].split(",")
    row[column] = "images/missing.png"
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join([lines[0], lines[1], ",".join(row)]) + "\n")
    args = finetune_args(pairs_world, tmp_path / "b")
    args[2] = str(broken)
    assert main(args) == 2
    error = capsys.readouterr().err
    assert f"{broken}:1: image" in error and "missing.png does not exist" in error
    assert main(finetune_args(pairs_world, tmp_path / "c", "--trainable", "conv5_1")) == 2
    assert "trainable_from 'conv5_1' is not in this encoder" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_nan_loss_stops_naming_the_step_and_keeps_best(pairs_world, tmp_path, capsys):
    # An absurd learning rate: the first Adam steps send NetVLAD's weights to ~1e30 and the
    # loss or its gradient overflows a few steps later.
    assert main(finetune_args(pairs_world, tmp_path / "run", "--lr", "1e30")) == 2
    error = capsys.readouterr().err
    step = int(re.search(r"non-finite loss or gradient at step (\d+)", error).group(1))
    assert f"nonfinite-step{step}.json" in error
    dump = json.loads((tmp_path / "run" / f"nonfinite-step{step}.json").read_text())
    assert dump["step"] == step and len(dump["batch_indices"]) == 8
    assert all(item.startswith(f"{pairs_world.train}:") for item in dump["items"])
    for name in ("best.pt", "last.pt"):  # nothing written at or after the bad step
        path = tmp_path / "run" / name
        assert not path.exists() or torch.load(path, weights_only=True)["training"]["step"] < step


def test_resume_needs_a_run_folder_and_a_new_run_needs_its_inputs(tmp_path, capsys):
    assert main(["finetune", "--resume", str(tmp_path)]) == 2
    assert f"cannot resume {tmp_path}: no seqvpr-options.yaml there" in capsys.readouterr().err
    assert main(["finetune", "--out", str(tmp_path / "run")]) == 2
    assert "missing --train, --val, --traverses, --model (or --resume RUN)" in capsys.readouterr().err
