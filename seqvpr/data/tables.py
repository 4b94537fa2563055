"""Reading and writing the small CSV tables of the data layer.

Every reader here parses columns by header name (extra or reordered columns are
tolerated) and reports bad input as a :class:`~seqvpr.errors.SeqvprError` that names
the file, the line and the column. A UTF-8 byte-order mark (as some spreadsheet programs
write) is accepted. Writers are atomic: they write a temporary file beside the target and
move it into place with :func:`os.replace`, so an interrupted command never leaves a
half-written table behind.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path

__all__ = ["Table", "read_table", "write_table", "atomic_write_bytes", "atomic_write_text"]


@dataclass(frozen=True)
class Table:
    """Rows of a delimited text file, kept as strings, addressed by column name.

    Attributes:
        path: the file the table was read from.
        columns: header names, in file order.
        rows: one list of cell strings per data row.
        line_numbers: the 1-based line of each data row in the file.
    """

    path: Path
    columns: tuple[str, ...]
    rows: list[list[str]]
    line_numbers: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    def has(self, column: str) -> bool:
        return column in self.columns

    def require(self, *columns: str) -> None:
        """Raise ``SeqvprError`` naming the file and the columns it lacks."""
        missing = [name for name in columns if name not in self.columns]
        if missing:
            raise SeqvprError(
                f"{self.path}: missing column(s) {', '.join(missing)}; "
                f"the header has {', '.join(self.columns) or 'no columns'}"
            )

    def strings(self, column: str) -> list[str]:
        """The cells of one column as stripped strings."""
        self.require(column)
        index = self.columns.index(column)
        return [row[index].strip() for row in self.rows]

    def floats(self, column: str) -> np.ndarray:
        """One column as float64, shape (len(self),); errors name line and column."""
        values = np.empty(len(self.rows), dtype=np.float64)
        for i, cell in enumerate(self.strings(column)):
            try:
                values[i] = float(cell)
            except ValueError:
                raise SeqvprError(
                    f"{self.path}, line {self.line_numbers[i]}: column {column!r} "
                    f"should be a number, got {cell!r}"
                ) from None
            if not np.isfinite(values[i]):
                raise SeqvprError(
                    f"{self.path}, line {self.line_numbers[i]}: column {column!r} "
                    f"is not finite ({cell!r})"
                )
        return values

    def integers(self, column: str) -> np.ndarray:
        """One column as int64, shape (len(self),); errors name line and column."""
        values = np.empty(len(self.rows), dtype=np.int64)
        for i, cell in enumerate(self.strings(column)):
            try:
                values[i] = int(cell)
            except (ValueError, OverflowError):
                raise SeqvprError(
                    f"{self.path}, line {self.line_numbers[i]}: column {column!r} "
                    f"should be an integer (at most 19 digits), got {cell!r}"
                ) from None
        return values

    def select(self, keep: np.ndarray) -> Table:
        """The rows where the boolean mask ``keep`` (shape (len(self),)) is true."""
        indices = np.flatnonzero(keep)
        return Table(
            self.path,
            self.columns,
            [self.rows[i] for i in indices],
            [self.line_numbers[i] for i in indices],
        )


def read_table(
    path: str | os.PathLike, delimiter: str = ",", columns: Sequence[str] | None = None
) -> Table:
    """Read a delimited text file with a header line (or with the given ``columns``).

    Blank lines are skipped. A row with a different number of cells from the header is
    an error naming its line.

    Args:
        path: the file.
        delimiter: the cell separator; ``None``-like whitespace splitting is obtained
            with ``delimiter=" "`` (runs of spaces count as one separator).
        columns: names for a file without a header line.

    Raises:
        SeqvprError: the file does not exist, is not UTF-8 text, is empty, or a row is
            malformed; names the file (and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            if delimiter == " ":
                lines = [(n, line.split()) for n, line in enumerate(handle, start=1)]
            else:
                lines = list(enumerate(csv.reader(handle, delimiter=delimiter), start=1))
    except UnicodeDecodeError as error:
        raise SeqvprError(f"{path}: not a UTF-8 text table ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise SeqvprError(f"{path}: not a readable CSV table ({error})") from None
    lines = [(n, cells) for n, cells in lines if cells and any(c.strip() for c in cells)]
    if columns is None:
        if not lines:
            raise SeqvprError(f"{path}: the file is empty (expected a header line)")
        header = tuple(cell.strip() for cell in lines[0][1])
        lines = lines[1:]
    else:
        header = tuple(columns)
    for line_number, cells in lines:
        if len(cells) != len(header):
            raise SeqvprError(
                f"{path}, line {line_number}: {len(cells)} cells, but the header has "
                f"{len(header)} columns"
            )
    return Table(path, header, [cells for _, cells in lines], [n for n, _ in lines])


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_table(
    path: str | os.PathLike,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    delimiter: str = ",",
) -> None:
    """Write a header line and rows to ``path`` atomically.

    Floats should be formatted by the caller when their precision matters (e.g.
    ``f"{easting:.4f}"``); other values are written with ``str``.
    """
    lines = [delimiter.join(columns)]
    for row in rows:
        lines.append(delimiter.join(str(value) for value in row))
    atomic_write_text(path, "\n".join(lines) + "\n")
