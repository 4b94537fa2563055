"""Generic training-run machinery shared by every seqvpr training command.

A command (``finetune``, ``train-base``, ``audio-train``) describes *what* is trained as a
:class:`TrainingTask` (the module whose parameters are optimised, a batch loader, a loss,
a validation and an export of the trained model); :func:`train` runs the loop the same way
for all of them:

- **Run folder** (:func:`open_run`, on top of :func:`seqvpr.io.claim_output_dir`)::

      RUN/seqvpr-options.yaml   the options that define the run (inputs + resolved config)
      RUN/config.yaml           the resolved configuration
      RUN/command.txt           every command line that started or resumed the run
      RUN/last.pt               latest checkpoint: the exported model plus the training state
      RUN/best.pt               the exported model with the best validation metric so far
      RUN/metrics.csv           one row per validation: step, epoch, train_loss, metrics, lr
      RUN/curves.png            train loss and validation metrics against step
      RUN/nonfinite-step<N>.json  the batch indices of a step whose loss or gradient was NaN/inf

- **Checkpoints** are written atomically at every validation. ``last.pt`` holds the
  model, optimiser, scheduler, RNG and sampler state and the step, so a run killed at any
  moment (SIGKILL included) resumes from it and ends with the metrics an uninterrupted run
  would have had (on CPU, to rounding: data order depends only on the seed and the epoch);
  ``metrics.csv`` and ``curves.png`` are rewritten from it on resuming.
- **Data order**: a :class:`torch.utils.data.DistributedSampler` (also for one process)
  reshuffles per epoch from ``seed + epoch``; a resumed run skips the batches already done.
  ``batch_size`` is the global batch: each of W processes takes ``batch_size / W`` items,
  so W processes and one process see the same items per step, and a run checkpointed by
  W processes resumes with any number of processes that divides ``batch_size``.
- **DDP** (:func:`seqvpr.train.distributed.setup_distributed`): under ``torchrun`` the environment names the rank
  and world size; gloo on CPU, NCCL on CUDA; gradients are averaged by
  ``DistributedDataParallel``; only rank 0 validates and writes files.
- **AMP**: with ``amp`` true the model and the loss run under bfloat16 autocast on CUDA
  (``amp: always``: on the CPU too); losses that need float64, like the DecDTW solver,
  cast to it, and autocast leaves float64 tensors alone.
- **Non-finite loss or gradient**: the step's batch indices are dumped, ``best.pt`` is left
  as it was and :class:`NonFiniteLossError` names the step and the dump.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from seqvpr.config import config_to_dict, load_yaml, save_config
from seqvpr.errors import SeqvprError
from seqvpr.io import OPTIONS_FILE, atomic_path, claim_output_dir
from seqvpr.plotting import pyplot, save_figure
from seqvpr.train.distributed import Distributed

__all__ = [
    "LoopConfig",
    "RunFolder",
    "open_run",
    "read_run_options",
    "TrainingTask",
    "TrainingResult",
    "NonFiniteLossError",
    "train",
    "load_checkpoint",
]

logger = logging.getLogger(__name__)

LAST, BEST, METRICS, CURVES, CONFIG, COMMANDS = (
    "last.pt", "best.pt", "metrics.csv", "curves.png", "config.yaml", "command.txt"
)


@dataclass(frozen=True)
class LoopConfig:
    """Options of the training loop common to every training command.

    Attributes:
        epochs: passes over the training set.
        batch_size: items per optimiser step, over all processes together.
        validations_per_epoch: validations (and checkpoints) per epoch, evenly spaced.
        max_steps: stop after this many optimiser steps (a compute budget), or None.
        seed: seed of the data order, of the model's random initialisation and of torch.
        amp: bfloat16 autocast of the model and the loss: True on CUDA only (a CPU run
            stays float32), ``"always"`` on the CPU too (to run the AMP path where there
            is no GPU), False never.
    """

    epochs: int = 10
    batch_size: int = 8
    validations_per_epoch: int = 5
    max_steps: int | None = None
    seed: int = 0
    amp: bool | Literal["always"] = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "validations_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if not (isinstance(self.amp, bool) or self.amp == "always"):
            raise ValueError(f"amp must be true, false or 'always', got {self.amp!r}")

    def autocast(self, device: torch.device) -> bool:
        """Whether the model and the loss run under bfloat16 autocast on ``device``."""
        return self.amp == "always" or (self.amp is True and device.type == "cuda")


# ---------------------------------------------------------------------------------------
# Run folder


@dataclass(frozen=True)
class RunFolder:
    """A training run's output folder.

    Attributes:
        path: the folder.
        resumed: a ``last.pt`` was there to resume from.
    """

    path: Path
    resumed: bool

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / BEST


def read_run_options(run: str | os.PathLike, command: str) -> dict[str, Any]:
    """The options recorded in a run folder (for ``--resume RUN``).

    Raises:
        SeqvprError: ``run`` holds no options file.
    """
    record = Path(run) / OPTIONS_FILE
    if not record.is_file():
        raise SeqvprError(f"{command}: cannot resume {run}: no {OPTIONS_FILE} there (not a {command} run folder)")
    options = load_yaml(record)
    if not isinstance(options, dict) or options.get("command") != command:
        raise SeqvprError(f"{command}: cannot resume {run}: it was written by {options.get('command')!r}")
    return options


def open_run(
    path: str | os.PathLike,
    options: Mapping[str, Any],
    config: Any,
    *,
    command: str,
    command_line: str,
    overwrite: bool = False,
    distributed: Distributed | None = None,
) -> RunFolder:
    """Claims the run folder (rank 0) and records the config and the command line.

    Same options as a previous run in ``path``: the run resumes from ``last.pt`` (if it
    got as far as a checkpoint). Other options: :class:`~seqvpr.errors.OutputConflictError`
    unless ``overwrite``. Call after every option has been validated.

    Args:
        path: the run folder.
        options: the run's inputs (paths, YAML-able values); the command's name and the
            resolved config are added (under ``command`` and ``config``).
        config: the resolved config dataclass, also written to ``config.yaml``.
        command: the command's name.
        command_line: the command line, appended to ``command.txt``.
        overwrite: rebuild a folder whose recorded options differ.
        distributed: the process group; only rank 0 writes.
    """
    distributed = distributed or Distributed()
    path = Path(path)
    failure = None
    if distributed.is_main:
        try:
            record = {**options, "command": command, "config": config_to_dict(config)}
            claim_output_dir(path, record, overwrite=overwrite, command=command)
            _remove_interrupted_writes(path)
            save_config(config, path / CONFIG)
            with (path / COMMANDS).open("a", encoding="utf-8") as handle:
                handle.write(command_line + "\n")
        except SeqvprError as error:
            failure = error
    failure = distributed.broadcast(failure)
    if failure is not None:
        raise failure
    return RunFolder(path, (path / LAST).is_file())


def _remove_interrupted_writes(path: Path) -> None:
    """Deletes what writes cut short by a kill left in the run folder: the temporary files
    of :func:`~seqvpr.io.atomic_path` (``.<name>.<random>.tmp`` beside ``<name>``), each as
    large as the file it was to replace (a checkpoint)."""
    for name in (LAST, BEST, METRICS, CURVES, CONFIG):
        for leftover in path.glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by :func:`train` (``weights_only`` loading)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def _save(payload: Mapping[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(dict(payload), temporary)


# ---------------------------------------------------------------------------------------
# RNG state (tensors and plain Python values only, so checkpoints load with weights_only)


def _capture_rng() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "position": int(numpy_state[2]),
                  "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((
        "MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
        numpy_state["has_gauss"], numpy_state["cached_gaussian"],
    ))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------
# The loop


@dataclass
class TrainingTask:
    """What a command trains; :func:`train` supplies the loop.

    Attributes:
        model: the module whose parameters are optimised (already on the device).
        optimizer: over ``model``'s parameters.
        scheduler: learning-rate scheduler stepped once per optimiser step, or None.
        dataset_size: number of training items (indices 0..size - 1).
        load_batch: item indices -> a batch for ``loss``.
        loss: (model, batch) -> scalar loss, the mean over the batch's items. ``model`` is
            the DDP wrapper under DDP (call it, do not reach around it).
        validate: () -> metrics (name -> float), run on rank 0 with ``model`` in eval mode.
        selection_metric: the metric (lower is better unless ``maximize``) that picks ``best.pt``.
        export: () -> the checkpoint payload of the trained model in its own loadable format
            (e.g. a seqvpr encoder checkpoint); ``train`` adds a ``training`` entry.
        describe_batch: batch indices -> what identifies those items in the inputs (e.g.
            pairs-file rows), written to the non-finite dump.
        maximize: a higher ``selection_metric`` is better (e.g. a recall).
        before_step: called with the step about to run (0-based) and whether it is the
            first step since the run started or resumed or since a checkpoint; state that
            is rebuilt from the model at those points (e.g. a mining cache) resumes exactly.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    dataset_size: int
    load_batch: Callable[[list[int]], Any]
    loss: Callable[[nn.Module, Any], Tensor]
    validate: Callable[[], dict[str, float]]
    selection_metric: str
    export: Callable[[], dict[str, Any]]
    describe_batch: Callable[[list[int]], list[Any]] = field(default=lambda indices: list(indices))
    maximize: bool = False
    before_step: Callable[[int, bool], None] | None = None


