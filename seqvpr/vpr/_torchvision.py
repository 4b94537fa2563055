"""Lazy import of torchvision with an error that says how to install it."""

from __future__ import annotations

from types import ModuleType

__all__ = ["import_torchvision"]


def import_torchvision() -> ModuleType:
    """Import and return :mod:`torchvision`, or raise ImportError saying how to install it."""
    try:
        import torchvision
    except ImportError as error:  # pragma: no cover - torchvision is a core dependency
        raise ImportError(
            "the NetVLAD-VGG16 encoder needs torchvision: install it with the torch pin of "
            "the Makefile, e.g. `pip install torchvision==0.29.1`"
        ) from error
    return torchvision
