"""Offline evaluation of sequence localization on reference/query pairs (the paper's protocol).

For every reference/query pair of a pairs CSV, the query and reference frames are encoded
(through the descriptor cache of :mod:`seqvpr.extraction`), each method places the query
frames on the reference, and the predicted positions are compared with the ground truth:
the query positions projected onto the reference polyline (``SequencePair.true_positions``),
so the error measures localization along the route rather than a lateral offset between
the drives. A sequence's error is its largest (max) or average (mean) frame error;
accuracy at a threshold is the percentage of sequences below it, per query condition
(:mod:`seqvpr.evaluation.tables`).

Methods per model (:data:`seqvpr.vpr.localize.METHODS`): ``(D)`` classic subsequence
DTW, ``(G)`` subsequence GDTW, ``Indep`` nearest reference frame per query frame. For the
first (base) model these are the paper's Base (D), Base (G) and Indep.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from seqvpr.align import GDTWConfig, Signal
from seqvpr.config import config_to_dict, save_config
from seqvpr.data.pair_files import read_pairs
from seqvpr.data.pairs import SequencePair
from seqvpr.errors import SeqvprError
from seqvpr.evaluation.tables import SequenceResult, write_results
from seqvpr.extraction import cached_descriptors, precomputed_descriptors
from seqvpr.io import OPTIONS_FILE, claim_output_dir
from seqvpr.vpr.encoder import NetVLADEncoder
from seqvpr.vpr.localize import METHODS, LocalizerConfig, localize
from seqvpr.vpr.metrics import sequence_errors

__all__ = ["EvaluationConfig", "evaluate", "localize_pairs", "load_models"]

LOGGER = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class EvaluationConfig:
    """Options of an evaluation run.

    Attributes:
        methods: alignment methods run for every model (names from
            :data:`seqvpr.vpr.localize.METHODS`).
        gdtw: GDTW options (subsequence; the paper: lambda 0.1, M 50).
        batch_pairs: pairs aligned per batch.
        batch_images: images encoded per batch.
        device: torch device for encoding and alignment.
        map_examples: sequences drawn as maps (predicted vs true positions).
    """

    methods: tuple[str, ...] = ("dtw", "gdtw", "independent")
    gdtw: GDTWConfig = field(default_factory=lambda: GDTWConfig(subsequence=True, lam=0.1, grid_size=50))
    batch_pairs: int = 64
    batch_images: int = 16
    device: str = "cpu"
    map_examples: int = 3

    def __post_init__(self) -> None:
        from seqvpr.extraction import resolve_device

        unknown = [method for method in self.methods if method not in METHODS]
        if unknown or not self.methods:
            raise SeqvprError(f"methods must be a non-empty subset of {METHODS}, got {list(self.methods)}")
        if not self.gdtw.subsequence:
            raise SeqvprError("gdtw.subsequence must be true: a query lies somewhere inside its reference")
        for name in ("batch_pairs", "batch_images"):
            if getattr(self, name) < 1:
                raise SeqvprError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.map_examples < 0:
            raise SeqvprError(f"map_examples must be at least 0, got {self.map_examples}")
        resolve_device(self.device)
        object.__setattr__(self, "methods", tuple(self.methods))


def _wanted_images(pairs: Sequence[SequencePair]) -> dict[str, dict[str, float]]:
    wanted: dict[str, dict[str, float]] = {}
    for pair in pairs:
        for traverse, names, start, times in (
            (pair.reference, pair.reference_images, pair.reference_start_s, pair.reference_times_s),
            (pair.query, pair.query_images, pair.query_start_s, pair.query_times_s),
        ):
            wanted.setdefault(traverse, {}).update(zip(names.tolist(), (start + times).tolist()))
    return wanted


def _signals(pairs: Sequence[SequencePair], descriptors: dict[str, dict[str, np.ndarray]], device):
    def signal(times_list, values_list):
        return Signal.from_sequences([
            (torch.as_tensor(times, dtype=torch.float64), torch.as_tensor(np.stack(values), dtype=torch.float64))
            for times, values in zip(times_list, values_list)
        ]).to(device)

    reference = signal([p.reference_times_s for p in pairs],
                       [[descriptors[p.reference][name] for name in p.reference_images] for p in pairs])
    query = signal([p.query_times_s for p in pairs],
                   [[descriptors[p.query][name] for name in p.query_images] for p in pairs])
    positions = torch.zeros(len(pairs), reference.max_length, 2, dtype=torch.float64)
    for index, pair in enumerate(pairs):
        positions[index, : len(pair.reference_positions)] = torch.from_numpy(pair.reference_positions)
    return reference, query, positions.to(device)


def localize_pairs(
    pair_files: Sequence[Path],
    traverse_root: Path,
    models: Mapping[str, NetVLADEncoder | Path],
    cache_dir: Path,
    config: EvaluationConfig | None = None,
    progress: bool = True,
) -> list[SequenceResult]:
    """Runs every method of every model on every pair.

    Args:
        pair_files: pairs CSVs written by ``seqvpr pairs``.
        traverse_root: folder of the prepared traverses the pairs refer to.
        models: name -> encoder, or a folder of precomputed ``<traverse>.npz``
            descriptors files (see :func:`load_models`); the first is the base model.
        cache_dir: descriptor cache; one sub-folder per encoder.
        config: evaluation options.
        progress: show progress bars.

    Returns:
        One :class:`SequenceResult` per (model, method, pair).
    """
    config = config or EvaluationConfig()
    if not models:
        raise SeqvprError("evaluation needs at least one model")
    pairs_by_file = {}
    for path in pair_files:
        if not Path(path).is_file():
            raise SeqvprError(f"{path}: no such pairs file")
        pairs = read_pairs(path)
        if not pairs:
            raise SeqvprError(f"{path}: holds no pairs")
        pairs_by_file[Path(path)] = pairs
    wanted: dict[str, dict[str, float]] = {}
    for pairs in pairs_by_file.values():
        for traverse, times in _wanted_images(pairs).items():
            wanted.setdefault(traverse, {}).update(times)

    results = []
    for model_name, encoder in models.items():
        if isinstance(encoder, Path):
            descriptors = precomputed_descriptors(encoder, wanted)
        else:
            descriptors = cached_descriptors(encoder, cache_dir / model_name, traverse_root, wanted,
                                             config.batch_images, config.device, progress)
        for path, pairs in pairs_by_file.items():
            batches = range(0, len(pairs), config.batch_pairs)
            for start in tqdm(batches, desc=f"aligning {path.name} ({model_name})", disable=not progress,
                              leave=False):
                batch = pairs[start : start + config.batch_pairs]
                reference, query, reference_positions = _signals(batch, descriptors, config.device)
                truth = Signal.from_sequences(
                    [(torch.from_numpy(p.query_times_s), torch.from_numpy(p.true_positions)) for p in batch])
                for method in config.methods:
                    localization = localize(reference, query, reference_positions,
                                            LocalizerConfig(method=method, gdtw=config.gdtw))
                    predicted = localization.positions.cpu()
                    errors = sequence_errors(predicted, truth.values, truth.lengths)
                    for offset, pair in enumerate(batch):
                        length = len(pair.query_times_s)
                        results.append(SequenceResult(
                            model=model_name, method=method, condition=pair.query_condition,
                            pair_file=path.name, pair_index=start + offset,
                            max_error_m=float(errors.max[offset]), mean_error_m=float(errors.mean[offset]),
                            predicted=predicted[offset, :length].numpy(),
                        ))
    return results


def load_models(models: Mapping[str, NetVLADEncoder | str | Path]) -> dict[str, NetVLADEncoder | Path]:
    """Encoders for :func:`localize_pairs`: checkpoint files loaded, descriptor folders kept as paths.

    Raises:
        SeqvprError: a path is neither a checkpoint file nor a folder (names the model).
    """
    from seqvpr.vpr.weights import load_encoder

    loaded: dict[str, NetVLADEncoder | Path] = {}
    for name, model in models.items():
        if isinstance(model, NetVLADEncoder):
            loaded[name] = model
        elif Path(model).is_dir():
            loaded[name] = Path(model)
        elif Path(model).is_file():
            loaded[name] = load_encoder(model)
        else:
            raise SeqvprError(f"--model {name}={model}: no such checkpoint file or descriptors folder {model}")
    return loaded


def _claim(out: Path, config: EvaluationConfig, pair_files: Sequence[Path], traverse_root: Path,
           models: Mapping[str, NetVLADEncoder | Path], overwrite: bool) -> None:
    """Records the run's inputs and options in ``out`` (:func:`seqvpr.io.claim_output_dir`).

    The descriptor cache under ``out/descriptors`` survives ``overwrite``: its entries
    are keyed by encoder and image content, so they stay valid for any other options.
    """
    from seqvpr.extraction import encoder_fingerprint

    options = {
        "pairs": [Path(path) for path in pair_files],
        "traverses": Path(traverse_root),
        "models": {name: model if isinstance(model, Path) else f"encoder {encoder_fingerprint(model)}"
                   for name, model in models.items()},
        "config": config_to_dict(config),
    }
    cache = out / "descriptors"
    kept = None
    if overwrite and cache.is_dir() and (out / OPTIONS_FILE).is_file():
        kept = Path(tempfile.mkdtemp(prefix=f".{out.name}.descriptors.", dir=out.parent)) / "descriptors"
        os.replace(cache, kept)
    try:
        claim_output_dir(out, options, overwrite=overwrite, command="evaluate")
    finally:
        if kept is not None:
            os.replace(kept, cache)
            kept.parent.rmdir()


def evaluate(
    config: EvaluationConfig,
    pair_files: Sequence[Path],
    traverse_root: Path,
    models: Mapping[str, NetVLADEncoder | str | Path],
    out: Path,
    *,
    progress: bool = True,
    command_line: str = "",
    overwrite: bool = False,
) -> Path:
    """The evaluation step: localize every pair, write tables, plots and the run log.

    Writes to ``out``: ``accuracy_{max,mean}_error.md`` (the paper's Table 2 layout),
    ``accuracy.csv``, ``results.json``, ``per_sequence.csv``, ``error_cdf_{max,mean}.png``,
    ``maps/*.png`` (example sequences), ``evaluation.yaml`` (the config) and
    ``evaluate.log`` (the command and the log of the ``seqvpr`` loggers during the run);
    descriptors are cached under ``out/descriptors/<model>/``.

    Args:
        config: evaluation options.
        pair_files: pairs CSVs written by ``seqvpr pairs``.
        traverse_root: folder of the prepared traverses the pairs refer to.
        models: name -> encoder, checkpoint file or folder of descriptors files; the first
            is the base model.
        out: output folder.
        progress: show progress bars.
        command_line: the command that started the run, recorded in the log.
        overwrite: rebuild an ``out`` written with other inputs or options (its
            descriptor cache is kept: entries are checked against what they were made of).

    Returns:
        ``out``.

    Raises:
        SeqvprError: missing or malformed inputs (named).
        OutputConflictError: ``out`` holds an evaluation with other inputs or options
            (names them), unless ``overwrite``.
    """
    from seqvpr.evaluation.plots import plot_error_cdfs, plot_sequence_map

    if not Path(traverse_root).is_dir():
        raise SeqvprError(f"{traverse_root}: no such traverse folder")
    for path in pair_files:
        if not Path(path).is_file():
            raise SeqvprError(f"{path}: no such pairs file")
    loaded = load_models(models)
    # Malformed pairs or descriptor files stop the run before anything is written.
    wanted: dict[str, dict[str, float]] = {}
    for path in pair_files:
        for traverse, times in _wanted_images(read_pairs(path)).items():
            wanted.setdefault(traverse, {}).update(times)
    for model in loaded.values():
        if isinstance(model, Path):
            precomputed_descriptors(model, wanted)
    _claim(out, config, pair_files, traverse_root, loaded, overwrite)
    # The run log takes the records of the seqvpr loggers (not the root logger's) during the run.
    package_logger = logging.getLogger("seqvpr")
    handler = logging.FileHandler(out / "evaluate.log", mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    try:
        LOGGER.info("command: %s", command_line or "(python API)")
        save_config(config, out / "evaluation.yaml")
        results = localize_pairs(pair_files, traverse_root, loaded, out / "descriptors", config, progress)
        metadata = {"command": command_line, "pairs": [str(p) for p in pair_files],
                    "traverses": str(traverse_root), "models": list(loaded)}
        written = write_results(out, results, metadata)
        for metric in ("max", "mean"):
            written[f"cdf_{metric}"] = plot_error_cdfs(results, out / f"error_cdf_{metric}.png", metric)
        first = results[0]
        examples = [r for r in results if r.model == first.model and r.method == first.method]
        step = max(1, len(examples) // max(1, config.map_examples))
        pairs_cache: dict[str, list[SequencePair]] = {}
        for example in examples[::step][: config.map_examples]:
            path = next(p for p in pair_files if Path(p).name == example.pair_file)
            pairs = pairs_cache.setdefault(example.pair_file, read_pairs(path))
            same_pair = [r for r in results
                         if r.pair_file == example.pair_file and r.pair_index == example.pair_index]
            name = f"{Path(example.pair_file).stem}_{example.pair_index:05d}.png"
            written[f"map_{name}"] = plot_sequence_map(pairs[example.pair_index], same_pair, out / "maps" / name)
        LOGGER.info("wrote %s", ", ".join(str(v) for v in written.values()))
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        handler.close()
    return out
