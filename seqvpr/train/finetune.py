r"""Sequence fine-tuning of the encoder through the alignment (paper §7.2, appendix A.5).

One encoder embeds reference and query frames. For a batch of sequence pairs the loss is
one of:

- ``decdtw`` (the paper's method): the DecDTW warp phi* (subsequence GDTW, lambda 0.1) is
  read off the reference track, p_i = P_ref(phi*(t_i)) (linear between reference frames,
  differentiable in phi*), and the loss is G = max_i ||p_i - p_i^true||^2 over the query
  frames (``reduction: mean`` and ``penalty: huber`` are options), averaged over pairs.
  Gradients reach the encoder through the implicit derivative of phi*.
- baselines trained the same way: ``otam`` (Soft-DTW with free ends, no ground truth),
  ``soft-dtw`` (Soft-DTW of the whole sequences), ``along-gt`` (the GDTW objective along
  the true warp) and ``dilate`` (alpha 0: the soft alignment weighted by
  Omega_ij = ||gps(query i) - gps(reference j)||^2, gamma 0.1).

Validation (five times per epoch by default) localises every val pair with GDTW and
reports the mean over pairs of the per-sequence max error (``val_max_error_m``, which
selects ``best.pt``, as the paper does) and of the mean error (``val_mean_error_m``).
The frozen layers' outputs come from :class:`~seqvpr.train.frozen.FrozenFeatures`; the
loop, checkpoints, resume and DDP from :mod:`seqvpr.train.run`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from seqvpr.align import DecDTW, GDTWConfig, Signal
from seqvpr.align.losses import along_gt_loss, dilate_loss, otam_loss, soft_dtw_loss, warp_error_loss
from seqvpr.data.pair_files import read_pairs
from seqvpr.data.pairs import SequencePair
from seqvpr.errors import SeqvprError
from seqvpr.train.frozen import FrozenFeatures, split_encoder
from seqvpr.train.distributed import Distributed, setup_distributed, teardown_distributed
from seqvpr.train.run import (
    LoopConfig, RunFolder, TrainingResult, TrainingTask, open_run, train,
)
from seqvpr.vpr.weights import encoder_checkpoint, load_encoder
from seqvpr.vpr.localize import LocalizerConfig, localize
from seqvpr.vpr.metrics import sequence_errors

__all__ = ["LOSSES", "FinetuneConfig", "PairBatch", "SequenceLoss", "finetune", "read_pair_files"]

logger = logging.getLogger(__name__)

LOSSES = ("decdtw", "otam", "along-gt", "dilate", "soft-dtw")


@dataclass(frozen=True)
class FinetuneConfig:
    """Options of ``seqvpr finetune`` (``config/finetune.yaml`` documents each key).

    Attributes:
        loss: one of :data:`LOSSES`.
        reduction: ``max`` or ``mean`` over query frames (``decdtw``).
        penalty: ``squared`` or ``huber`` position error (``decdtw``).
        huber_delta_m: Huber threshold in metres.
        lam: GDTW/DecDTW regularisation weight lambda (training, along-gt and validation).
        grid_size: GDTW candidates per knot M.
        gamma: Soft-DTW smoothing (``otam``, ``soft-dtw``, ``dilate``).
        dilate_alpha: weight of DILATE's shape term.
        trainable_from: first trainable layer (``conv5_1``: conv5 + NetVLAD; ``netvlad``).
        lr: Adam learning rate.
        loop: epochs, batch size, validations per epoch, step budget, seed, AMP.
        frozen_cache: cache the frozen layers' output on disk (float16).
        cache_dir: cache folder; None: ``<run>/frozen-features``.
        val_max_pairs: validate on at most this many val pairs (evenly spaced), or None.
        device: ``cpu`` or ``cuda``.
        image_batch: images per batch when computing frozen features.
        validation_batch: pairs per batch in validation.
    """

    loss: str = "decdtw"
    reduction: str = "max"
    penalty: str = "squared"
    huber_delta_m: float = 1.0
    lam: float = 0.1
    grid_size: int = 50
    gamma: float = 0.1
    dilate_alpha: float = 0.0
    trainable_from: str = "conv5_1"
    lr: float = 1e-4
    loop: LoopConfig = field(default_factory=LoopConfig)
    frozen_cache: bool = True
    cache_dir: Path | None = None
    val_max_pairs: int | None = None
    device: str = "cpu"
    image_batch: int = 16
    validation_batch: int = 64

    def __post_init__(self) -> None:
        choices = {"loss": LOSSES, "reduction": ("max", "mean"), "penalty": ("squared", "huber")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.lr <= 0 or self.gamma <= 0 or self.huber_delta_m <= 0 or self.lam < 0:
            raise ValueError("lr, gamma and huber_delta_m must be > 0 and lam >= 0")
        if self.val_max_pairs is not None and self.val_max_pairs < 1:
            raise ValueError(f"val_max_pairs must be >= 1 or null, got {self.val_max_pairs}")
        if not self.device.startswith(("cpu", "cuda")):
            raise ValueError(f"device must be cpu or cuda[:N], got {self.device!r}")


def read_pair_files(paths: Sequence[Path], traverses: Path, split: str) -> list[tuple[SequencePair, str]]:
    """Pairs of one split with their origin (``file:row``), images checked to exist.

    Raises:
        SeqvprError: a missing or malformed file, an empty split, pairs of other lengths
            than the first file's, or a missing image (naming file, row and image).
    """
    pairs: list[tuple[SequencePair, str]] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise SeqvprError(f"{split} pairs file {path} does not exist")
        try:
            rows = read_pairs(path)
        except ValueError as error:
            raise SeqvprError(f"{split} pairs file {path}: {error}") from error
        pairs += [(pair, f"{path}:{row}") for row, pair in enumerate(rows)]
    if not pairs:
        raise SeqvprError(f"the {split} split is empty: no pairs in {', '.join(map(str, paths)) or 'no files'}")
    shape = (len(pairs[0][0].reference_images), len(pairs[0][0].query_images))
    for pair, where in pairs:
        if (len(pair.reference_images), len(pair.query_images)) != shape:
            raise SeqvprError(f"{where}: pair lengths differ from {pairs[0][1]} {shape}")
        for traverse, names in ((pair.reference, pair.reference_images), (pair.query, pair.query_images)):
            for name in names:
                if not (traverses / traverse / str(name)).is_file():
                    raise SeqvprError(f"{where}: image {traverses / traverse / str(name)} does not exist")
    return pairs


@dataclass(frozen=True)
class PairBatch:
    """B pairs as rows into a list of unique images.

    Attributes:
        images: the U unique image paths of the batch.
        reference_rows: (B, R) indices into ``images``; query_rows likewise (B, Q).
        reference_times, query_times: (B, R), (B, Q) seconds.
        reference_positions: (B, R, 2) metres, relative to the pair's first reference frame.
        query_positions, true_positions: (B, Q, 2) metres, same origin.
        true_warp: (B, Q) reference seconds.
    """

    images: list[Path]
    reference_rows: Tensor
    query_rows: Tensor
    reference_times: Tensor
    query_times: Tensor
    reference_positions: Tensor
    query_positions: Tensor
    true_positions: Tensor
    true_warp: Tensor

    @classmethod
    def build(cls, pairs: Sequence[SequencePair], traverses: Path, device: torch.device) -> PairBatch:
        index: dict[Path, int] = {}

        def rows(traverse: str, names: np.ndarray) -> list[int]:
            return [index.setdefault(traverses / traverse / str(name), len(index)) for name in names]

        reference_rows = [rows(p.reference, p.reference_images) for p in pairs]
        query_rows = [rows(p.query, p.query_images) for p in pairs]
        origin = [p.reference_positions[:1] for p in pairs]

        def tensor(values) -> Tensor:
            return torch.as_tensor(np.stack(values), dtype=torch.float64, device=device)

        return cls(
            images=list(index),
            reference_rows=torch.tensor(reference_rows, device=device),
            query_rows=torch.tensor(query_rows, device=device),
            reference_times=tensor([p.reference_times_s for p in pairs]),
            query_times=tensor([p.query_times_s for p in pairs]),
            reference_positions=tensor([p.reference_positions - o for p, o in zip(pairs, origin)]),
            query_positions=tensor([p.query_positions - o for p, o in zip(pairs, origin)]),
            true_positions=tensor([p.true_positions - o for p, o in zip(pairs, origin)]),
            true_warp=tensor([p.true_warp_s for p in pairs]),
        )

    def signals(self, descriptors: Tensor) -> tuple[Signal, Signal]:
        """Reference and query signals from the unique images' descriptors (U, D), float64."""
        values = descriptors.to(torch.float64)
        return (Signal(self.reference_times, values[self.reference_rows]),
                Signal(self.query_times, values[self.query_rows]))


