"""Audio-to-score alignment on the shared alignment core (paper §7.1, appendix A.4).

- :class:`Alignment`: a piecewise-linear map from score seconds to performance seconds.
- :func:`time_errors`, :func:`time_err_loss`: TimeErr / TimeDev (Thickstun et al. 2020),
  integrated exactly.

Submodules (those marked * import the ``audio`` extra - librosa, music21, pretty_midi,
fluidsynth, soundfile, synctoolbox - inside their functions):

- :mod:`~seqvpr.audio.score` *: scores (MIDI, MusicXML, kern, ABC, the music21 corpus) as MIDI;
- :mod:`~seqvpr.audio.tempo`, :mod:`~seqvpr.audio.performance` *: expressive tempo maps
  with exact truth, and the performer (asynchrony, dynamics, pedal);
- :mod:`~seqvpr.audio.synthesis` *: fluidsynth / sine synthesis, reverb and noise;
- :mod:`~seqvpr.audio.features` *: CQT, log-chroma, log-mel frames;
- :mod:`~seqvpr.audio.dataset`, :mod:`~seqvpr.audio.build` *, :mod:`~seqvpr.audio.slices`:
  the data set (``seqvpr audio-data build``) and its slices as :class:`~seqvpr.align.Signal`
  batches;
- :mod:`~seqvpr.audio.model`: the bidirectional GRU; :mod:`~seqvpr.audio.methods`: DTW and
  GDTW slice alignments;
- :mod:`~seqvpr.audio.piece` *: whole-piece alignment (``seqvpr audio align``);
- :mod:`~seqvpr.audio.peer` *: synctoolbox's MrMsDTW, the peer method;
- :mod:`~seqvpr.audio.plots` *: piano rolls and alignment plots (matplotlib).
"""

from seqvpr.audio.alignment import Alignment
from seqvpr.audio.metrics import TimeErrors, error_integrals, time_err_loss, time_errors

__all__ = ["Alignment", "TimeErrors", "error_integrals", "time_err_loss", "time_errors"]
