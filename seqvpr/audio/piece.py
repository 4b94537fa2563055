r"""Whole-piece audio-to-score alignment: coarse DTW, then GDTW refined in overlapping windows.

``align_piece(score, performance)`` aligns a score file (MIDI, MusicXML, kern, ABC) to a
recording of it (any format libsndfile reads: wav, flac, ogg, ...):

1. **Features.** The score is synthesised at its nominal tempo (as in the training data,
   all voices in one fluidsynth pass) and both recordings are turned into base features (:mod:`seqvpr.audio.features`),
   optionally embedded by a trained :class:`~seqvpr.audio.model.AudioEncoder`.
2. **Coarse DTW.** Both sequences are average-pooled by ``coarse_factor`` frames
   (re-normalised) and aligned end to end by classic DTW: a global path that cannot get
   lost, at 1/k of the resolution and 1/k^2 of the cost.
3. **GDTW refinement.** The score is cut into windows of ``window_frames`` frames that
   overlap by ``overlap_frames``. Each window is aligned by subsequence GDTW to the stretch
   of the performance that the coarse path assigns to it, widened by ``margin_s`` on both
   sides, with the window's coarse tempo as the expected slope e. All windows are solved
   as one batch.
4. **Stitching.** Inside an overlap the two windows' warps are cross-faded linearly; the
   result is made monotone by a running maximum.

The result is the performance time of every score frame (21.5 frames per second by
default), with the score's beat position from the MIDI's tempo map.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqvpr.align import GDTWConfig, Signal, dtw, gdtw
from seqvpr.audio.alignment import Alignment
from seqvpr.audio.features import FEATURE_DIMS, FeatureConfig, compute_features
from seqvpr.audio.methods import PAPER_LAMBDA
from seqvpr.errors import SeqvprError

__all__ = ["PieceAlignConfig", "PieceAlignment", "align_features", "align_piece", "read_performance"]

logger = logging.getLogger(__name__)

# Rates libsndfile and the resampler handle without trouble.
MIN_RATE_HZ, MAX_RATE_HZ = 8000, 384000
SILENCE_PEAK = 1e-4  # -80 dBFS


@dataclass(frozen=True)
class PieceAlignConfig:
    """Options of :func:`align_piece` (``config/audio_align.yaml`` documents each key).

    Attributes:
        features: base features: ``cqt``, ``chroma`` or ``melspec`` (a model's own wins).
        lam: GDTW lambda; None = the paper's value for the features (or the model's).
        sample_rate: feature sample rate, Hz.
        hop_length: samples between frames.
        coarse_factor: frames pooled per coarse DTW frame.
        window_frames: score frames per GDTW window.
        overlap_frames: frames shared by consecutive windows.
        margin_s: performance seconds added on both sides of a window's coarse span.
        min_duration_s: shortest performance accepted, seconds.
        soundfont: soundfont that renders the score (``TimGM6mb`` or a ``.sf2`` path).
    """

    features: str = "cqt"
    lam: float | None = None
    sample_rate: int = 22050
    hop_length: int = 1024
    coarse_factor: int = 4
    window_frames: int = 256
    overlap_frames: int = 64
    margin_s: float = 2.0
    min_duration_s: float = 2.0
    soundfont: str = "TimGM6mb"

    def __post_init__(self) -> None:
        if self.features not in FEATURE_DIMS:
            raise ValueError(f"features must be one of {sorted(FEATURE_DIMS)}, got {self.features!r}")
        if self.lam is not None and self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        if self.coarse_factor < 1:
            raise ValueError(f"coarse_factor must be >= 1, got {self.coarse_factor}")
        if not 0 <= self.overlap_frames < self.window_frames // 2 or self.window_frames < 8:
            raise ValueError("need window_frames >= 8 and 0 <= overlap_frames < window_frames / 2, got "
                             f"{self.window_frames} and {self.overlap_frames}")
        if self.margin_s < 0 or self.min_duration_s <= 0:
            raise ValueError("margin_s must be >= 0 and min_duration_s > 0")
        FeatureConfig(self.sample_rate, self.hop_length)


@dataclass(frozen=True)
class PieceAlignment:
    """A whole-piece alignment.

    Attributes:
        score_s: score time of every score frame, shape (n,).
        beats: beat position of every score frame, shape (n,).
        performance_s: aligned performance time, shape (n,), non-decreasing.
        coarse: the coarse DTW alignment.
        seconds: wall time per stage (``features``, ``coarse``, ``refine``).
        cost: the coarse stage's pooled cost matrix (score x performance), for plots.
        coarse_times: (score times, performance times) of the pooled frames.
    """

    score_s: np.ndarray
    beats: np.ndarray
    performance_s: np.ndarray
    coarse: Alignment
    seconds: dict[str, float] = field(default_factory=dict)
    cost: np.ndarray | None = field(default=None, repr=False)
    coarse_times: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def alignment(self) -> Alignment:
        return Alignment(self.score_s, self.performance_s)


def read_performance(path: str | Path, min_duration_s: float = 2.0) -> tuple[np.ndarray, int]:
    """A recording as mono float32 samples and its rate, with checks a user needs.

    Raises:
        SeqvprError: missing or unreadable file, a sample rate outside 8-384 kHz, a recording
            shorter than ``min_duration_s`` or silent (peak below -80 dBFS).
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"{path}: no such performance file")
    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError) as error:
        raise SeqvprError(f"{path}: not a readable audio file (wav, flac, ogg...): {error}") from error
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise SeqvprError(f"{path}: sample rate {rate} Hz cannot be handled; need {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    audio = audio.mean(axis=1)
    if len(audio) < min_duration_s * rate:
        raise SeqvprError(f"{path}: {len(audio) / rate:.2f} s of audio is too short; need at least "
                          f"{min_duration_s:g} s")
    if not np.isfinite(audio).all() or np.abs(audio).max(initial=0.0) < SILENCE_PEAK:
        raise SeqvprError(f"{path}: the recording is silent (peak below -80 dBFS) or holds invalid samples")
    return audio, int(rate)


def _pool(values: np.ndarray, factor: int) -> np.ndarray:
    count = len(values) // factor
    pooled = values[: count * factor].reshape(count, factor, -1).mean(1)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-8)


