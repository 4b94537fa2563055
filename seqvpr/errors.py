"""Errors that a user's input causes, as opposed to bugs in seqvpr.

Code at an input boundary (a file reader, a config loader, a command's option check)
raises :class:`SeqvprError` or one of its subclasses with a message that names the file,
field, option or value at fault. The ``seqvpr`` command prints these as one line and exits
with status 2; every other exception keeps its traceback, because it is a bug.

``SeqvprError`` derives from ``ValueError`` so that library callers who already catch
``ValueError`` for bad input keep working.
"""

from __future__ import annotations

__all__ = ["SeqvprError", "ConfigError", "OutputConflictError"]


class SeqvprError(ValueError):
    """Bad input from the user: a file, field, option or value that cannot be used."""


class ConfigError(SeqvprError):
    """A configuration file or mapping with an unknown key or a value of the wrong type."""


class OutputConflictError(SeqvprError):
    """An output folder that holds the results of a run with different options."""