class SequenceLoss(nn.Module):
    """The training loss of a batch of pairs given their descriptors, shape () (mean over pairs).

    Args:
        config: selects the loss and its options.
    """

    def __init__(self, config: FinetuneConfig) -> None:
        super().__init__()
        self.config = config
        self.layer = DecDTW(subsequence=True, lam=config.lam, grid_size=config.grid_size)

    def forward(self, batch: PairBatch, descriptors: Tensor) -> Tensor:
        config = self.config
        reference, query = batch.signals(descriptors)
        if config.loss == "decdtw":
            warp = self.layer(reference, query)
            predicted = Signal(batch.reference_times, batch.reference_positions).at(warp)
            per_pair = warp_error_loss(predicted, batch.true_positions, reduction=config.reduction,
                                       penalty=config.penalty, huber_delta=config.huber_delta_m)
        elif config.loss == "along-gt":
            per_pair = along_gt_loss(reference, query, batch.true_warp, self.layer.config)
        elif config.loss == "otam":
            per_pair = otam_loss(reference, query, config.gamma)
        elif config.loss == "soft-dtw":
            per_pair = soft_dtw_loss(reference, query, config.gamma)
        else:
            omega = (batch.query_positions[:, :, None] - batch.reference_positions[:, None]).square().sum(-1)
            per_pair = dilate_loss(reference, query, omega, config.dilate_alpha, config.gamma, subsequence=True)
        return per_pair.mean()