def _windows(count: int, size: int, overlap: int) -> list[tuple[int, int]]:
    if count <= size:
        return [(0, count)]
    starts = list(range(0, count - size + 1, size - overlap))
    if starts[-1] + size < count:
        starts.append(count - size)
    return [(start, start + size) for start in starts]


def align_features(score_values: np.ndarray, performance_values: np.ndarray, frame_rate: float, lam: float,
                   config: PieceAlignConfig = PieceAlignConfig()) -> tuple[np.ndarray, Alignment, np.ndarray]:
    """Aligns two feature sequences of a whole piece (steps 2-4 of the module header).

    Args:
        score_values: score frames, shape (n, D).
        performance_values: performance frames, shape (N, D).
        frame_rate: frames per second of both.
        lam: GDTW lambda.
        config: window options.

    Returns:
        ``(performance_s (n,), coarse alignment, coarse cost matrix)``.
    """
    factor = config.coarse_factor
    score_times = np.arange(len(score_values)) / frame_rate
    performance_times = np.arange(len(performance_values)) / frame_rate
    coarse_score, coarse_performance = _pool(score_values, factor), _pool(performance_values, factor)
    if len(coarse_score) < 2 or len(coarse_performance) < 2:
        raise SeqvprError(f"too few frames to align: {len(score_values)} score and {len(performance_values)} "
                          f"performance frames")
    centre = (factor - 1) / 2 / frame_rate
    coarse_score_times = np.arange(len(coarse_score)) * factor / frame_rate + centre
    coarse_performance_times = np.arange(len(coarse_performance)) * factor / frame_rate + centre
    reference = Signal(torch.from_numpy(coarse_performance_times), torch.from_numpy(coarse_performance))
    query = Signal(torch.from_numpy(coarse_score_times), torch.from_numpy(coarse_score))
    coarse_result = dtw(reference, query)
    coarse = Alignment(coarse_score_times, np.maximum.accumulate(coarse_result.warp[0].numpy()))
    cost = np.clip(2.0 - 2.0 * coarse_score @ coarse_performance.T, 0.0, None)

    windows = _windows(len(score_values), config.window_frames, config.overlap_frames)
    references, queries, slopes = [], [], []
    last = len(performance_values) - 1
    for start, stop in windows:
        first, final = coarse(score_times[start]), coarse(score_times[stop - 1])
        low = int(np.clip(np.floor((first - config.margin_s) * frame_rate), 0, last - 1))
        high = int(np.clip(np.ceil((final + config.margin_s) * frame_rate), low + 1, last))
        references.append((torch.from_numpy(performance_times[low : high + 1]),
                           torch.from_numpy(performance_values[low : high + 1])))
        queries.append((torch.from_numpy(score_times[start:stop]), torch.from_numpy(score_values[start:stop])))
        span = score_times[stop - 1] - score_times[start]
        slopes.append(float(np.clip((final - first) / span, 0.25, 4.0)))
    solver = GDTWConfig(subsequence=True, lam=lam, expected_slope=torch.tensor(slopes, dtype=torch.float64))
    result = gdtw(Signal.from_sequences(references), Signal.from_sequences(queries), solver)

    total = np.zeros(len(score_values))
    weight = np.zeros(len(score_values))
    overlap = max(config.overlap_frames, 1)
    for index, (start, stop) in enumerate(windows):
        position = np.arange(stop - start)
        ramp = np.minimum(1.0, np.minimum(position + 1, stop - start - position) / overlap)
        if start == 0:
            ramp[: len(ramp) // 2] = 1.0
        if stop == len(score_values):
            ramp[len(ramp) // 2 :] = 1.0
        total[start:stop] += ramp * result.warp[index, : stop - start].numpy()
        weight[start:stop] += ramp
    return np.maximum.accumulate(total / weight), coarse, cost


def align_piece(score_path: str | Path, performance_path: str | Path, config: PieceAlignConfig = PieceAlignConfig(),
                model=None) -> PieceAlignment:
    """Aligns a whole performance to its score.

    Args:
        score_path: MIDI, MusicXML, kern or ABC file.
        performance_path: audio file (wav, flac, ogg, ...).
        config: options.
        model: a :class:`~seqvpr.audio.model.LoadedAudioModel` whose features and lambda
            replace the config's, or None for base features.

    Returns:
        The :class:`PieceAlignment`.

    Raises:
        SeqvprError: unreadable, empty or silent inputs, or an unusable sample rate.
    """
    from seqvpr.audio.performance import with_program
    from seqvpr.audio.score import load_score, score_beats
    from seqvpr.audio.synthesis import synthesize

    clock = time.perf_counter()
    score = load_score(score_path)
    audio, rate = read_performance(performance_path, config.min_duration_s)
    kind = model.features if model is not None else config.features
    lam = config.lam if config.lam is not None else (model.lam if model is not None else PAPER_LAMBDA[kind])
    feature_config = FeatureConfig(config.sample_rate, config.hop_length)
    score_audio = synthesize(with_program(score, 0, velocity=80, merge=True), config.sample_rate, config.soundfont)
    score_values = compute_features(score_audio, config.sample_rate, kind, feature_config).values
    performance_values = compute_features(audio, rate, kind, feature_config).values
    if model is not None:
        with torch.no_grad():
            score_values, performance_values = (
                model.encoder(torch.from_numpy(values)[None])[0].numpy()
                for values in (score_values, performance_values))
    seconds = {"features": time.perf_counter() - clock}
    clock = time.perf_counter()
    performance_s, coarse, cost = align_features(score_values, performance_values, feature_config.frame_rate,
                                                 lam, config)
    seconds["align"] = time.perf_counter() - clock
    score_s = np.arange(len(score_values)) / feature_config.frame_rate
    factor = config.coarse_factor
    coarse_times = (coarse.score_s, (np.arange(cost.shape[1]) * factor + (factor - 1) / 2) / feature_config.frame_rate)
    return PieceAlignment(score_s, score_beats(score, score_s), performance_s, coarse, seconds, cost, coarse_times)
