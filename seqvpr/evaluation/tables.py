"""Accuracy tables of an evaluation: per-sequence results, accuracy rows, Markdown/CSV/JSON files.

A sequence's error is its largest (max) or average (mean) frame error; accuracy at a
threshold is the percentage of sequences below it, per query condition and over all
(``all``). Rows are labelled like the paper's Table 2: ``Base (D)``, ``Base (G)``,
``Indep`` for the first (base) model, ``<model> (G)`` etc. for the others.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqvpr.io import atomic_path
from seqvpr.vpr.metrics import FULL_THRESHOLDS_M, PAPER_THRESHOLDS_M, accuracy

__all__ = ["SequenceResult", "method_label", "accuracy_rows", "markdown_table", "write_results"]


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
