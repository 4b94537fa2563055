"""Lazy import of faiss with an error that names the extra to install."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

__all__ = ["import_faiss", "faiss_threads"]


def import_faiss() -> ModuleType:
    """Import and return :mod:`faiss`, or raise ImportError saying how to install it."""
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - the CI install has faiss
        raise ImportError(
            "seqvpr.vpr needs faiss for k-means and retrieval: install it with "
            "`pip install seqvpr[cpu]` (faiss-cpu) or `pip install seqvpr[gpu]` (faiss-gpu)"
        ) from error
    return faiss


@contextlib.contextmanager
def faiss_threads(count: int) -> Iterator[None]:
    """faiss's OpenMP thread count set to ``count`` inside the block and restored after it.

    (A flat index scanned for one query is faster on one thread than handed out to several:
    ``tools/bench/stream.py``, the neighbour search rows.)
    """
    faiss = import_faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
