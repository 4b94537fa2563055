"""`seqvpr train-base`: mining and recall against brute-force oracles, and a short run."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from seqvpr.cli import main
from seqvpr.train.run import LoopConfig
from seqvpr.train.train_base import TrainBaseConfig, _distances, _Frames, _Miner, _recalls
from seqvpr.vpr.weights import load_encoder


def unit_rows(generator, count, dim=8):
    rows = generator.standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_miner_takes_the_closest_positive_and_the_hardest_pooled_negatives():
    generator = np.random.default_rng(0)
    database = _Frames([Path(f"db{i}") for i in range(60)], np.stack([np.arange(60) * 3.0, np.zeros(60)], 1))
    queries = _Frames([Path(f"q{i}") for i in range(5)], np.stack([np.arange(5) * 30.0 + 1, np.zeros(5)], 1))
    distances = _distances(queries.positions, database.positions)
    config = TrainBaseConfig(negatives=4, negative_pool=20, loop=LoopConfig(seed=3))
    positives = [np.flatnonzero(row <= 10) for row in distances]
    negatives = [np.flatnonzero(row > 25) for row in distances]
    miner = _Miner(config, database, queries, positives, negatives, None, None)
    miner.database_descriptors, miner.query_descriptors = unit_rows(generator, 60), unit_rows(generator, 5)
    miner.step = 7
    paths = miner.batch([2, 4])
    assert miner.batch([4]) == paths[6:]  # a query mines the same alone (another DDP process's batch)
    assert len(paths) == 2 * (2 + 4)
    for slot, query in enumerate([2, 4]):
        group = paths[slot * 6 : (slot + 1) * 6]
        assert group[0] == Path(f"q{query}")
        similarity = miner.database_descriptors @ miner.query_descriptors[query]
        best = max(positives[query], key=lambda i: similarity[i])
        assert group[1] == Path(f"db{best}")
        # The pool depends on (seed, step, query) only, not on the query's place in the batch.
        pool = np.random.default_rng([3, 7, query]).choice(negatives[query], size=20, replace=False)
        hardest = sorted(pool, key=lambda i: -similarity[i])[:4]
        assert group[2:] == [Path(f"db{i}") for i in hardest]
        assert all(distances[query, i] > 25 for i in hardest)


def test_recall_counts_a_query_correct_when_any_top_n_frame_is_close():
    generator = np.random.default_rng(1)
    queries, database = unit_rows(generator, 30), unit_rows(generator, 50)
    distances = generator.uniform(0, 60, (30, 50))
    recalls = _recalls(queries, database, distances, 25.0)
    order = np.argsort(-(queries @ database.T), axis=1)
    for n in (1, 5, 10):
        expected = np.mean([any(distances[q, order[q, :n]] <= 25) for q in range(30)])
        assert recalls[f"val_recall@{n}"] == pytest.approx(expected)


def test_train_base_run(pairs_world, tmp_path, capsys):
    config = tmp_path / "tb.yaml"
    config.write_text("trainable_from: netvlad\nlr: 1.0e-2\nnegative_pool: 50\nquery_stride: 3\n"
                      "loop: {epochs: 1, batch_size: 4, validations_per_epoch: 2}\n")
    out = tmp_path / "run"
    assert main(["train-base", "--traverses", str(pairs_world.prepared), "--model", str(pairs_world.base_model),
                 "--out", str(out), "--config", str(config), "--max-steps", "4", "--no-progress"]) == 0
    assert "4 steps; best val recall@1/5/10 at 25 m" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows and all(0.0 <= float(row["val_recall@5"]) <= float(row["val_recall@10"]) <= 1.0 for row in rows)
    base, tuned = load_encoder(pairs_world.base_model), load_encoder(out / "best.pt")
    assert torch.equal(base.backbone[2].weight, tuned.backbone[2].weight)
    assert not torch.equal(base.netvlad.centroids, load_encoder(out / "last.pt").netvlad.centroids)
