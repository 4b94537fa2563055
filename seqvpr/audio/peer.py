"""The peer method: synctoolbox's MrMsDTW with chroma and DLNCO onset features (Müller et al.).

What a music-information-retrieval user would pick today to align a recording to a
synthesised score, following synctoolbox's audio-audio tutorial: pitch features (an IIR
filterbank) -> chroma, quantised; pitch-onset features -> DLNCO; multi-resolution
multi-scale DTW on chroma + DLNCO at 50 frames per second with step weights
(1.5, 1.5, 2.0); the warping path made strictly monotonic. Both recordings are resampled
to 22050 Hz, and no tuning estimate is made (both sides are at standard pitch in our data).
"""

from __future__ import annotations

import numpy as np

from seqvpr.audio.alignment import Alignment

__all__ = ["PEER_FEATURE_RATE", "synctoolbox_align"]

PEER_FEATURE_RATE = 50


def _features(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    import contextlib
    import io

    from synctoolbox.feature.chroma import pitch_to_chroma, quantize_chroma
    from synctoolbox.feature.dlnco import pitch_onset_features_to_DLNCO
    from synctoolbox.feature.pitch import audio_to_pitch_features
    from synctoolbox.feature.pitch_onset import audio_to_pitch_onset_features

    with contextlib.redirect_stdout(io.StringIO()):  # the filterbanks print a dot per pitch
        pitch = audio_to_pitch_features(f_audio=audio, Fs=sample_rate, feature_rate=PEER_FEATURE_RATE)
        onsets = audio_to_pitch_onset_features(f_audio=audio, Fs=sample_rate)
    chroma = quantize_chroma(f_chroma=pitch_to_chroma(f_pitch=pitch))
    dlnco = pitch_onset_features_to_DLNCO(f_peaks=onsets, feature_rate=PEER_FEATURE_RATE,
                                          feature_sequence_length=chroma.shape[1])
    return chroma, dlnco


def synctoolbox_align(score_audio: np.ndarray, performance_audio: np.ndarray, sample_rate: int) -> Alignment:
    """Aligns two whole recordings with synctoolbox.

    Args:
        score_audio: the synthesised score, shape (n,).
        performance_audio: the performance, shape (N,).
        sample_rate: rate of both, Hz.

    Returns:
        The alignment score seconds -> performance seconds (one changepoint per path step).
    """
    import librosa
    from synctoolbox.dtw.mrmsdtw import sync_via_mrmsdtw
    from synctoolbox.dtw.utils import make_path_strictly_monotonic

    rate = 22050
    if sample_rate != rate:
        score_audio = librosa.resample(score_audio, orig_sr=sample_rate, target_sr=rate)
        performance_audio = librosa.resample(performance_audio, orig_sr=sample_rate, target_sr=rate)
    score_chroma, score_onsets = _features(np.asarray(score_audio, dtype=np.float64), rate)
    performance_chroma, performance_onsets = _features(np.asarray(performance_audio, dtype=np.float64), rate)
    path = sync_via_mrmsdtw(f_chroma1=score_chroma, f_onset1=score_onsets, f_chroma2=performance_chroma,
                            f_onset2=performance_onsets, input_feature_rate=PEER_FEATURE_RATE,
                            step_weights=np.array([1.5, 1.5, 2.0]), threshold_rec=10**6, verbose=False)
    path = make_path_strictly_monotonic(path).astype(np.float64) / PEER_FEATURE_RATE
    return Alignment(path[0], path[1])