def _validation(chosen, traverses, features, trainable, config, device):
    batches = [PairBatch.build(chosen[s : s + config.validation_batch], traverses, device)
               for s in range(0, len(chosen), config.validation_batch)]
    localizer = LocalizerConfig("gdtw", GDTWConfig(subsequence=True, lam=config.lam, grid_size=config.grid_size))

    def validate() -> dict[str, float]:
        maxima, means = [], []
        for batch in batches:
            descriptors = torch.cat([trainable(features(batch.images[s : s + config.image_batch]))
                                     for s in range(0, len(batch.images), config.image_batch)])
            reference, query = batch.signals(descriptors)
            located = localize(reference, query, batch.reference_positions, localizer)
            errors = sequence_errors(located.positions, batch.true_positions)
            maxima.append(errors.max)
            means.append(errors.mean)
        return {"val_max_error_m": float(torch.cat(maxima).mean()), "val_mean_error_m": float(torch.cat(means).mean())}

    return validate


def finetune(
    train_pairs: Sequence[str | os.PathLike],
    val_pairs: Sequence[str | os.PathLike],
    traverses: str | os.PathLike,
    base_model: str | os.PathLike,
    out: str | os.PathLike,
    config: FinetuneConfig,
    *,
    overwrite: bool = False,
    command_line: str = "seqvpr finetune",
    progress: bool = True,
) -> TrainingResult:
    """Fine-tunes ``base_model`` on sequence pairs; writes the run folder ``out``.

    Under ``torchrun`` every process calls this; they train one model with DDP.

    Args:
        train_pairs: pairs CSVs of the training split (``seqvpr pairs`` output).
        val_pairs: pairs CSVs of the validation split.
        traverses: the prepared traverses folder the pairs refer to.
        base_model: any checkpoint :func:`~seqvpr.vpr.weights.load_encoder` reads.
        out: the run folder (same options resume; see :func:`seqvpr.train.run.open_run`).
        config: the options.
        overwrite: rebuild ``out`` if it holds a run with other options.
        command_line: recorded in ``out/command.txt``.
        progress: tqdm bars.

    Returns:
        The :class:`~seqvpr.train.run.TrainingResult`; ``out/best.pt`` and ``out/last.pt``
        are encoder checkpoints (``seqvpr evaluate``/``extract`` read them).

    Raises:
        SeqvprError: missing inputs or images, an empty split, a ``trainable_from`` layer
            the base model lacks, a non-finite loss (:class:`NonFiniteLossError`).
    """
    traverses, base_model = Path(traverses), Path(base_model)
    files = {"train_pairs": [Path(p) for p in train_pairs], "val_pairs": [Path(p) for p in val_pairs]}
    train_set = read_pair_files(files["train_pairs"], traverses, "train")
    val_set = read_pair_files(files["val_pairs"], traverses, "val")
    if config.val_max_pairs is not None and len(val_set) > config.val_max_pairs:
        picks = np.linspace(0, len(val_set) - 1, config.val_max_pairs).round().astype(int)
        val_set = [val_set[i] for i in picks]
    if not base_model.is_file():
        raise SeqvprError(f"base model {base_model} does not exist")
    try:
        encoder = load_encoder(base_model)
    except ValueError as error:
        raise SeqvprError(f"base model {base_model}: {error}") from error
    frozen, trainable = split_encoder(encoder, config.trainable_from)
    distributed = setup_distributed(config.device)
    try:
        options = {**files, "traverses": traverses, "base_model": base_model}
        run = open_run(Path(out), options, config, command="finetune", command_line=command_line,
                       overwrite=overwrite, distributed=distributed)
        return _run(run, train_set, val_set, traverses, config, encoder, frozen, trainable, distributed, progress)
    finally:
        teardown_distributed(distributed)


