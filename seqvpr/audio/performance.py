"""A score played by a simulated performer: tempo map, asynchrony, dynamics, sustain.

Given the score as MIDI and a tempo map phi (score seconds -> performance seconds):

- every note starts at phi(onset) plus an onset asynchrony: a fixed lead or lag per voice
  (MIDI instrument) and a small per-note jitter, together within +- ``asynchrony_s``;
- it ends at phi(offset) (never earlier than ``min_note_s`` after its start);
- velocities follow a smooth random dynamics curve with per-note jitter;
- the sustain pedal (MIDI CC 64) goes down just after each pedal point (every
  ``pedal_every_s`` score seconds) and up just before the next one;
- every voice is played with the performance's MIDI program (its timbre).

The asynchrony is performance noise around the tempo map: the ground truth stays phi.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from seqvpr.audio.alignment import Alignment
from seqvpr.audio.score import score_end

__all__ = ["PerformanceConfig", "perform", "with_program"]


@dataclass(frozen=True)
class PerformanceConfig:
    """Options of :func:`perform`.

    Attributes:
        asynchrony_s: largest onset deviation from the tempo map, seconds (0.02 = +-20 ms).
        velocity: range of the dynamics curve (min, max), MIDI velocity.
        velocity_jitter: standard deviation of per-note velocity noise.
        dynamics_period_s: period range of the dynamics curve, score seconds (min, max).
        pedal_every_s: score seconds between sustain-pedal changes; 0 = no pedal.
        min_note_s: shortest performed note, seconds.
    """

    asynchrony_s: float = 0.02
    velocity: tuple[int, int] = (45, 110)
    velocity_jitter: float = 6.0
    dynamics_period_s: tuple[float, float] = (6.0, 20.0)
    pedal_every_s: float = 2.0
    min_note_s: float = 0.03

    def __post_init__(self) -> None:
        if self.asynchrony_s < 0:
            raise ValueError(f"asynchrony_s must be >= 0, got {self.asynchrony_s}")
        if not 1 <= self.velocity[0] <= self.velocity[1] <= 127:
            raise ValueError(f"velocity must be (min, max) within 1..127, got {self.velocity}")
        if self.pedal_every_s < 0:
            raise ValueError(f"pedal_every_s must be >= 0, got {self.pedal_every_s}")


def perform(score, tempo_map: Alignment, rng: np.random.Generator, program: int = 0,
            config: PerformanceConfig = PerformanceConfig()):
    """Plays ``score`` (a :class:`pretty_midi.PrettyMIDI`) along ``tempo_map``.

    Args:
        score: the score as MIDI (not modified).
        tempo_map: score seconds -> performance seconds.
        rng: random generator.
        program: General MIDI program of every voice (0 = acoustic grand piano).
        config: performance options.

    Returns:
        The performance as a new :class:`pretty_midi.PrettyMIDI`.
    """
    import pretty_midi

    performance = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    low, high = config.velocity
    period = rng.uniform(*config.dynamics_period_s)
    phase = rng.uniform(0, 2 * np.pi)
    end_s = score_end(score)
    pedal_points = np.arange(0.0, end_s, config.pedal_every_s) if config.pedal_every_s else np.array([])
    pedal_times = tempo_map(pedal_points)
    for voice in score.instruments:
        played = pretty_midi.Instrument(program=program, name=voice.name)
        lead = rng.uniform(-0.75, 0.75) * config.asynchrony_s
        for note in voice.notes:
            jitter = rng.normal(0.0, 0.25 * config.asynchrony_s) if config.asynchrony_s else 0.0
            start = float(tempo_map(note.start)) + float(np.clip(lead + jitter, -config.asynchrony_s,
                                                                 config.asynchrony_s))
            start = max(start, 0.0)
            end = max(float(tempo_map(note.end)), start + config.min_note_s)
            loudness = 0.5 + 0.5 * np.sin(2 * np.pi * note.start / period + phase)
            velocity = low + (high - low) * loudness + rng.normal(0.0, config.velocity_jitter)
            played.notes.append(pretty_midi.Note(int(np.clip(round(velocity), 1, 127)), note.pitch, start, end))
        for index, down in enumerate(pedal_times):
            played.control_changes.append(pretty_midi.ControlChange(64, 127, float(down) + 0.05))
            up = pedal_times[index + 1] - 0.03 if index + 1 < len(pedal_times) else tempo_map(end_s)
            played.control_changes.append(pretty_midi.ControlChange(64, 0, float(max(up, down + 0.06))))
        performance.instruments.append(played)
    return performance


def with_program(midi, program: int, velocity: int | None = None, merge: bool = False):
    """A copy of ``midi`` with every voice on one MIDI program (and optionally one velocity).

    With ``merge`` all voices become one instrument, which fluidsynth renders in one pass
    instead of one pass per voice (same sound, except that a unison of two voices is
    released when the first of them ends).
    """
    midi = copy.deepcopy(midi)
    for instrument in midi.instruments:
        instrument.program = program
        if velocity is not None:
            for note in instrument.notes:
                note.velocity = velocity
    if merge and len(midi.instruments) > 1:
        first = midi.instruments[0]
        for instrument in midi.instruments[1:]:
            first.notes += instrument.notes
        first.notes.sort(key=lambda note: (note.start, note.pitch))
        midi.instruments = [first]
    return midi
