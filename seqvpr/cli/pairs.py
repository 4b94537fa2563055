"""``seqvpr pairs``: build reference/query sequence pairs from prepared traverses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from seqvpr.cli.argtypes import fraction

NAME = "pairs"
HELP = "build reference/query sequence pairs (25 frames 5 m apart / 10 frames at ~1 Hz) per split and condition"
DESCRIPTION = """\
Build the sequence-pair dataset of the DecDTW paper (appendix A.5) from prepared
traverses (ROOT/<name>/traverse.csv): reference sequences of 25 frames 5 m apart,
starting every 20 m (train) or 12 m (val, test); query sequences of 10 frames at about
1 Hz from other traverses, inside the reference's span; ground-truth warp by projecting
each query position onto the reference polyline; pairs that stray over 5 m, go
backwards, stand still, face another way or span a reference time gap are dropped.

Splits come from --split-file (YAML, see docs/data.md) or, by default, from the route
of one reference traverse: its first --train-fraction is train/val, the rest test.
Writes OUT/<split>_<condition>.csv (schema in docs/data.md) and OUT/summary.json as
one set (files of an earlier run do not survive). A rerun with other options stops
unless --overwrite is given.
"""


@dataclass(frozen=True)
class PairsOptions:
    """Options of ``seqvpr pairs`` (``config/pairs.yaml`` documents every key)."""

    split_file: str | None = None
    reference: str | None = None
    train_fraction: float = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="directory of prepared traverses (<name>/traverse.csv)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default=None,
                        help="options from a YAML file (see config/pairs.yaml); flags given win")
    parser.add_argument("--split-file", default=None, help="YAML split file (default: geographic split)")
    parser.add_argument(
        "--reference", default=None, help="reference traverse of the geographic split (default: first by name)"
    )
    parser.add_argument(
        "--train-fraction", type=fraction, default=None, help="share of the route for train/val (default 0.7)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of jitter and sampling (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT if it holds pairs built with other options")


def run(args: argparse.Namespace) -> int:
    from seqvpr.config import options_config
    from seqvpr.data.pair_files import make_pairs

    options = options_config(PairsOptions, args.config, {
        "split_file": args.split_file, "reference": args.reference,
        "train_fraction": args.train_fraction, "seed": args.seed,
    })
    summary = make_pairs(
        args.root, args.out, split_file=options.split_file, reference=options.reference,
        train_fraction=options.train_fraction, seed=options.seed, progress=True, overwrite=args.overwrite,
    )
    for name, split in summary["splits"].items():
        conditions = ", ".join(f"{c} {v['pairs']}" for c, v in split["by_condition"].items()) or "none"
        dropped = ", ".join(f"{k} {v}" for k, v in split["dropped"].items() if v) or "none"
        print(f"{name}: {split['pairs']} pairs ({conditions}) from {split['reference_sequences']} "
              f"reference sequences; dropped: {dropped}")
    print(f"wrote {args.out}/summary.json")
    return 0
