r"""``seqvpr audio-train``: learned audio features for alignment (paper §7.1, appendix A.4).

A bidirectional GRU (:class:`~seqvpr.audio.model.AudioEncoder`) embeds the base features
of both the score excerpt (query, 256 frames) and the performance window (reference) of
each slice. The loss is one of:

- ``decdtw``: TimeErr of the DecDTW warp (subsequence GDTW, the feature's lambda,
  M = 512) against the truth, integrated exactly between the score frames
  (:func:`~seqvpr.audio.metrics.time_err_loss`); gradients through the implicit
  derivative of the warp;
- ``soft-dtw``: the Soft-DTW discrepancy (gamma 1) with free ends along the window; no
  ground truth;
- ``along-gt``: the GDTW objective along the true warp;
- ``dilate``: DILATE with alpha 0, gamma 0.1 and Omega_ij = |tau_j - phi_gt(t_i)|, the
  absolute alignment error of matching score frame i to performance frame j (seconds).

Adam, lr 1e-4, batch 5, 20 epochs (A.4); every validation aligns the val slices with the
method's own alignment (GDTW for ``decdtw``, DTW for the others, as in Table 1) and the
model with the lowest mean TimeErr is kept as ``best.pt``. The loop, run folder,
checkpoints and resume are :mod:`seqvpr.train.run`'s.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from seqvpr.align import Signal, along_gt_loss, decdtw, dilate_loss, soft_dtw_loss
from seqvpr.audio.features import FEATURE_DIMS
from seqvpr.audio.methods import PAPER_LAMBDA, align_batch, gdtw_config, score_batch
from seqvpr.audio.metrics import time_err_loss
from seqvpr.audio.model import AudioEncoder, model_payload
from seqvpr.audio.slices import AudioSlices, SliceBatch, collate_slices
from seqvpr.errors import SeqvprError
from seqvpr.train.run import LoopConfig, TrainingResult, TrainingTask, open_run, train

__all__ = ["AUDIO_LOSSES", "AudioTrainConfig", "audio_train", "alignment_method", "slice_loss"]

logger = logging.getLogger(__name__)

AUDIO_LOSSES = ("decdtw", "soft-dtw", "along-gt", "dilate")


def alignment_method(loss: str) -> str:
    """The alignment a model trained with ``loss`` is scored with (Table 1): GDTW for DecDTW."""
    return "gdtw" if loss == "decdtw" else "dtw"


@dataclass(frozen=True)
class AudioTrainConfig:
    """Options of ``seqvpr audio-train`` (``config/audio_train.yaml`` documents each key).

    Attributes:
        features: base features: ``cqt``, ``chroma`` or ``melspec``.
        loss: one of :data:`AUDIO_LOSSES`.
        lam: GDTW lambda; None = the paper's value for the features (0.1 / 0.7 / 0.9).
        lr: Adam learning rate.
        soft_dtw_gamma: Soft-DTW smoothing of the ``soft-dtw`` loss.
        dilate_gamma: Soft-DTW smoothing inside DILATE.
        dilate_alpha: weight of DILATE's shape term.
        output_dim: GRU output dimension (both directions).
        val_limit: validate on the first this many val slices (None = all).
        loop: epochs, batch size, validations per epoch, step budget, seed.
    """

    features: str = "cqt"
    loss: str = "decdtw"
    lam: float | None = None
    lr: float = 1e-4
    soft_dtw_gamma: float = 1.0
    dilate_gamma: float = 0.1
    dilate_alpha: float = 0.0
    output_dim: int = 128
    val_limit: int | None = None
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=20, batch_size=5, validations_per_epoch=1,
                                                                amp=False))

    def __post_init__(self) -> None:
        if self.features not in FEATURE_DIMS:
            raise ValueError(f"features must be one of {sorted(FEATURE_DIMS)}, got {self.features!r}")
        if self.loss not in AUDIO_LOSSES:
            raise ValueError(f"loss must be one of {list(AUDIO_LOSSES)}, got {self.loss!r}")
        if self.lam is not None and self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        if not self.lr > 0 or not self.soft_dtw_gamma > 0 or not self.dilate_gamma > 0:
            raise ValueError("lr, soft_dtw_gamma and dilate_gamma must be > 0")
        if not 0.0 <= self.dilate_alpha <= 1.0:
            raise ValueError(f"dilate_alpha must be in [0, 1], got {self.dilate_alpha}")

    @property
    def resolved_lam(self) -> float:
        return PAPER_LAMBDA[self.features] if self.lam is None else self.lam


def _embedded(model: nn.Module, signal: Signal) -> Signal:
    return Signal(signal.times, model(signal.values, signal.lengths), signal.lengths)


def slice_loss(model: nn.Module, batch: SliceBatch, config: AudioTrainConfig) -> Tensor:
    """The training loss of a batch of slices, averaged over the slices."""
    reference, query = _embedded(model, batch.reference), _embedded(model, batch.query)
    solver = gdtw_config(config.resolved_lam, query.max_length)
    if config.loss == "decdtw":
        warp = decdtw(reference, query, solver)
        return time_err_loss(warp, batch.target, query.times, query.lengths).mean()
    if config.loss == "soft-dtw":
        return soft_dtw_loss(reference, query, config.soft_dtw_gamma, subsequence=True).mean()
    if config.loss == "along-gt":
        return along_gt_loss(reference, query, batch.target, solver).mean()
    penalty = (reference.times[:, None, :] - batch.target[:, :, None]).abs().to(reference.dtype)
    return dilate_loss(reference, query, penalty, config.dilate_alpha, config.dilate_gamma, subsequence=True).mean()


def _validation(val: AudioSlices, encoder: AudioEncoder, config: AudioTrainConfig, batch_size: int = 16):
    method = alignment_method(config.loss)

    def validate() -> dict[str, float]:
        errors = []
        for start in range(0, len(val), batch_size):
            batch = collate_slices([val[i] for i in range(start, min(start + batch_size, len(val)))])
            errors += score_batch(batch, align_batch(batch, method, config.resolved_lam, encoder))
        return {"val_time_err_ms": 1000 * float(np.mean([e.time_err_s for e in errors])),
                "val_time_dev_ms": 1000 * float(np.mean([e.time_dev_s for e in errors]))}

    return validate


def audio_train(data: str | os.PathLike, out: str | os.PathLike, config: AudioTrainConfig, *,
                overwrite: bool = False, command_line: str = "seqvpr audio-train",
                progress: bool = True) -> TrainingResult:
    """Trains an audio feature extractor on the slices of ``data``; writes the run folder ``out``.

    Args:
        data: a folder written by ``seqvpr audio-data build``.
        out: the run folder (same options resume; see :func:`seqvpr.train.run.open_run`).
        config: the options.
        overwrite: rebuild ``out`` if it holds a run with other options.
        command_line: recorded in ``out/command.txt``.
        progress: tqdm bars.

    Returns:
        The :class:`~seqvpr.train.run.TrainingResult`; ``out/best.pt`` is an audio model
        (``seqvpr audio align --model``, ``seqvpr audio-eval`` read it).

    Raises:
        SeqvprError: a missing or incomplete data folder, an empty split, a non-finite loss.
    """
    data = Path(data)
    train_set = AudioSlices(data, "train", config.features)
    val_set = AudioSlices(data, "val", config.features, limit=config.val_limit)
    if len(train_set) == 0 or len(val_set) == 0:
        raise SeqvprError(f"{data}: the train and val splits need slices; found {len(train_set)} and {len(val_set)}")
    run = open_run(Path(out), {"data": data}, config, command="audio-train", command_line=command_line,
                   overwrite=overwrite)
    torch.manual_seed(config.loop.seed)
    encoder = AudioEncoder(FEATURE_DIMS[config.features], config.output_dim)
    task = TrainingTask(
        model=encoder,
        optimizer=torch.optim.Adam(encoder.parameters(), lr=config.lr),
        scheduler=None,
        dataset_size=len(train_set),
        load_batch=lambda indices: collate_slices([train_set[i] for i in indices]),
        loss=lambda model, batch: slice_loss(model, batch, config),
        validate=_validation(val_set, encoder, config),
        selection_metric="val_time_err_ms",
        export=lambda: model_payload(encoder, config.features, config.resolved_lam, config.loss),
        describe_batch=lambda indices: [train_set.rows[i]["slice"] for i in indices],
    )
    return train(run, task, config.loop, progress=progress)
