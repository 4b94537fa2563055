"""Offline evaluation of sequence localization (the paper's protocol, design.md §3.4).

For every reference/query pair of a pairs CSV, the query and reference frames are encoded
(through the descriptor cache), each method places the query frames on the reference, and
the predicted positions are compared with the ground truth: the query positions projected
onto the reference polyline (``SequencePair.true_positions``), so the error measures
localization along the route rather than a lateral offset between the drives. A
sequence's error is its largest (max) or average (mean) frame error; accuracy at a
threshold is the percentage of sequences below it, per query condition.

Methods per model: ``(D)`` classic subsequence DTW, ``(G)`` subsequence GDTW, ``Indep``
nearest reference frame per query frame. For the first (base) model these are the paper's
Base (D), Base (G) and Indep.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from seqvpr.align import GDTWConfig, Signal
from seqvpr.data.pair_files import read_pairs
from seqvpr.data.pairs import SequencePair
from seqvpr.descriptor_cache import cached_descriptors, precomputed_descriptors
from seqvpr.io import atomic_path
from seqvpr.vpr.encoder import NetVLADEncoder
from seqvpr.vpr.localize import METHODS, LocalizerConfig, localize
from seqvpr.vpr.metrics import FULL_THRESHOLDS_M, PAPER_THRESHOLDS_M, accuracy, sequence_errors

__all__ = ["EvaluationConfig", "SequenceResult", "evaluate", "accuracy_rows", "method_label"]

LOGGER = logging.getLogger(__name__)


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
        unknown = [method for method in self.methods if method not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {list(self.methods)}")
        if not self.gdtw.subsequence:
            raise ValueError("gdtw.subsequence must be true: a query lies somewhere inside its reference")
        object.__setattr__(self, "methods", tuple(self.methods))


@dataclass(frozen=True)
class SequenceResult:
    """The outcome of one method on one pair."""

    model: str
    method: str
    condition: str
    pair_file: str
    pair_index: int
    max_error_m: float
    mean_error_m: float
    predicted: np.ndarray = field(repr=False)  # (n, 2) easting, northing


def method_label(model: str, method: str, first_model: str) -> str:
    """``Base (G)``, ``DecDTW (D)``, ``Indep`` (base model) or ``DecDTW Indep``."""
    name = "Base" if model == first_model else model
    if method == "independent":
        return "Indep" if model == first_model else f"{name} Indep"
    return f"{name} ({'G' if method == 'gdtw' else 'D'})"


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


def evaluate(
    pair_files: Sequence[Path],
    traverse_root: Path,
    models: dict[str, NetVLADEncoder | Path],
    cache_dir: Path,
    config: EvaluationConfig | None = None,
    progress: bool = True,
) -> list[SequenceResult]:
    """Runs every method of every model on every pair.

    Args:
        pair_files: pairs CSVs written by ``seqvpr pairs``.
        traverse_root: folder of the prepared traverses the pairs refer to.
        models: name -> encoder, or a folder of precomputed ``<traverse>.npz``
            descriptors files; the first is the base model.
        cache_dir: descriptor cache; one sub-folder per encoder.
        config: evaluation options.
        progress: show progress bars.

    Returns:
        One :class:`SequenceResult` per (model, method, pair).
    """
    config = config or EvaluationConfig()
    if not models:
        raise ValueError("evaluate needs at least one model")
    pairs_by_file = {}
    for path in pair_files:
        pairs = read_pairs(path)
        if not pairs:
            raise ValueError(f"{path}: holds no pairs")
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


def accuracy_rows(
    results: Sequence[SequenceResult], metric: str = "max", thresholds_m: Sequence[float] = FULL_THRESHOLDS_M
) -> list[dict]:
    """Accuracy per (model, method, condition) and threshold, plus an ``all`` condition."""
    if metric not in ("max", "mean"):
        raise ValueError(f"metric must be 'max' or 'mean', got {metric!r}")
    first_model = results[0].model if results else ""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for result in results:
        error = result.max_error_m if metric == "max" else result.mean_error_m
        for condition in (result.condition, "all"):
            groups.setdefault((result.model, result.method, condition), []).append(error)
    rows = []
    for (model, method, condition), errors in groups.items():
        scores = accuracy(np.asarray(errors), thresholds_m)
        rows.append({
            "method": method_label(model, method, first_model), "model": model, "alignment": method,
            "condition": condition, "metric": metric, "sequences": len(errors),
            "median_error_m": float(np.median(errors)),
            **{f"acc@{threshold:g}m": value for threshold, value in scores.items()},
        })
    return rows


def markdown_table(rows: Sequence[dict], thresholds_m: Sequence[float] = PAPER_THRESHOLDS_M) -> str:
    """Methods as rows, condition x threshold as columns (the paper's Table 2 layout)."""
    conditions = sorted({row["condition"] for row in rows} - {"all"}) + ["all"]
    methods = list(dict.fromkeys(row["method"] for row in rows))
    lookup = {(row["method"], row["condition"]): row for row in rows}
    header = ["Method"] + [f"{condition} @{t:g} m" for condition in conditions for t in thresholds_m]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in methods:
        cells = [method]
        for condition in conditions:
            row = lookup.get((method, condition))
            cells += [f"{row[f'acc@{t:g}m']:.1f}" if row else "-" for t in thresholds_m]
        lines.append("| " + " | ".join(cells) + " |")
    counts = ", ".join(f"{condition}: {lookup[(methods[0], condition)]['sequences']}"
                       for condition in conditions if (methods[0], condition) in lookup)
    lines.append("")
    lines.append(f"Sequences per condition: {counts}.")
    return "\n".join(lines)


def write_results(out_dir: Path, results: Sequence[SequenceResult], metadata: dict) -> dict[str, Path]:
    """Writes tables (Markdown, CSV, JSON) and per-sequence errors; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    tables = {metric: accuracy_rows(results, metric) for metric in ("max", "mean")}
    for metric, rows in tables.items():
        path = out_dir / f"accuracy_{metric}_error.md"
        title = f"Accuracy (%) of {metric}-error localization, by query condition\n\n"
        with atomic_path(path) as tmp:
            tmp.write_text(title + markdown_table(rows) + "\n", encoding="utf-8")
        written[f"{metric}_markdown"] = path
    path = out_dir / "accuracy.csv"
    rows = tables["max"] + tables["mean"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    written["csv"] = path
    path = out_dir / "per_sequence.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["pair_file", "pair_index", "condition", "model", "alignment", "max_error_m", "mean_error_m"])
    for result in results:
        writer.writerow([result.pair_file, result.pair_index, result.condition, result.model, result.method,
                         f"{result.max_error_m:.4f}", f"{result.mean_error_m:.4f}"])
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    written["per_sequence"] = path
    path = out_dir / "results.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"metadata": metadata, "max_error": tables["max"],
                                   "mean_error": tables["mean"]}, indent=2) + "\n", encoding="utf-8")
    written["json"] = path
    return written
