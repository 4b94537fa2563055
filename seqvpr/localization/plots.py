"""Plots of a localization replay: the trajectory and the error over time (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seqvpr.plotting import pyplot, save_figure

__all__ = ["plot_trajectory", "plot_error_over_time", "plot_reliability"]

STATUS_COLOURS = {"INITIALIZING": "#bbbbbb", "LOST": "#f4a6a6"}


def plot_trajectory(path: Path, result: Any, title: str = "") -> None:
    """Truth (grey) vs estimates coloured by error; truth points where no fix was published in red."""
    plt = pyplot()
    truths = result.truths
    positions = np.array([[e.easting, e.northing] for e in result.estimates]).reshape(-1, 2)
    fixed = np.isfinite(positions[:, 0])
    origin = np.nanmin(np.vstack([truths, positions]), axis=0) if len(truths) else np.zeros(2)
    origin = np.nan_to_num(origin)
    figure, axis = plt.subplots(figsize=(7, 6), dpi=110)
    axis.plot(*(truths - origin).T, color="0.6", lw=1.5, label="truth")
    unfixed = ~fixed & np.isfinite(truths[:, 0])
    axis.scatter(*(truths[unfixed] - origin).T, s=4, color="tab:red", label="no fix (LOST / INITIALIZING)")
    points = axis.scatter(*(positions[fixed] - origin).T, c=np.clip(result.errors_m[fixed], 0, 20), s=6,
                          cmap="viridis", vmin=0, vmax=20, label="estimates")
    figure.colorbar(points, ax=axis, label="error (m, clipped at 20)")
    axis.set_xlabel(f"easting - {origin[0]:.0f} (m)")
    axis.set_ylabel(f"northing - {origin[1]:.0f} (m)")
    axis.set_aspect("equal", adjustable="datalim")
    axis.set_title(title or "trajectory")
    axis.legend(loc="best", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def plot_error_over_time(path: Path, result: Any, title: str = "") -> None:
    """Error of each fix over time; INITIALIZING and LOST stretches shaded."""
    plt = pyplot()
    stamps = np.array([e.stamp_s for e in result.estimates])
    if stamps.size == 0:
        stamps = np.zeros(1)
    relative = stamps - stamps[0]
    figure, axis = plt.subplots(figsize=(9, 3.5), dpi=110)
    statuses = [e.status.value for e in result.estimates]
    start = 0
    for i in range(1, len(statuses) + 1):
        if i == len(statuses) or statuses[i] != statuses[start]:
            colour = STATUS_COLOURS.get(statuses[start])
            if colour:
                end = relative[i] if i < len(statuses) else relative[-1]
                axis.axvspan(relative[start], end, color=colour, alpha=0.6, lw=0)
            start = i
    axis.plot(relative, result.errors_m, ".", ms=2, color="tab:blue")
    for label, colour in STATUS_COLOURS.items():
        axis.axvspan(0, 0, color=colour, label=label)
    axis.set_yscale("symlog", linthresh=10)
    axis.set_xlabel("time since first frame (s)")
    axis.set_ylabel("error (m)")
    axis.set_title(title or "error over time")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def plot_reliability(path: Path, report: dict, title: str = "") -> None:
    """Reliability diagram: observed share of correct fixes against predicted confidence, per bin."""
    plt = pyplot()
    bins = report["bins"]
    figure, axis = plt.subplots(figsize=(5, 4.5), dpi=110)
    axis.plot([0, 1], [0, 1], color="0.6", lw=1, label="perfect calibration")
    predicted = [b["predicted"] for b in bins]
    observed = [b["observed"] for b in bins]
    axis.plot(predicted, observed, "o-", color="tab:blue", label="observed")
    for b in bins:
        axis.annotate(str(b["count"]), (b["predicted"], b["observed"]), textcoords="offset points", xytext=(4, -10),
                      fontsize=7)
    coverage = report.get("coverage_95")
    text = "" if coverage is None else f"; 95 % ellipse holds {100 * coverage:.1f} % of published fixes"
    axis.set_title(f"{title or 'reliability'}{text}", fontsize=8)
    axis.set_xlabel("predicted confidence (bin mean)")
    axis.set_ylabel("share of fixes within correct_m")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    save_figure(figure, path)