@dataclass(frozen=True)
class TrainingResult:
    """What a finished run did.

    Attributes:
        steps: optimiser steps done (including those of earlier, resumed starts).
        best_step: the step of ``best.pt``.
        best_metric: its selection metric.
        metrics: one dict per validation row of ``metrics.csv``.
        run: the run folder.
        main_process: this process is rank 0, the one that wrote the run folder (under DDP
            every process returns the same numbers; only this one should report them).
    """

    steps: int
    best_step: int
    best_metric: float
    metrics: list[dict[str, float]]
    run: Path
    main_process: bool = True


class NonFiniteLossError(SeqvprError):
    """The loss or a gradient became NaN or infinite; the message names the step and the dump."""


def _validation_steps(steps_per_epoch: int, per_epoch: int) -> set[int]:
    """Steps within an epoch (1-based) after which to validate, evenly spaced, ending at the last."""
    count = min(per_epoch, steps_per_epoch)
    return {math.ceil(k * steps_per_epoch / count) for k in range(1, count + 1)}


def _epoch_order(size: int, epoch: int, seed: int, distributed: Distributed) -> list[int]:
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(size), num_replicas=distributed.world_size, rank=distributed.rank, shuffle=True, seed=seed,
        drop_last=True,
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def _write_metrics(path: Path, rows: Sequence[Mapping[str, float]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: repr(value) if isinstance(value, float) else value for key, value in row.items()})
    with atomic_path(path) as temporary:
        temporary.write_text(buffer.getvalue(), encoding="utf-8")


