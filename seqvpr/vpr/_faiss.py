"""Lazy import of faiss with an error that names the extra to install."""

from __future__ import annotations

from types import ModuleType

__all__ = ["import_faiss"]


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
