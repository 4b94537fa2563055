r"""Random expressive tempo maps whose score-to-performance alignment is known exactly.

A performance plays score time s at a local speed; its time is

    p(s) = p_0 + \int_0^s slope(u) du,    slope = 1 / tempo factor,

with slope piecewise constant on a grid of score time (``step_s``) plus the edges of
fermatas. p is then piecewise linear with changepoints exactly at the grid and fermata
edges: the ground-truth alignment, stored as those changepoints.

The tempo factor is a smooth random curve (a sum of a few slow sinusoids) within
1 +- ``variation``; ritardandi ramp the slope up over the last seconds of a phrase and of the
piece; fermatas hold a chord ``fermata_stretch`` times longer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqvpr.audio.alignment import Alignment

__all__ = ["TempoMapConfig", "random_tempo_map"]


@dataclass(frozen=True)
class TempoMapConfig:
    """Options of :func:`random_tempo_map`.

    Attributes:
        variation: the tempo factor stays within 1 +- variation (0.3 = +-30 %) outside
            ritardandi and fermatas.
        step_s: score-time spacing of the tempo curve's changepoints, seconds.
        period_s: range of periods of the tempo curve's sinusoids, seconds (min, max).
        ritardandi: number of ritardandi inside the piece (one more always ends it).
        ritardando_s: length of a ritardando in score seconds (min, max).
        ritardando_slowdown: slope multiplier reached at the end of a ritardando (min, max).
        fermatas: number of fermatas.
        fermata_stretch: how many times longer a held chord lasts (min, max).
        lead_in_s: performance time before the first note (min, max).
    """

    variation: float = 0.3
    step_s: float = 0.25
    period_s: tuple[float, float] = (4.0, 20.0)
    ritardandi: int = 1
    ritardando_s: tuple[float, float] = (1.5, 4.0)
    ritardando_slowdown: tuple[float, float] = (1.3, 1.8)
    fermatas: int = 1
    fermata_stretch: tuple[float, float] = (1.8, 3.0)
    lead_in_s: tuple[float, float] = (0.2, 1.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.variation < 1.0:
            raise ValueError(f"variation must be in [0, 1), got {self.variation}")
        if not self.step_s > 0:
            raise ValueError(f"step_s must be > 0, got {self.step_s}")
        for name in ("period_s", "ritardando_s", "ritardando_slowdown", "fermata_stretch", "lead_in_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (min, max) with 0 <= min <= max, got {(low, high)}")
        if self.ritardandi < 0 or self.fermatas < 0:
            raise ValueError("ritardandi and fermatas must be >= 0")


def random_tempo_map(duration_s: float, rng: np.random.Generator, config: TempoMapConfig = TempoMapConfig(),
                     onsets_s: np.ndarray | None = None) -> Alignment:
    """Draws an expressive tempo map for a score of ``duration_s`` score seconds.

    Args:
        duration_s: score length in seconds, > 0.
        rng: random generator (the map is a deterministic function of its state).
        config: tempo options.
        onsets_s: sorted distinct note-onset times of the score; fermatas are placed on
            chords between consecutive onsets (none without onsets).

    Returns:
        The exact alignment score seconds -> performance seconds over [0, duration_s].
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    grid = np.arange(0.0, duration_s, config.step_s)
    edges = [grid, [duration_s]]
    holds = []
    if onsets_s is not None and config.fermatas:
        onsets = np.unique(np.asarray(onsets_s, dtype=np.float64))
        onsets = onsets[(onsets > 0) & (onsets < duration_s)]
        if len(onsets) > 2:
            chosen = rng.choice(len(onsets) - 1, size=min(config.fermatas, len(onsets) - 1), replace=False)
            for index in chosen:
                start, end = onsets[index], onsets[index + 1]
                holds.append((start, end, rng.uniform(*config.fermata_stretch)))
                edges.append([start, end])
    score = np.unique(np.concatenate(edges))
    middle = 0.5 * (score[:-1] + score[1:])

    components = 3
    periods = rng.uniform(*config.period_s, size=components)
    phases = rng.uniform(0, 2 * np.pi, size=components)
    weights = rng.dirichlet(np.ones(components))
    curve = (weights[:, None] * np.sin(2 * np.pi * middle[None] / periods[:, None] + phases[:, None])).sum(0)
    level = rng.uniform(-1.0, 1.0)  # overall tempo of this performance
    shape = 0.5 * level + 0.5 * curve
    tempo = 1.0 + config.variation * shape / max(1.0, float(np.abs(shape).max()))
    slope = 1.0 / tempo

    ends = [duration_s]
    ends += list(rng.uniform(0.2 * duration_s, 0.9 * duration_s, size=config.ritardandi))
    for end in ends:
        length = rng.uniform(*config.ritardando_s)
        slowdown = rng.uniform(*config.ritardando_slowdown)
        if length <= 0:
            continue
        ramp = np.clip((middle - (end - length)) / length, 0.0, None)
        inside = ramp <= 1.0
        slope = np.where(inside, slope * (1.0 + (slowdown - 1.0) * ramp), slope)
    for start, end, stretch in holds:
        slope = np.where((middle > start) & (middle < end), slope * stretch, slope)

    performance = rng.uniform(*config.lead_in_s) + np.concatenate([[0.0], np.cumsum(slope * np.diff(score))])
    return Alignment(score, performance)
