"""Small file helpers shared by every writer in seqvpr.

- :func:`atomic_path`: write a file under a temporary name, then rename it into place.
- :func:`claim_output_dir`: the one rule for every command that writes a folder: it
  records its options there; the same options resume, different options stop with a
  message that names the differing option (or rebuild with ``overwrite=True``).
- :func:`read_npz`: every array of an ``.npz`` file (no pickles); a missing, empty,
  truncated or corrupt file is a :class:`~seqvpr.errors.SeqvprError` naming it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seqvpr.errors import OutputConflictError, SeqvprError

__all__ = ["OPTIONS_FILE", "atomic_path", "claim_output_dir", "read_npz"]

OPTIONS_FILE = "seqvpr-options.yaml"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success renames it onto ``path``.

    A reader never sees a half-written file, and an interrupted write leaves any previous
    file intact. On error the temporary file is removed. The file gets the permissions of
    an ordinary new file (0666 less the user's umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _plain(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as YAML round-trips them, so that a comparison sees what the file holds."""
    def simple(value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return str(Path(value).resolve())
        if isinstance(value, tuple | list):
            return [simple(item) for item in value]
        if isinstance(value, Mapping):
            return {str(key): simple(item) for key, item in value.items()}
        return value

    return yaml.safe_load(yaml.safe_dump({str(key): simple(value) for key, value in options.items()}))


def _flat(options: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys (``gdtw.lam``), for naming what differs."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def claim_output_dir(
    path: str | os.PathLike,
    options: Mapping[str, Any],
    *,
    overwrite: bool = False,
    command: str = "seqvpr",
) -> bool:
    """Makes ``path`` the output folder of a run with ``options``; says whether it resumes.

    - ``path`` does not exist, or is an empty folder: it is created and the options are
      written to ``path/seqvpr-options.yaml``. Returns False.
    - ``path`` holds an options file with the same options: the run resumes. Returns True.
    - ``path`` holds an options file with other options: :class:`OutputConflictError`
      naming each differing option (nested options by their dotted path, e.g.
      ``gdtw.lam``), unless ``overwrite``, which empties the folder first.
    - ``path`` is a file, or a non-empty folder that no seqvpr command wrote: an error,
      also with ``overwrite`` (seqvpr never deletes a folder it did not make).

    Call it after every option has been validated, so that a failed start leaves nothing
    behind that would block the corrected command.

    Args:
        path: the output folder.
        options: what determines the folder's contents (paths, sizes, seeds...); plain
            YAML-able values, ``Path`` values are compared as absolute paths.
        overwrite: rebuild a folder whose recorded options differ.
        command: the command's name, for messages.
    """
    path = Path(path)
    wanted = _plain(options)
    record = path / OPTIONS_FILE
    if path.exists() and not path.is_dir():
        raise SeqvprError(f"{command}: output {path} exists and is not a folder")
    if record.is_file():
        try:
            previous = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise SeqvprError(f"{command}: {record} is not valid YAML ({error})") from error
        if previous == wanted:
            return True
        if not overwrite:
            before, after = _flat(previous), _flat(wanted)
            changed = [
                f"{key} (was {before.get(key, '<unset>')!r}, now {after.get(key, '<unset>')!r})"
                for key in sorted(set(before) | set(after))
                if before.get(key) != after.get(key)
            ]
            raise OutputConflictError(
                f"{command}: {path} holds the output of a run with other options: "
                + "; ".join(changed)
                + ". Pass --overwrite to rebuild it, or choose another output folder."
            )
        shutil.rmtree(path)
    elif path.is_dir() and any(path.iterdir()):
        raise SeqvprError(
            f"{command}: output folder {path} is not empty and was not written by seqvpr "
            f"(no {OPTIONS_FILE}); choose an empty or new folder"
        )
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(record) as temporary:
        temporary.write_text(yaml.safe_dump(wanted, sort_keys=True), encoding="utf-8")
    return False


def read_npz(path: str | os.PathLike, what: str = "an .npz file") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read whole (``allow_pickle=False``).

    Args:
        path: the file.
        what: what the file should be, for messages (e.g. ``"a descriptors file"``).

    Raises:
        SeqvprError: the file is missing, empty, truncated, corrupt or holds pickled
            objects; names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"{path}: no such file (expected {what})")
    if path.stat().st_size == 0:
        raise SeqvprError(f"{path}: empty file (expected {what})")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise SeqvprError(f"{path}: a single .npy array, not {what}")
        with loaded as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        if isinstance(error, SeqvprError):
            raise
        reason = " ".join(str(error).split()) or type(error).__name__
        raise SeqvprError(f"{path}: not a readable .npz file, truncated or corrupt? ({reason}); expected {what}") from None
