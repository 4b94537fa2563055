"""Reading scores: MIDI, MusicXML, kern or ABC files and the music21 corpus, as MIDI.

Every score becomes a :class:`pretty_midi.PrettyMIDI`: MIDI files are read directly, other
formats are parsed by music21 and converted to MIDI in memory. Score time is the MIDI's
time in seconds (the score at its nominal tempo); beats come from the MIDI's tempo and
time-signature events. Drum tracks are dropped: they carry no pitch to align.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from seqvpr.errors import SeqvprError

__all__ = ["MIDI_SUFFIXES", "SCORE_SUFFIXES", "load_score", "corpus_score", "score_beats", "trim_score",
           "note_count", "score_end"]

logger = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (*MIDI_SUFFIXES, ".xml", ".musicxml", ".mxl", ".krn", ".abc")


def _midi_from_music21(stream, source: str):
    import music21
    import pretty_midi

    try:
        data = music21.midi.translate.streamToMidiFile(stream).writestr()
        return pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as error:  # music21 and mido raise many types on odd scores
        raise SeqvprError(f"{source}: the score could not be converted to MIDI ({error})") from error


def _checked(midi, source: str):
    midi.instruments = [instrument for instrument in midi.instruments if not instrument.is_drum]
    if note_count(midi) == 0:
        raise SeqvprError(f"{source}: the score has no notes to align")
    return midi


def note_count(midi) -> int:
    """Number of pitched notes in a :class:`pretty_midi.PrettyMIDI`."""
    return sum(len(instrument.notes) for instrument in midi.instruments if not instrument.is_drum)


def load_score(path: str | Path):
    """Reads a score file as MIDI.

    Args:
        path: a ``.mid``/``.midi``, MusicXML (``.xml``, ``.musicxml``, ``.mxl``), kern
            (``.krn``) or ABC (``.abc``) file.

    Returns:
        The score as a :class:`pretty_midi.PrettyMIDI` without drum tracks.

    Raises:
        SeqvprError: the file is missing, has an unknown suffix, cannot be parsed, or has
            no notes.
    """
    import pretty_midi

    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"{path}: no such score file")
    suffix = path.suffix.lower()
    if suffix not in SCORE_SUFFIXES:
        raise SeqvprError(f"{path}: unknown score format {suffix!r}; expected one of {', '.join(SCORE_SUFFIXES)}")
    if suffix in MIDI_SUFFIXES:
        try:
            midi = pretty_midi.PrettyMIDI(str(path))
        except Exception as error:  # mido raises OSError, EOFError, KeyError, ValueError...
            raise SeqvprError(f"{path}: not a readable MIDI file ({type(error).__name__}: {error})") from error
        return _checked(midi, str(path))
    import music21

    try:
        stream = music21.converter.parse(str(path))
    except Exception as error:  # music21 raises its own and stdlib errors on bad files
        raise SeqvprError(f"{path}: not a readable {suffix[1:]} score ({type(error).__name__}: {error})") from error
    return _checked(_midi_from_music21(stream, str(path)), str(path))


def corpus_score(work: str):
    """A work of the music21 corpus (e.g. ``"bach/bwv66.6.mxl"``) as MIDI."""
    import music21

    try:
        stream = music21.corpus.parse(work)
    except Exception as error:  # music21 raises many types on odd files
        raise SeqvprError(f"music21 corpus work {work!r} cannot be parsed ({error})") from error
    return _checked(_midi_from_music21(stream, f"corpus:{work}"), f"corpus:{work}")


def score_end(midi) -> float:
    """End of the last note, score seconds."""
    return max(note.end for instrument in midi.instruments for note in instrument.notes)


def trim_score(midi, max_seconds: float):
    """Keeps the notes that start before ``max_seconds`` (ends cut there), in place; returns it."""
    for instrument in midi.instruments:
        instrument.notes = [note for note in instrument.notes if note.start < max_seconds]
        for note in instrument.notes:
            note.end = min(note.end, max_seconds)
        instrument.control_changes = [event for event in instrument.control_changes if event.time < max_seconds]
        instrument.pitch_bends = []
    return midi


def score_beats(midi, score_s: np.ndarray) -> np.ndarray:
    """Beat position (0 at the first beat, fractional) of each score time.

    Beats come from the MIDI's tempo and time-signature events; past the last listed beat
    they continue at the last beat spacing, before the first at the first spacing.
    """
    beats = np.asarray(midi.get_beats(), dtype=np.float64)
    if len(beats) < 2:
        spacing = 60.0 / float(midi.estimate_tempo() or 120.0)
        beats = np.array([0.0, spacing])
    spacing = beats[-1] - beats[-2]
    score_s = np.asarray(score_s, dtype=np.float64)
    extra = max(0, int(np.ceil((score_s.max(initial=0.0) - beats[-1]) / spacing)) + 1)
    beats = np.concatenate([beats, beats[-1] + spacing * np.arange(1, extra + 1)])
    index = np.interp(score_s, beats, np.arange(len(beats), dtype=np.float64))
    before = (score_s - beats[0]) / (beats[1] - beats[0])
    return np.where(score_s < beats[0], before, index)
