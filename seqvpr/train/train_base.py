r"""Single-image NetVLAD training with hard-negative mining (the paper's base network).

Training images come from prepared traverses, split along the route like ``seqvpr pairs``
does (:func:`~seqvpr.data.pair_files.route_splits`): the reference traverse's frames in
the train/val region are the database; the train query traverses' frames there are the
training queries, the val query traverses' frames the validation queries; the test
region is never read. For a query q:

- positives: database frames within ``positive_radius_m`` (10 m); the one closest to q in
  descriptor space is used;
- negatives: database frames beyond ``negative_radius_m`` (25 m); a pool of
  ``negative_pool`` of them is drawn at random (seeded by the run's seed, the step and q,
  so that DDP processes, each taking part of the batch, mine what one process would) and
  the ``negatives`` (10) closest to q in descriptor space are found with faiss;
- loss: the triplet margin loss mean_n max(0, ||q - p|| - ||q - n|| + margin), margin 0.1.

The descriptors used for mining (database and queries) are recomputed with the current
model when the run starts or resumes and after every validation (by every DDP process,
from the same weights), so a resumed run mines exactly what an uninterrupted one would.
Validation: recall@1/5/10 of the val queries against the database, correct when a
retrieved frame lies within ``recall_radius_m`` (25 m); ``best.pt`` maximises recall@5.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from seqvpr.data.pair_files import route_splits
from seqvpr.data.traverse import Traverse, find_traverses
from seqvpr.errors import SeqvprError
from seqvpr.train.frozen import FrozenFeatures, TrainablePart, split_encoder
from seqvpr.train.distributed import setup_distributed, teardown_distributed
from seqvpr.train.run import (
    LoopConfig, TrainingResult, TrainingTask, open_run, train,
)
from seqvpr.vpr._faiss import import_faiss
from seqvpr.vpr.weights import encoder_checkpoint, load_encoder

__all__ = ["TrainBaseConfig", "train_base"]

logger = logging.getLogger(__name__)

RECALL_AT = (1, 5, 10)


@dataclass(frozen=True)
class TrainBaseConfig:
    """Options of ``seqvpr train-base`` (``config/train_base.yaml`` documents each key).

    Attributes:
        margin: triplet margin (on descriptor distances).
        negatives: hard negatives per query.
        negative_pool: negatives drawn at random per query, searched for the hardest.
        positive_radius_m: database frames this close to a query are positives.
        negative_radius_m: database frames farther than this are negatives.
        recall_radius_m: a retrieved frame this close is a correct match (validation).
        lr: Adam learning rate.
        trainable_from: first trainable layer (see :func:`~seqvpr.train.frozen.split_encoder`).
        loop: epochs, batch size (queries), validations per epoch, budget, seed, AMP.
        reference: the database traverse; None: the first by name.
        train_fraction: share of the reference route in the train/val region.
        query_stride: use every n-th frame of a query traverse as a query.
        frozen_cache: cache the frozen layers' output on disk.
        cache_dir: cache folder; None: ``<run>/frozen-features``.
        device: ``cpu`` or ``cuda``.
        image_batch: images per batch when computing descriptors.
    """

    margin: float = 0.1
    negatives: int = 10
    negative_pool: int = 1000
    positive_radius_m: float = 10.0
    negative_radius_m: float = 25.0
    recall_radius_m: float = 25.0
    lr: float = 1e-5
    trainable_from: str = "conv5_1"
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=10, batch_size=4))
    reference: str | None = None
    train_fraction: float = 0.7
    query_stride: int = 1
    frozen_cache: bool = True
    cache_dir: Path | None = None
    device: str = "cpu"
    image_batch: int = 16

    def __post_init__(self) -> None:
        if not 0 < self.positive_radius_m < self.negative_radius_m:
            raise ValueError("need 0 < positive_radius_m < negative_radius_m")
        if self.negatives < 1 or self.negative_pool < self.negatives:
            raise ValueError(f"need 1 <= negatives <= negative_pool, got {self.negatives}, {self.negative_pool}")
        if self.margin <= 0 or self.lr <= 0 or self.query_stride < 1:
            raise ValueError("margin, lr must be > 0 and query_stride >= 1")


@dataclass(frozen=True)
class _Frames:
    paths: list[Path]
    positions: np.ndarray  # (N, 2) easting, northing metres


def _frames(traverses: list[Traverse], masks: dict[str, np.ndarray], stride: int) -> _Frames:
    paths, positions = [], []
    for traverse in traverses:
        keep = np.flatnonzero(masks.get(traverse.name, np.ones(len(traverse), bool)))[::stride]
        paths += [traverse.image_path(i) for i in keep]
        positions.append(traverse.positions[keep])
    return _Frames(paths, np.concatenate(positions) if positions else np.zeros((0, 2)))


def _distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    return np.linalg.norm(queries[:, None] - database[None], axis=-1)


def _describe(trainable: TrainablePart, features: FrozenFeatures, paths: list[Path], batch: int) -> np.ndarray:
    was_training = trainable.training
    trainable.eval()
    with torch.no_grad():
        out = torch.cat([trainable(features(paths[s : s + batch])).float().cpu() for s in range(0, len(paths), batch)])
    trainable.train(was_training)
    return out.numpy()


class _Miner:
    """Hard-negative mining over cached descriptors, refreshed at run start and checkpoints."""

    def __init__(self, config, database, queries, positives, negatives, trainable, features) -> None:
        self.config, self.database, self.queries = config, database, queries
        self.positives, self.negatives = positives, negatives
        self.trainable, self.features = trainable, features
        self.step = 0
        self.database_descriptors = self.query_descriptors = None

    def before_step(self, step: int, fresh: bool) -> None:
        self.step = step
        if fresh:
            self.database_descriptors = _describe(self.trainable, self.features, self.database.paths,
                                                  self.config.image_batch)
            self.query_descriptors = _describe(self.trainable, self.features, self.queries.paths,
                                               self.config.image_batch)

    def batch(self, indices: list[int]) -> list[Path]:
        """Per query: its path, its best positive, its hardest negatives (12 paths each)."""
        faiss = import_faiss()
        paths = []
        for query in indices:
            # Seeded per query: the same pool whichever process (under DDP) takes the query.
            generator = np.random.default_rng([self.config.loop.seed, self.step, query])
            descriptor = self.query_descriptors[query : query + 1]
            positives = self.positives[query]
            best = positives[int(np.argmax(self.database_descriptors[positives] @ descriptor[0]))]
            candidates = self.negatives[query]
            pool = generator.choice(candidates, size=min(self.config.negative_pool, len(candidates)), replace=False)
            index = faiss.IndexFlatIP(descriptor.shape[1])
            index.add(np.ascontiguousarray(self.database_descriptors[pool]))
            _, nearest = index.search(np.ascontiguousarray(descriptor), self.config.negatives)
            hardest = pool[nearest[0]]
            paths += [self.queries.paths[query], self.database.paths[best],
                      *(self.database.paths[i] for i in hardest)]
        return paths


def _recalls(query_descriptors, database_descriptors, distances, radius) -> dict[str, float]:
    faiss = import_faiss()
    index = faiss.IndexFlatIP(database_descriptors.shape[1])
    index.add(np.ascontiguousarray(database_descriptors))
    _, retrieved = index.search(np.ascontiguousarray(query_descriptors), max(RECALL_AT))
    correct = np.take_along_axis(distances, retrieved, axis=1) <= radius
    return {f"val_recall@{n}": float(correct[:, :n].any(axis=1).mean()) for n in RECALL_AT}


def train_base(
    traverses: str | os.PathLike,
    base_model: str | os.PathLike,
    out: str | os.PathLike,
    config: TrainBaseConfig,
    *,
    overwrite: bool = False,
    command_line: str = "seqvpr train-base",
    progress: bool = True,
) -> TrainingResult:
    """Trains an encoder on single images with a triplet loss; writes the run folder ``out``.

    Args:
        traverses: folder of prepared traverses (``<name>/traverse.csv``).
        base_model: the starting encoder (any checkpoint ``load_encoder`` reads, e.g. an
            ImageNet-initialised VGG16 with k-means clusters).
        out: the run folder.
        config: the options.
        overwrite: rebuild ``out`` if it holds a run with other options.
        command_line: recorded in ``out/command.txt``.
        progress: tqdm bars.

    Raises:
        SeqvprError: missing inputs or images, no validation traverse, no training query
            with a positive, a ``trainable_from`` layer the model lacks.
    """
    traverses, base_model = Path(traverses), Path(base_model)
    if not base_model.is_file():
        raise SeqvprError(f"base model {base_model} does not exist")
    found = find_traverses(traverses, check_images=True)
    splits = {split.name: split for split in route_splits(found, config.reference, config.train_fraction)}
    if "val" not in splits:
        raise SeqvprError(f"{traverses}: the val split is empty (needs a reference and at least two other traverses)")
    by_name = {traverse.name: traverse for traverse in found}
    train_split, val_split = splits["train"], splits["val"]
    database = _frames([by_name[n] for n in train_split.references], train_split.masks, 1)
    queries = _frames([by_name[n] for n in train_split.queries], train_split.masks, config.query_stride)
    val_queries = _frames([by_name[n] for n in val_split.queries], val_split.masks, config.query_stride)
    distances = _distances(queries.positions, database.positions)
    positives = [np.flatnonzero(row <= config.positive_radius_m) for row in distances]
    negatives = [np.flatnonzero(row > config.negative_radius_m) for row in distances]
    usable = [i for i in range(len(queries.paths)) if len(positives[i]) and len(negatives[i]) >= config.negatives]
    if not usable:
        raise SeqvprError(f"{traverses}: no training query has a database frame within {config.positive_radius_m} m "
                          f"and {config.negatives} beyond {config.negative_radius_m} m")
    queries = _Frames([queries.paths[i] for i in usable], queries.positions[usable])
    positives, negatives = [positives[i] for i in usable], [negatives[i] for i in usable]
    val_distances = _distances(val_queries.positions, database.positions)
    reachable = val_distances.min(axis=1) <= config.recall_radius_m
    if not reachable.any():
        raise SeqvprError(f"{traverses}: no val query lies within {config.recall_radius_m} m of the database")
    val_queries = _Frames([p for p, r in zip(val_queries.paths, reachable) if r], val_queries.positions[reachable])
    val_distances = val_distances[reachable]
    try:
        encoder = load_encoder(base_model)
    except ValueError as error:
        raise SeqvprError(f"base model {base_model}: {error}") from error
    frozen, trainable = split_encoder(encoder, config.trainable_from)
    distributed = setup_distributed(config.device)
    try:
        options = {"traverses": traverses, "base_model": base_model}
        run = open_run(Path(out), options, config, command="train-base", command_line=command_line,
                       overwrite=overwrite, distributed=distributed)
        encoder.to(distributed.device)
        cache = (config.cache_dir or run.path / "frozen-features") if config.frozen_cache else None
        features = FrozenFeatures(frozen, cache, distributed.device, config.image_batch)
        everything = database.paths + queries.paths + val_queries.paths
        if distributed.is_main:
            features.prepare(everything, progress=progress)
        distributed.barrier()
        if not distributed.is_main:
            features.prepare(everything)
        miner = _Miner(config, database, queries, positives, negatives, trainable, features)
        group = 2 + config.negatives

        def loss(model: nn.Module, paths: list[Path]) -> Tensor:
            descriptors = model(features(paths)).float().reshape(len(paths) // group, group, -1)
            anchor, positive, negative = descriptors[:, :1], descriptors[:, 1:2], descriptors[:, 2:]
            return nn.functional.triplet_margin_loss(
                anchor.expand_as(negative), positive.expand_as(negative), negative, margin=config.margin, p=2
            )

        def validate() -> dict[str, float]:
            return _recalls(_describe(trainable, features, val_queries.paths, config.image_batch),
                            _describe(trainable, features, database.paths, config.image_batch),
                            val_distances, config.recall_radius_m)

        task = TrainingTask(
            model=trainable,
            optimizer=torch.optim.Adam(trainable.parameters(), lr=config.lr),
            scheduler=None,
            dataset_size=len(queries.paths),
            load_batch=miner.batch,
            loss=loss,
            validate=validate,
            selection_metric="val_recall@5",
            export=lambda: encoder_checkpoint(encoder),
            describe_batch=lambda indices: [str(queries.paths[i]) for i in indices],
            maximize=True,
            before_step=miner.before_step,
        )
        logger.info("train-base: %d database frames, %d training queries, %d val queries",
                    len(database.paths), len(queries.paths), len(val_queries.paths))
        return train(run, task, config.loop, distributed, progress)
    finally:
        teardown_distributed(distributed)