def _plot_curves(path: Path, rows: Sequence[Mapping[str, float]], selection_metric: str) -> None:
    plt = pyplot()
    steps = [row["step"] for row in rows]
    metrics = [key for key in rows[0] if key not in ("step", "epoch", "train_loss", "lr")]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    loss_axis.plot(steps, [row["train_loss"] for row in rows], "o-", ms=3)
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("train loss (mean since the previous validation)")
    loss_axis.set_yscale("log" if all(row["train_loss"] > 0 for row in rows) else "linear")
    for name in metrics:
        style = "o-" if name == selection_metric else "s--"
        metric_axis.plot(steps, [row[name] for row in rows], style, ms=3, label=name)
    metric_axis.set_xlabel("step")
    metric_axis.set_ylabel("validation")
    metric_axis.legend()
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)


def train(
    run: RunFolder,
    task: TrainingTask,
    config: LoopConfig,
    distributed: Distributed | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Trains ``task`` in ``run`` (resuming from ``run.last`` when ``run.resumed``).

    Raises:
        SeqvprError: fewer training items than one global batch.
        NonFiniteLossError: a NaN/inf loss or gradient (batch dumped, ``best.pt`` kept).
    """
    from tqdm import tqdm

    distributed = distributed or Distributed()
    if config.batch_size % distributed.world_size:
        raise SeqvprError(
            f"batch_size {config.batch_size} is not divisible by the {distributed.world_size} processes"
        )
    local_batch = config.batch_size // distributed.world_size
    steps_per_epoch = task.dataset_size // config.batch_size
    if steps_per_epoch == 0:
        raise SeqvprError(f"{task.dataset_size} training items are fewer than one batch of {config.batch_size}")
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    validate_at = _validation_steps(steps_per_epoch, config.validations_per_epoch)
    torch.set_flush_denormal(True)  # denormals in the encoder's backward cost ~2x on CPUs

    module = task.model
    wrapped: nn.Module = module
    if distributed.active:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [distributed.local_rank] if distributed.device.type == "cuda" else None
        wrapped = DistributedDataParallel(module, device_ids=device_ids)

    sign = -1.0 if task.maximize else 1.0
    step, rows, best_metric, best_step = 0, [], math.inf * sign, 0
    loss_sum, loss_count = 0.0, 0
    if run.resumed:
        state = load_checkpoint(run.last)["training"]
        module.load_state_dict(state["model"])
        task.optimizer.load_state_dict(state["optimizer"])
        if task.scheduler is not None and state["scheduler"] is not None:
            task.scheduler.load_state_dict(state["scheduler"])
        step, rows = state["step"], [dict(row) for row in state["metrics"]]
        best_metric, best_step = state["best_metric"], state["best_step"]
        _restore_rng(state["rng"])
        if distributed.is_main and rows:
            # A kill between writing last.pt and the metrics left them behind the checkpoint
            # (for good, if that was the last checkpoint).
            _write_metrics(run.path / METRICS, rows)
            _plot_curves(run.path / CURVES, rows, task.selection_metric)
        logger.info("resumed %s at step %d", run.path, step)
    else:
        torch.manual_seed(config.seed)

    use_amp = config.autocast(distributed.device)
    fresh = True
    show = progress and distributed.is_main
    epochs = tqdm(total=math.ceil(total_steps / steps_per_epoch), initial=step // steps_per_epoch,
                  desc="epochs", unit="epoch", disable=not show)
    bar = tqdm(total=total_steps, initial=step, desc="steps", unit="step", disable=not show, leave=False)
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        order = _epoch_order(task.dataset_size, epoch, config.seed, distributed)
        indices = order[offset * local_batch : (offset + 1) * local_batch]
        if task.before_step is not None:
            task.before_step(step, fresh)
        fresh = False
        wrapped.train()
        with torch.autocast(distributed.device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = task.loss(wrapped, task.load_batch(indices))
        step += 1
        if distributed.any(not bool(torch.isfinite(loss))):
            _report_nonfinite(run, task, step, distributed.gather(indices), float(loss.detach()), distributed)
        task.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gradients = [p.grad for p in module.parameters() if p.grad is not None]
        if distributed.any(not all(bool(torch.isfinite(grad).all()) for grad in gradients)):
            _report_nonfinite(run, task, step, distributed.gather(indices), float(loss.detach()), distributed)
        task.optimizer.step()
        if task.scheduler is not None:
            task.scheduler.step()
        loss_sum += distributed.mean(float(loss.detach()))
        loss_count += 1
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.4g}", best=f"{best_metric:.4g}")
        if (step - epoch * steps_per_epoch) in validate_at or step == total_steps:
            row = {"step": step, "epoch": step / steps_per_epoch, "train_loss": loss_sum / loss_count}
            loss_sum, loss_count = 0.0, 0
            metrics = None
            if distributed.is_main:
                module.eval()
                with torch.no_grad():
                    metrics = task.validate()
            metrics = distributed.broadcast(metrics)
            row.update(metrics)
            row["lr"] = task.optimizer.param_groups[0]["lr"]
            rows.append(row)
            improved = sign * metrics[task.selection_metric] < sign * best_metric
            if improved:
                best_metric, best_step = metrics[task.selection_metric], step
            if distributed.is_main:
                _checkpoint(run, task, step, rows, best_metric, best_step, improved)
            distributed.barrier()
            fresh = True
            bar.set_postfix(loss=f"{row['train_loss']:.4g}", best=f"{best_metric:.4g}")
            if step % steps_per_epoch == 0:
                epochs.update(1)
    epochs.update(epochs.total - epochs.n)
    bar.close()
    epochs.close()
    return TrainingResult(step, best_step, best_metric, rows, run.path, distributed.is_main)


def _checkpoint(run, task, step, rows, best_metric, best_step, improved) -> None:
    exported = task.export()
    if improved:
        _save({**exported, "training": {"step": step, "metric": best_metric}}, run.best)
    state = {
        "step": step,
        "model": {k: v.detach().cpu().clone() for k, v in task.model.state_dict().items()},
        "optimizer": task.optimizer.state_dict(),
        "scheduler": task.scheduler.state_dict() if task.scheduler is not None else None,
        "rng": _capture_rng(),
        "metrics": rows,
        "best_metric": best_metric,
        "best_step": best_step,
    }
    _save({**exported, "training": state}, run.last)
    _write_metrics(run.path / METRICS, rows)
    _plot_curves(run.path / CURVES, rows, task.selection_metric)


def _report_nonfinite(run, task, step, indices, loss, distributed) -> None:
    dump = run.path / f"nonfinite-step{step}.json"
    if distributed.is_main:
        with atomic_path(dump) as temporary:
            temporary.write_text(json.dumps(
                {"step": step, "loss": loss if math.isfinite(loss) else str(loss), "batch_indices": indices,
                 "items": task.describe_batch(indices)}, indent=1), encoding="utf-8")
    distributed.barrier()
    raise NonFiniteLossError(
        f"non-finite loss or gradient at step {step} (loss {loss}); batch written to {dump}; "
        f"{BEST} keeps the last good model"
    )