def _run(run: RunFolder, train_set, val_set, traverses, config, encoder, frozen, trainable,
         distributed: Distributed, progress) -> TrainingResult:
    device = distributed.device
    encoder.to(device)
    cache = (config.cache_dir or run.path / "frozen-features") if config.frozen_cache else None
    features = FrozenFeatures(frozen, cache, device, config.image_batch)
    images = sorted({traverses / p.reference / str(n) for p, _ in train_set + val_set for n in p.reference_images}
                    | {traverses / p.query / str(n) for p, _ in train_set + val_set for n in p.query_images})
    if distributed.is_main:
        features.prepare(images, progress=progress)
    distributed.barrier()
    if not distributed.is_main:
        features.prepare(images)
    criterion = SequenceLoss(config)
    pairs = [pair for pair, _ in train_set]

    def loss(model: nn.Module, batch: PairBatch) -> Tensor:
        descriptors = model(features(batch.images))
        return criterion(batch, descriptors)

    task = TrainingTask(
        model=trainable,
        optimizer=torch.optim.Adam(trainable.parameters(), lr=config.lr),
        scheduler=None,
        dataset_size=len(pairs),
        load_batch=lambda indices: PairBatch.build([pairs[i] for i in indices], traverses, device),
        loss=loss,
        validate=_validation([p for p, _ in val_set], traverses, features, trainable, config, device),
        selection_metric="val_max_error_m",
        export=lambda: encoder_checkpoint(encoder),
        describe_batch=lambda indices: [train_set[i][1] for i in indices],
    )
    return train(run, task, config.loop, distributed, progress)
