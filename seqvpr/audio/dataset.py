"""``seqvpr audio-data build``: an audio-to-score data set from the music21 corpus.

The paper's data (MAESTRO / Kernscores performances aligned by Thickstun et al.) cannot be
downloaded here, so the same task is built from scores that ship with music21:

1. **Works.** Corpus files of the chosen composers (one file per work: a work stored as
   both ``.krn`` and ``.mxl`` counts once), shuffled by the seed, parsed to MIDI, cut to
   ``max_score_s``; works shorter than ``min_score_s`` or that fail to parse are skipped.
   Works are split into train / val / test in the paper's proportions (94 / 49 / 50), so no
   score is shared across splits.
2. **Score audio.** Every voice on one piano program at one velocity, synthesised at the
   score's nominal tempo with the score soundfont.
3. **Performances.** ``performances_per_work`` renditions of each work: a random
   expressive tempo map (:mod:`seqvpr.audio.tempo`), asynchrony, dynamics and sustain
   (:mod:`seqvpr.audio.performance`), another soundfont and piano program, room reverb and
   noise at a random SNR (:mod:`seqvpr.audio.synthesis`). The tempo map is the exact ground
   truth, stored as its changepoints.
4. **Slices.** The score is cut into non-overlapping slices of ``slice_frames`` frames
   (the query). Each slice's performance window (the reference) is ``window_scale`` times
   the true performance span of the slice, at a random offset that contains the span.
5. **Feature cache.** Base features of every score and performance for each kind in
   ``features``.

Everything is a deterministic function of the configuration: each performance draws from
its own random stream ``(seed, work index, performance index)``. Files are written
atomically and a rerun skips what exists, so an interrupted build resumes.

Layout of the output folder::

    config.yaml                 the resolved configuration
    works.csv                   work, split, score_s, notes
    performances.csv            performance, work, split, program, rt60_s, wet, snr_db, duration_s
    slices.csv                  slice, performance, split, score_start, score_frames,
                                performance_start, performance_frames (frame indices)
    works/<work>/score.mid, score.flac
    performances/<performance>/performance.mid, performance.flac, truth.csv
    features/<kind>/<performance>.npz   score_values, performance_values (float32)
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqvpr.audio.alignment import Alignment
from seqvpr.audio.features import FEATURE_DIMS, FeatureConfig
from seqvpr.audio.performance import PerformanceConfig
from seqvpr.audio.tempo import TempoMapConfig
from seqvpr.errors import SeqvprError

__all__ = ["AudioDataConfig", "SPLITS", "read_truth", "read_table", "work_slug"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# The paper's performances per split (appendix A.4).
PAPER_SPLIT = (94, 49, 50)


@dataclass(frozen=True)
class AudioDataConfig:
    """What ``seqvpr audio-data build`` builds (see ``config/audio_data_*.yaml``); the
    defaults are the small preset.

    Attributes:
        seed: random seed of the whole build.
        works: number of works to use.
        composers: music21 corpus folders to draw works from (e.g. ``bach``).
        max_file_kb: skip corpus files larger than this (huge scores parse slowly).
        performances_per_work: performances rendered per work.
        min_score_s: skip works whose score is shorter, seconds.
        max_score_s: cut every score at this length, seconds.
        split: relative sizes of train, val and test (by work).
        sample_rate: audio rate, Hz.
        hop_length: samples between feature frames.
        slice_frames: score frames per slice.
        window_scale: performance window length over the slice's true performance span.
        score_soundfont: ``TimGM6mb`` (pretty_midi's) or a ``.sf2`` path.
        performance_soundfont: a ``.sf2`` path or ``TimGM6mb``.
        score_program: General MIDI program of the score audio.
        performance_programs: programs a performance is drawn from.
        rt60_s: reverberation time range (min, max), seconds.
        wet: reverberant share range (min, max).
        snr_db: noise SNR range (min, max), dB.
        features: base feature kinds to cache.
        tempo: tempo-map options.
        performance: performer options.
    """

    seed: int = 0
    works: int = 6
    composers: tuple[str, ...] = ("bach",)
    max_file_kb: int = 200
    performances_per_work: int = 1
    min_score_s: float = 15.0
    max_score_s: float = 30.0
    split: tuple[float, float, float] = PAPER_SPLIT
    sample_rate: int = 22050
    hop_length: int = 1024
    slice_frames: int = 256
    window_scale: float = 1.1
    score_soundfont: str = "TimGM6mb"
    performance_soundfont: str = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
    score_program: int = 0
    performance_programs: tuple[int, ...] = (0, 1, 2)
    rt60_s: tuple[float, float] = (0.2, 0.8)
    wet: tuple[float, float] = (0.1, 0.4)
    snr_db: tuple[float, float] = (15.0, 35.0)
    features: tuple[str, ...] = ("cqt", "chroma", "melspec")
    tempo: TempoMapConfig = field(default_factory=TempoMapConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)

    def __post_init__(self) -> None:
        if self.works < 3:
            raise ValueError(f"works must be >= 3 (one per split at least), got {self.works}")
        if self.performances_per_work < 1:
            raise ValueError(f"performances_per_work must be >= 1, got {self.performances_per_work}")
        if len(self.split) != 3 or min(self.split) <= 0:
            raise ValueError(f"split must be three positive sizes (train, val, test), got {self.split}")
        if not 0 < self.min_score_s <= self.max_score_s:
            raise ValueError(f"need 0 < min_score_s <= max_score_s, got {self.min_score_s}, {self.max_score_s}")
        if self.slice_frames < 8 or self.window_scale < 1.0:
            raise ValueError("slice_frames must be >= 8 and window_scale >= 1")
        unknown = sorted(set(self.features) - set(FEATURE_DIMS))
        if unknown or not self.features:
            raise ValueError(f"features must be among {sorted(FEATURE_DIMS)}, got {list(self.features)}")
        FeatureConfig(self.sample_rate, self.hop_length)  # validates both

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(self.sample_rate, self.hop_length)

    def split_sizes(self) -> tuple[int, int, int]:
        """Works per split: val and test rounded from the proportions, the rest train."""
        total = sum(self.split)
        val = max(1, round(self.works * self.split[1] / total))
        test = max(1, round(self.works * self.split[2] / total))
        return self.works - val - test, val, test


def work_slug(work: str) -> str:
    """A corpus path as a file name: ``bach/bwv66.6.mxl`` -> ``bach-bwv66.6``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(Path(work).with_suffix(""))).strip("-")


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a manifest CSV; a missing file is a :class:`SeqvprError` naming it."""
    if not path.is_file():
        raise SeqvprError(f"{path}: missing; is {path.parent} a folder written by `seqvpr audio-data build`?")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_truth(path: Path) -> Alignment:
    """The ground-truth alignment stored as changepoints (score_s, performance_s)."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return Alignment(data[:, 0], data[:, 1])
