"""Audio-to-score alignment on the shared alignment core (paper §7.1, appendix A.4).

- :class:`Alignment`: a piecewise-linear map from score seconds to performance seconds.
- :func:`time_errors`, :func:`time_err_loss`: TimeErr / TimeDev (Thickstun et al. 2020),
  integrated exactly.

The submodules that need the ``audio`` extra (librosa, music21, pretty_midi, fluidsynth,
synctoolbox) import it inside their functions: :mod:`seqvpr.audio.features`,
:mod:`seqvpr.audio.score`, :mod:`seqvpr.audio.synthesis`, :mod:`seqvpr.audio.dataset`,
:mod:`seqvpr.audio.piece`, :mod:`seqvpr.audio.peer`.
"""

from seqvpr.audio.alignment import Alignment
from seqvpr.audio.metrics import TimeErrors, error_integrals, time_err_loss, time_errors

__all__ = ["Alignment", "TimeErrors", "error_integrals", "time_err_loss", "time_errors"]
