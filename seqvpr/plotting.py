"""matplotlib without a display: the one place that picks the Agg backend and writes figures.

Every plot in seqvpr draws with :func:`pyplot` and writes with :func:`save_figure`, which
writes the PNG atomically and closes the figure (long runs draw hundreds of them).
matplotlib is imported on the first call, never by ``import seqvpr``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqvpr.io import atomic_path

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path) -> Path:
    """Writes ``figure`` to ``path`` as PNG atomically, closes it and returns ``path``."""
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    pyplot().close(figure)
    return path
