"""Audio from MIDI: fluidsynth with a soundfont, or pretty_midi's sine synthesis, and a room.

:func:`synthesize` renders a :class:`pretty_midi.PrettyMIDI` through fluidsynth
(``pyfluidsynth`` with the ``libfluidsynth`` shared library) when both are present and the
soundfont exists, and otherwise falls back to pretty_midi's additive sine synthesis (with a
warning). Two soundfonts give two timbres: pretty_midi's bundled ``TimGM6mb.sf2`` for scores
and Debian's ``FluidR3_GM.sf2`` (package ``fluid-soundfont-gm``) for performances.

:func:`add_room` convolves with a synthetic room impulse response (exponentially decaying
noise with reverberation time RT60) and adds white noise at a given SNR.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["FLUIDR3", "TIMGM6MB", "add_room", "fluidsynth_available", "synthesize"]

logger = logging.getLogger(__name__)

FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
TIMGM6MB = "TimGM6mb"  # pretty_midi's bundled soundfont


def _soundfont_path(soundfont: str) -> str:
    if soundfont == TIMGM6MB:
        import pretty_midi.fluidsynth

        return os.path.join(os.path.dirname(pretty_midi.fluidsynth.__file__), pretty_midi.fluidsynth.DEFAULT_SF2)
    return soundfont


@functools.lru_cache(maxsize=None)
def fluidsynth_available() -> bool:
    """Whether pyfluidsynth and the libfluidsynth library load."""
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


@functools.lru_cache(maxsize=4)
def _synth(soundfont_path: str, sample_rate: int):
    import fluidsynth

    synth = fluidsynth.Synth(samplerate=float(sample_rate), **{"synth.reverb.active": 0,
                                                              "synth.chorus.active": 0})
    sfid = synth.sfload(soundfont_path)
    if sfid < 0:
        raise OSError(f"fluidsynth could not load the soundfont {soundfont_path}")
    return synth, sfid


def synthesize(midi, sample_rate: int, soundfont: str = TIMGM6MB) -> np.ndarray:
    """Renders MIDI to mono audio peak-normalised to 0.9.

    Args:
        midi: a :class:`pretty_midi.PrettyMIDI`.
        sample_rate: output rate, Hz.
        soundfont: ``TIMGM6MB`` (pretty_midi's soundfont) or a path to a ``.sf2`` file.
            Without fluidsynth or the file, pretty_midi's sine synthesis is used instead.

    Returns:
        Audio samples, shape (n,), float32.
    """
    path = _soundfont_path(soundfont)
    if fluidsynth_available() and Path(path).is_file():
        synth, sfid = _synth(path, int(sample_rate))
        audio = midi.fluidsynth(fs=int(sample_rate), synthesizer=synth, sfid=sfid)
    else:
        logger.warning("fluidsynth or soundfont %s unavailable: using sine synthesis", path)
        audio = midi.synthesize(fs=int(sample_rate))
    audio = np.asarray(audio, dtype=np.float64)
    peak = np.abs(audio).max(initial=0.0)
    return (0.9 * audio / peak if peak > 0 else audio).astype(np.float32)


def add_room(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, rt60_s: float, wet: float,
             snr_db: float) -> np.ndarray:
    """Reverberation and additive white noise.

    Args:
        audio: dry signal, shape (n,).
        sample_rate: Hz.
        rng: random generator (impulse response and noise).
        rt60_s: reverberation time (60 dB decay), seconds; 0 = dry.
        wet: share of the reverberant signal in the mix, in [0, 1].
        snr_db: signal-to-noise ratio of the added noise, dB; ``inf`` = none.

    Returns:
        The processed signal, same length, peak-normalised to 0.9, float32.
    """
    from scipy.signal import oaconvolve

    audio = np.asarray(audio, dtype=np.float64)
    if rt60_s > 0 and wet > 0:
        length = int(rt60_s * sample_rate)
        decay = np.exp(-6.9078 * np.arange(length) / length)  # -60 dB at rt60
        response = rng.normal(size=length) * decay
        response /= np.sqrt(np.sum(response**2))
        reverberant = oaconvolve(audio, response)[: len(audio)]
        audio = (1 - wet) * audio + wet * reverberant
    if np.isfinite(snr_db):
        power = np.mean(audio**2)
        audio = audio + rng.normal(size=len(audio)) * np.sqrt(power / 10 ** (snr_db / 10))
    peak = np.abs(audio).max(initial=0.0)
    return (0.9 * audio / peak if peak > 0 else audio).astype(np.float32)
