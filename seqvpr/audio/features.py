"""Base audio features for alignment: CQT (48), log-chroma (12) and log-mel (128), by librosa.

All three are frame sequences at ``sample_rate / hop_length`` frames per second (22050 /
1024 = 21.5 Hz by default), frame k centred at k * hop_length / sample_rate seconds:

- ``cqt``: constant-Q magnitude, 48 semitone bins from C2 (MIDI 36) to B5, in dB relative
  to the recording's maximum (the pretty_midi ``align_midi`` recipe of Raffel & Ellis);
- ``chroma``: 12 pitch classes from an STFT (n_fft 4096), log-compressed log(1 + 100 c);
- ``melspec``: 128 mel bands of an STFT (n_fft 2048), in dB relative to the maximum.

Every frame is then shifted to be non-negative (dB values floored at -80 dB) and scaled to
unit L2 norm, so squared distances between frames lie in [0, 4] whatever the feature;
silent frames become the constant unit vector. The features come back as float32 arrays
(N, D) with their times (N,) in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqvpr.errors import SeqvprError

__all__ = ["FEATURE_DIMS", "FeatureConfig", "Features", "compute_features"]

FEATURE_DIMS = {"cqt": 48, "chroma": 12, "melspec": 128}


@dataclass(frozen=True)
class FeatureConfig:
    """Options of the base features.

    Attributes:
        sample_rate: audio rate the features are computed at, Hz (audio is resampled).
        hop_length: samples between frames; must be a multiple of 8 for the CQT.
        top_db: dB floor below each recording's maximum (cqt, melspec).
    """

    sample_rate: int = 22050
    hop_length: int = 1024
    top_db: float = 80.0

    def __post_init__(self) -> None:
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be >= 8000 Hz (CQT bins reach B5), got {self.sample_rate}")
        if self.hop_length <= 0 or self.hop_length % 8:
            raise ValueError(f"hop_length must be a positive multiple of 8, got {self.hop_length}")

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length


@dataclass(frozen=True)
class Features:
    """A feature sequence.

    Attributes:
        times: frame centres, seconds, shape (N,).
        values: unit-norm frames, shape (N, D), float32.
        kind: ``"cqt"``, ``"chroma"`` or ``"melspec"``.
    """

    times: np.ndarray
    values: np.ndarray
    kind: str


def _unit_frames(values: np.ndarray) -> np.ndarray:
    values = values - values.min(initial=0.0) if values.min(initial=0.0) < 0 else values
    norms = np.linalg.norm(values, axis=0, keepdims=True)
    constant = np.full_like(values, 1.0 / np.sqrt(values.shape[0]))
    return np.where(norms > 1e-8, values / np.maximum(norms, 1e-8), constant)


def compute_features(audio: np.ndarray, sample_rate: int, kind: str,
                     config: FeatureConfig = FeatureConfig()) -> Features:
    """Base features of a mono recording.

    Args:
        audio: samples, shape (n,).
        sample_rate: the audio's rate, Hz; resampled to ``config.sample_rate`` if it differs.
        kind: ``"cqt"``, ``"chroma"`` or ``"melspec"``.
        config: feature options.

    Returns:
        :class:`Features` with times (N,) and values (N, D).

    Raises:
        SeqvprError: an unknown kind, or audio too short for two frames.
    """
    import librosa

    if kind not in FEATURE_DIMS:
        raise SeqvprError(f"unknown feature type {kind!r}; expected one of {sorted(FEATURE_DIMS)}")
    audio = np.asarray(audio, dtype=np.float32)
    if sample_rate != config.sample_rate:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=config.sample_rate)
    if len(audio) < 2 * config.hop_length:
        raise SeqvprError(f"audio of {len(audio)} samples is too short for features (need at least "
                          f"{2 * config.hop_length} at {config.sample_rate} Hz)")
    rate, hop = config.sample_rate, config.hop_length
    if kind == "cqt":
        magnitude = np.abs(librosa.cqt(audio, sr=rate, hop_length=hop, fmin=librosa.midi_to_hz(36),
                                       n_bins=48, bins_per_octave=12))
        values = librosa.amplitude_to_db(magnitude, ref=np.max, top_db=config.top_db) + config.top_db
    elif kind == "chroma":
        chroma = librosa.feature.chroma_stft(y=audio, sr=rate, hop_length=hop, n_fft=4096, norm=None)
        values = np.log1p(100.0 * chroma / max(float(chroma.max()), 1e-12))
    else:
        power = librosa.feature.melspectrogram(y=audio, sr=rate, hop_length=hop, n_fft=2048, n_mels=128)
        values = librosa.power_to_db(power, ref=np.max, top_db=config.top_db) + config.top_db
    values = _unit_frames(values.astype(np.float64)).T.astype(np.float32)
    times = np.arange(len(values)) * hop / rate
    return Features(times, values, kind)
