"""Splits, the pairs CSV schema, and the ``seqvpr pairs`` pipeline step.

A *split* names its reference traverses and query traverses and, optionally, the
region it covers. Two ways to get splits:

- a YAML split file (``splits:`` mapping split name to ``references``, optional
  ``queries`` (default: every other traverse), optional ``region`` as UTM bounds
  ``{min_easting, max_easting, min_northing, max_northing}`` and optional pair
  options overriding the split's preset, e.g. ``queries_per_reference: 10``);
- a geographic split along one reference traverse (:func:`route_splits`): the first
  ``train`` fraction of its path is train and val (train and val differ by traverse,
  as in the paper), the rest is test; every other traverse's frames belong to the
  split of their nearest reference frame.

Traverses restricted to a region fall apart into contiguous runs of frames; pairs are
built within runs. Output: ``<out>/<split>_<query condition>.csv`` per split and query
condition (schema in ``docs/data.md``) and ``<out>/summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from seqvpr.config import config_from_dict, load_yaml
from seqvpr.data.pairs import PRESETS, PairConfig, SequencePair, build_pairs
from seqvpr.data.tables import atomic_write_text, read_table, write_table
from seqvpr.data.traverse import Traverse, find_traverses
from seqvpr.errors import SeqvprError
from seqvpr.io import OPTIONS_FILE, claim_output_dir

__all__ = [
    "Split",
    "read_split_file",
    "route_splits",
    "pair_columns",
    "write_pairs",
    "read_pairs",
    "make_pairs",
]

LOGGER = logging.getLogger(__name__)

_REGION_KEYS = ("min_easting", "max_easting", "min_northing", "max_northing")


@dataclass(frozen=True)
class Split:
    """One split of the pairs dataset.

    Attributes:
        name: ``train``, ``val``, ``test`` or any name.
        references: names of the reference traverses.
        queries: names of the query traverses.
        config: pair builder parameters.
        masks: per traverse name, a boolean (N,) mask of the frames in this split's
            region; traverses absent from the mapping are used whole.
    """

    name: str
    references: tuple[str, ...]
    queries: tuple[str, ...]
    config: PairConfig
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def read_split_file(path: str | os.PathLike, traverses: list[Traverse]) -> list[Split]:
    """Read a YAML split file (format in the module docstring).

    Raises:
        SeqvprError: not valid YAML, unknown keys, values of the wrong type, unknown
            traverse names, bad regions; naming the file.
    """
    path = Path(path)
    document = load_yaml(path)
    if not isinstance(document, dict) or set(document) != {"splits"} or not isinstance(document["splits"], dict):
        raise SeqvprError(f"{path}: expected one top-level key 'splits' mapping split names to settings")
    names = [traverse.name for traverse in traverses]
    splits = []
    for split_name, settings in document["splits"].items():
        where = f"{path}: splits.{split_name}"
        if not isinstance(settings, dict) or "references" not in settings:
            raise SeqvprError(f"{where}: expected a mapping with at least 'references'")
        settings = dict(settings)
        references = settings.pop("references")
        queries = settings.pop("queries", [n for n in names if n not in references])
        if not isinstance(references, list) or not isinstance(queries, list):
            raise SeqvprError(f"{where}: references and queries must be lists of traverse names")
        references, queries = tuple(map(str, references)), tuple(map(str, queries))
        for name in references + queries:
            if name not in names:
                raise SeqvprError(f"{where}: unknown traverse {name!r}; found {', '.join(names)}")
        masks = {}
        region = settings.pop("region", None)
        if region is not None:
            if not isinstance(region, dict) or set(region) != set(_REGION_KEYS):
                raise SeqvprError(f"{where}.region: expected exactly the keys {', '.join(_REGION_KEYS)}")
            try:
                bounds = {key: float(region[key]) for key in _REGION_KEYS}
            except (TypeError, ValueError):
                raise SeqvprError(f"{where}.region: bounds must be numbers (UTM metres), got {region}") from None
            for traverse in traverses:
                easting, northing = traverse.positions[:, 0], traverse.positions[:, 1]
                masks[traverse.name] = (
                    (easting >= bounds["min_easting"]) & (easting <= bounds["max_easting"])
                    & (northing >= bounds["min_northing"]) & (northing <= bounds["max_northing"])
                )
        preset = PRESETS.get(split_name, PRESETS["test"])
        overrides = {**asdict(preset), **settings}
        config = config_from_dict(PairConfig, overrides, where)
        splits.append(Split(str(split_name), references, queries, config, masks))
    return splits


def route_splits(
    traverses: list[Traverse], reference: str | None = None, train_fraction: float = 0.7,
    val_queries: int = 1,
) -> list[Split]:
    """Split geographically along one reference traverse.

    The reference's path up to ``train_fraction`` of its length is the train/val
    region, the rest the test region. Query traverses: the last ``val_queries`` of
    the others (by name) are validation queries, the rest train queries; all others
    are test queries. With fewer than two other traverses there is no validation split.

    Args:
        traverses: all traverses.
        reference: the reference traverse name; default the first by name.
        train_fraction: share of the reference path in the train/val region.
        val_queries: number of query traverses held out for validation.
    """
    by_name = {traverse.name: traverse for traverse in traverses}
    reference = reference or min(by_name)
    if reference not in by_name:
        raise SeqvprError(f"reference traverse {reference!r} not found; found {', '.join(sorted(by_name))}")
    if not 0.0 < train_fraction < 1.0:
        raise SeqvprError(f"train_fraction must be in (0, 1), got {train_fraction}")
    anchor = by_name[reference]
    path_m = anchor.path_length_m
    anchor_in_train = path_m <= train_fraction * path_m[-1]
    from scipy.spatial import cKDTree

    tree = cKDTree(anchor.positions)
    masks_train, masks_test = {}, {}
    for traverse in traverses:
        if traverse.name == reference:
            in_train = anchor_in_train
        else:
            in_train = anchor_in_train[tree.query(traverse.positions)[1]]
        masks_train[traverse.name], masks_test[traverse.name] = in_train, ~in_train
    others = sorted(name for name in by_name if name != reference)
    validation = others[len(others) - val_queries:] if len(others) > val_queries else []
    training = [name for name in others if name not in validation]
    splits = [Split("train", (reference,), tuple(training), PRESETS["train"], masks_train)]
    if validation:
        splits.append(Split("val", (reference,), tuple(validation), PRESETS["val"], masks_train))
    splits.append(Split("test", (reference,), tuple(others), PRESETS["test"], masks_test))
    return splits


def _pieces(traverse: Traverse, mask: np.ndarray | None) -> list[Traverse]:
    """Contiguous runs of frames of ``traverse`` inside ``mask``."""
    if mask is None:
        return [traverse]
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    pieces = []
    for start, end in zip(starts, ends):
        keep = np.zeros(len(traverse), bool)
        keep[start:end] = True
        pieces.append(traverse.subset(keep))
    return pieces


def pair_columns(reference_length: int, query_length: int) -> list[str]:
    """Header of a pairs CSV (see ``docs/data.md``)."""
    columns = [
        "reference_traverse", "reference_condition", "query_traverse", "query_condition",
        "utm_zone", "reference_start_time_s", "query_start_time_s", "max_projection_m",
    ]
    for prefix, count in (("reference", reference_length), ("query", query_length)):
        for quantity in ("image", "time_s", "easting_m", "northing_m", "heading_rad"):
            columns += [f"{prefix}_{quantity}_{i}" for i in range(count)]
    for quantity in ("time_s", "easting_m", "northing_m"):
        columns += [f"true_{quantity}_{i}" for i in range(query_length)]
    return columns


def _pair_row(pair: SequencePair) -> list[str]:
    row = [pair.reference, pair.reference_condition, pair.query, pair.query_condition, pair.zone,
           f"{pair.reference_start_s:.6f}", f"{pair.query_start_s:.6f}", f"{pair.max_projection_m:.4f}"]
    for images, times, positions, headings in (
        (pair.reference_images, pair.reference_times_s, pair.reference_positions, pair.reference_headings_rad),
        (pair.query_images, pair.query_times_s, pair.query_positions, pair.query_headings_rad),
    ):
        row += [str(image) for image in images]
        row += [f"{value:.6f}" for value in times]
        row += [f"{value:.4f}" for value in positions[:, 0]]
        row += [f"{value:.4f}" for value in positions[:, 1]]
        row += [f"{value:.6f}" for value in headings]
    row += [f"{value:.6f}" for value in pair.true_warp_s]
    row += [f"{value:.4f}" for value in pair.true_positions[:, 0]]
    row += [f"{value:.4f}" for value in pair.true_positions[:, 1]]
    return row


def write_pairs(path: str | os.PathLike, pairs: list[SequencePair]) -> None:
    """Write pairs to a CSV atomically (all pairs must have the same lengths)."""
    if not pairs:
        raise ValueError(f"{path}: no pairs to write")
    columns = pair_columns(len(pairs[0].reference_images), len(pairs[0].query_images))
    write_table(path, columns, (_pair_row(pair) for pair in pairs))


def _count_indexed(columns: tuple[str, ...], prefix: str) -> int:
    count = 0
    while f"{prefix}_{count}" in columns:
        count += 1
    return count


def read_pairs(path: str | os.PathLike) -> list[SequencePair]:
    """Read a pairs CSV written by :func:`write_pairs`.

    Raises:
        SeqvprError: missing columns, bad cells or a sequence whose times do not
            increase, naming file, line and column.
    """
    table = read_table(path)
    reference_length = _count_indexed(table.columns, "reference_image")
    query_length = _count_indexed(table.columns, "query_image")
    if reference_length < 2 or query_length < 2:
        raise SeqvprError(f"{table.path}: not a pairs CSV (needs reference_image_0.. and query_image_0.. columns)")
    table.require(*pair_columns(reference_length, query_length))

    def block(prefix: str, count: int, kind: str) -> np.ndarray:
        if kind == "str":
            return np.stack([np.array(table.strings(f"{prefix}_{i}"), dtype=object) for i in range(count)], axis=1)
        return np.stack([table.floats(f"{prefix}_{i}") for i in range(count)], axis=1)

    data = {}
    for prefix, count in (("reference", reference_length), ("query", query_length)):
        data[prefix] = (
            block(f"{prefix}_image", count, "str"),
            block(f"{prefix}_time_s", count, "float"),
            np.stack(
                [block(f"{prefix}_easting_m", count, "float"), block(f"{prefix}_northing_m", count, "float")],
                axis=-1,
            ),
            block(f"{prefix}_heading_rad", count, "float"),
        )
    for prefix, count in (("reference", reference_length), ("query", query_length)):
        times = data[prefix][1]
        bad_rows, bad_columns = np.nonzero(np.diff(times, axis=1) <= 0)
        if bad_rows.size:
            row, column = int(bad_rows[0]), int(bad_columns[0]) + 1
            raise SeqvprError(
                f"{table.path}, line {table.line_numbers[row]}: {prefix}_time_s_{column} "
                f"{times[row, column]!r} does not follow {prefix}_time_s_{column - 1} "
                f"{times[row, column - 1]!r}; the times of a sequence must be strictly increasing"
            )
    true_warp = block("true_time_s", query_length, "float")
    true_positions = np.stack(
        [block("true_easting_m", query_length, "float"), block("true_northing_m", query_length, "float")], axis=-1
    )
    starts = {name: table.floats(name) for name in ("reference_start_time_s", "query_start_time_s", "max_projection_m")}
    text = {name: table.strings(name) for name in
            ("reference_traverse", "reference_condition", "query_traverse", "query_condition", "utm_zone")}
    pairs = []
    for i in range(len(table)):
        ref, query = data["reference"], data["query"]
        pairs.append(SequencePair(
            text["reference_traverse"][i], text["query_traverse"][i], text["reference_condition"][i],
            text["query_condition"][i], text["utm_zone"][i], float(starts["reference_start_time_s"][i]),
            float(starts["query_start_time_s"][i]), ref[0][i], ref[1][i], ref[2][i], ref[3][i],
            query[0][i], query[1][i], query[2][i], query[3][i], true_warp[i], true_positions[i],
            float(starts["max_projection_m"][i]),
        ))
    return pairs


def make_pairs(
    traverse_root: str | os.PathLike,
    out: str | os.PathLike,
    split_file: str | os.PathLike | None = None,
    reference: str | None = None,
    train_fraction: float = 0.7,
    seed: int = 0,
    progress: bool = False,
    overwrite: bool = False,
) -> dict:
    """Build and write the pairs dataset (the ``seqvpr pairs`` step).

    Every pair is built before anything is written. The CSVs and ``summary.json`` are
    then written as one set: into a temporary folder beside ``out`` that replaces it,
    so no CSV of an earlier run survives beside a summary that does not list it. The
    options are recorded in ``out`` (:func:`seqvpr.io.claim_output_dir`).

    Args:
        traverse_root: directory of prepared traverses (``<name>/traverse.csv``).
        out: output directory.
        split_file: YAML split file; default a geographic split (:func:`route_splits`).
        reference: reference traverse of the geographic split.
        train_fraction: train/val share of the route in the geographic split.
        seed: seeds jitter and sampling (same seed, same pairs).
        progress: show a progress bar per split.
        overwrite: replace an ``out`` written with other options instead of stopping.

    Returns:
        the summary also written to ``<out>/summary.json``.

    Raises:
        SeqvprError: bad traverses or split file, naming the file.
        OutputConflictError: ``out`` holds pairs built with other options, unless
            ``overwrite``.
    """
    traverses = find_traverses(traverse_root, check_images=False)
    if split_file is not None:
        splits = read_split_file(split_file, traverses)
    else:
        splits = route_splits(traverses, reference, train_fraction)
    by_name = {traverse.name: traverse for traverse in traverses}
    zones = {str(traverse.zone) for traverse in traverses}
    if len(zones) > 1:
        raise SeqvprError(f"{traverse_root}: traverses in several UTM zones ({', '.join(sorted(zones))})")
    out = Path(out)
    summary = {"seed": seed, "traverse_root": str(traverse_root), "splits": {}}
    files: dict[str, list[SequencePair]] = {}
    for split_index, split in enumerate(splits):
        rng = np.random.default_rng([seed, split_index])
        references = [piece for name in split.references for piece in _pieces(by_name[name], split.masks.get(name))]
        queries = [piece for name in split.queries for piece in _pieces(by_name[name], split.masks.get(name))]
        pairs, counts = build_pairs(references, queries, split.config, rng, split.name if progress else None)
        by_condition: dict[str, list[SequencePair]] = {}
        for pair in pairs:
            by_condition.setdefault(pair.query_condition, []).append(pair)
        entries = {}
        for condition, condition_pairs in sorted(by_condition.items()):
            name = f"{split.name}_{condition}.csv"
            files[name] = condition_pairs
            entries[condition] = {"file": name, "pairs": len(condition_pairs)}
        summary["splits"][split.name] = {
            "references": list(split.references), "queries": list(split.queries),
            "pairs": len(pairs), "by_condition": entries,
            "reference_sequences": counts.pop("reference_sequences"),
            "candidates": counts.pop("candidates"), "dropped": counts,
            "config": asdict(split.config),
        }
        LOGGER.info("split %s: %d pairs from %d reference sequences", split.name, len(pairs),
                    summary["splits"][split.name]["reference_sequences"])
    options = {"traverse_root": Path(traverse_root), "split_file": split_file and Path(split_file),
               "reference": reference, "train_fraction": train_fraction, "seed": seed}
    claim_output_dir(out, options, overwrite=overwrite, command="pairs")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
    try:
        for name, pairs in files.items():
            write_pairs(staging / name, pairs)
        atomic_write_text(staging / "summary.json", json.dumps(summary, indent=2) + "\n")
        shutil.copy2(out / OPTIONS_FILE, staging / OPTIONS_FILE)
        _replace_folder(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return summary


def _replace_folder(new: Path, out: Path) -> None:
    """Puts folder ``new`` in the place of folder ``out`` (two renames), with umask permissions."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(new, 0o777 & ~mask)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old)
