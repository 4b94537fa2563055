"""Figures for audio alignments: Fig. 4a-style piano rolls and whole-piece alignment plots.

matplotlib is imported inside the functions with the Agg backend; PNGs are written
atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqvpr.audio.alignment import Alignment
from seqvpr.plotting import pyplot, save_figure

__all__ = ["plot_piano_roll", "plot_piece_alignment"]


def _active(score, score_s: np.ndarray) -> np.ndarray:
    """Which pitches sound at each score time, shape (128, len(score_s)), bool."""
    active = np.zeros((128, len(score_s)), dtype=bool)
    for instrument in score.instruments:
        for note in instrument.notes:
            active[note.pitch] |= (score_s >= note.start) & (score_s < note.end)
    return active


def plot_piano_roll(path: Path, score, predicted: Alignment, truth: Alignment, title: str,
                    frame_s: float = 0.01) -> Path:
    """The score's notes placed in performance time by the predicted and the true alignment.

    Like the paper's Fig. 4a: over the slice's true performance span, a note is drawn dark
    where both alignments place it, red where only the prediction does and yellow where
    only the truth does.

    Args:
        path: PNG to write.
        score: the score as :class:`pretty_midi.PrettyMIDI`.
        predicted: predicted alignment (score s -> performance s) over the slice.
        truth: true alignment over the slice.
        title: figure title (e.g. method and TimeErr).
        frame_s: horizontal resolution, seconds.
    """
    plt = pyplot()
    times = np.arange(truth(truth.start), truth(truth.end), frame_s)
    by_prediction = _active(score, predicted.inverse(times))
    by_truth = _active(score, truth.inverse(times))
    pitches = np.flatnonzero((by_prediction | by_truth).any(1))
    low, high = (int(pitches.min()) - 1, int(pitches.max()) + 2) if len(pitches) else (40, 90)
    image = np.ones((high - low, len(times), 3))
    image[(by_prediction & by_truth)[low:high]] = (0.15, 0.15, 0.15)
    image[(by_prediction & ~by_truth)[low:high]] = (0.85, 0.1, 0.1)
    image[(~by_prediction & by_truth)[low:high]] = (0.95, 0.8, 0.1)
    figure, axis = plt.subplots(figsize=(10, 3.2), dpi=110)
    axis.imshow(image, aspect="auto", origin="lower", interpolation="nearest",
                extent=(times[0], times[-1], low - 0.5, high - 0.5))
    axis.set_xlabel("performance time (s)")
    axis.set_ylabel("pitch (MIDI)")
    axis.set_title(title)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_piece_alignment(path: Path, result, title: str = "") -> Path:
    """A whole-piece alignment over the coarse cost matrix, and its local tempo.

    Args:
        path: PNG to write.
        result: a :class:`~seqvpr.audio.piece.PieceAlignment`.
        title: figure title.
    """
    plt = pyplot()
    figure, (cost_axis, tempo_axis) = plt.subplots(2, 1, figsize=(7, 8), dpi=110, height_ratios=(3, 1))
    score_times, performance_times = result.coarse_times
    cost_axis.imshow(result.cost.T, origin="lower", aspect="auto", cmap="gray_r",
                     extent=(score_times[0], score_times[-1], performance_times[0], performance_times[-1]))
    cost_axis.plot(result.coarse.score_s, result.coarse.performance_s, color="tab:blue", lw=1, label="coarse DTW")
    cost_axis.plot(result.score_s, result.performance_s, color="tab:red", lw=1, label="GDTW refined")
    cost_axis.set_xlabel("score time (s)")
    cost_axis.set_ylabel("performance time (s)")
    cost_axis.legend(loc="upper left")
    cost_axis.set_title(title)
    window = max(1, int(round(1.0 / (result.score_s[1] - result.score_s[0]))))
    slope = (result.performance_s[window:] - result.performance_s[:-window]) / (
        result.score_s[window:] - result.score_s[:-window])
    tempo_axis.plot(result.score_s[window:], 1.0 / np.maximum(slope, 1e-3), color="tab:red", lw=1)
    tempo_axis.set_xlabel("score time (s)")
    tempo_axis.set_ylabel("tempo / score tempo")
    tempo_axis.set_ylim(0, 2.5)
    tempo_axis.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)
