"""Argument types for numeric options, checked when the command line is parsed.

A bad value (``--batch-size 0``, ``--length-m nan``) stops the command before anything is
created, with argparse's one-line usage error (exit status 2) naming the option and the
value. Use them as ``parser.add_argument("--width", type=positive_int, ...)``.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "positive_float", "non_negative_int", "fraction", "grid_size", "GRID_SIZE_LIMIT"]

# GDTW keeps one int32 back-pointer per knot and grid candidate for every sequence it
# aligns (plus a few float64 rows per candidate): 1e5 candidates is 0.4 MB per knot.
GRID_SIZE_LIMIT = 100_000
_BYTES_PER_KNOT_AND_CANDIDATE = 4


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text!r}")
    return value


def grid_size(text: str) -> int:
    """A GDTW grid size: an integer in [2, GRID_SIZE_LIMIT] (a memory budget)."""
    value = _number(text, int)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {text!r}")
    if value > GRID_SIZE_LIMIT:
        need = value * _BYTES_PER_KNOT_AND_CANDIDATE / 2**20
        limit = GRID_SIZE_LIMIT * _BYTES_PER_KNOT_AND_CANDIDATE / 2**20
        raise argparse.ArgumentTypeError(
            f"{text} candidates need {need:,.0f} MiB per knot of every aligned sequence; the memory "
            f"budget is {limit:.1f} MiB per knot, i.e. at most {GRID_SIZE_LIMIT} candidates"
        )
    return value
