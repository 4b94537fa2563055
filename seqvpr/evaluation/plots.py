"""Evaluation plots: error CDFs per method and per-sequence maps (the paper's Fig. 4b).

matplotlib is imported inside the functions with the non-interactive Agg backend; every
figure is written atomically as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqvpr.data.pairs import SequencePair
from seqvpr.evaluation.tables import SequenceResult, method_label
from seqvpr.plotting import pyplot, save_figure

__all__ = ["plot_error_cdfs", "plot_sequence_map"]


def plot_error_cdfs(results: Sequence[SequenceResult], path: Path, metric: str = "max") -> Path:
    """Cumulative distribution of per-sequence errors, one panel per query condition."""
    plt = pyplot()
    first_model = results[0].model
    conditions = sorted({result.condition for result in results})
    figure, axes = plt.subplots(1, len(conditions), figsize=(4.2 * len(conditions), 3.6), dpi=110,
                                squeeze=False)
    for axis, condition in zip(axes[0], conditions):
        labels = {}
        for result in results:
            if result.condition == condition:
                error = result.max_error_m if metric == "max" else result.mean_error_m
                labels.setdefault(method_label(result.model, result.method, first_model), []).append(error)
        for label, errors in labels.items():
            errors = np.sort(errors)
            axis.step(errors, np.arange(1, len(errors) + 1) / len(errors) * 100, where="post", label=label)
        for threshold in (2, 3, 5, 10):
            axis.axvline(threshold, color="0.85", lw=0.8, zorder=0)
        axis.set_xscale("symlog", linthresh=1.0)
        axis.set_xlim(0, max(50.0, max(max(v) for v in labels.values())))
        axis.set_ylim(0, 100)
        axis.set_xlabel(f"sequence {metric} error [m]")
        axis.set_title(f"{condition} ({len(next(iter(labels.values())))} sequences)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("sequences below error [%]")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    save_figure(figure, path)
    return path


def plot_sequence_map(pair: SequencePair, results: Sequence[SequenceResult], path: Path) -> Path:
    """Reference track, true query positions and each method's predictions for one pair."""
    plt = pyplot()
    first_model = results[0].model
    origin = pair.reference_positions[0]
    figure, axis = plt.subplots(figsize=(5.5, 5), dpi=110)
    reference = pair.reference_positions - origin
    axis.plot(reference[:, 0], reference[:, 1], "-", color="0.6", lw=1, zorder=1)
    axis.plot(reference[:, 0], reference[:, 1], "s", color="0.6", ms=3, label="reference frames", zorder=1)
    truth = pair.true_positions - origin
    axis.plot(truth[:, 0], truth[:, 1], "o", mfc="none", mec="k", ms=9, label="true query poses", zorder=3)
    for result in results:
        predicted = result.predicted - origin
        label = method_label(result.model, result.method, first_model)
        axis.plot(predicted[:, 0], predicted[:, 1], ".-", ms=7, lw=0.8, zorder=2,
                  label=f"{label}: max {result.max_error_m:.1f} m, mean {result.mean_error_m:.1f} m")
    axis.set_aspect("equal", adjustable="datalim")
    axis.set_xlabel("easting - reference start [m]")
    axis.set_ylabel("northing - reference start [m]")
    axis.set_title(f"query {pair.query} ({pair.query_condition})\non reference {pair.reference}", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)
    return path
