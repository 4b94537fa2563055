"""``seqvpr audio-eval``: the paper's Table 1 on the test slices of an audio data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from seqvpr.cli.argtypes import non_negative_int, positive_int

NAME = "audio-eval"
HELP = "TimeErr/TimeDev table (paper Table 1) of base features, trained audio models and synctoolbox"
DESCRIPTION = """\
Evaluate audio-to-score alignment on the test slices of a `seqvpr audio-data build` folder.

Rows: base features (CQT, chroma, melspec). Columns: Base (D) and Base (G) (base features
with DTW / GDTW), one column per trained model given with --models (Soft-DTW, Along GT,
DILATE with DTW, DecDTW with GDTW, as in the paper), this package's whole-piece aligner,
and synctoolbox (MrMsDTW on chroma + DLNCO, whole recordings). Cells are the mean
TimeErr / TimeDev in ms over the test slices, integrated exactly.

Writes OUT/table.md, table.csv, per_slice.csv, plots/*.png (Fig. 4a-style piano rolls) and
OUT/alignments/ (whole-piece alignments, reused by a rerun or shared with --cache).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder written by `seqvpr audio-data build`")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--models", type=Path, nargs="*", default=[], help="best.pt files of `seqvpr audio-train`")
    parser.add_argument("--features", nargs="+", choices=("cqt", "chroma", "melspec"), default=None,
                        help="feature rows (default all three)")
    parser.add_argument("--no-peer", action="store_true", help="skip the synctoolbox column (slow)")
    parser.add_argument("--no-piece", action="store_true", help="skip the whole-piece aligner column")
    parser.add_argument("--plots", type=non_negative_int, default=2, help="piano-roll plots per feature (default 2)")
    parser.add_argument("--limit", type=positive_int, default=None, help="evaluate the first N test slices")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder of whole-piece alignments to reuse (default OUT/alignments)")
    parser.add_argument("--overwrite", action="store_true", help="rebuild OUT if it holds other results")


def run(args: argparse.Namespace) -> int:
    from seqvpr.evaluation.audio import AudioEvalConfig, evaluate_audio, table_markdown

    config = AudioEvalConfig(
        features=tuple(args.features) if args.features else AudioEvalConfig().features,
        piece=not args.no_piece, peer=not args.no_peer, plots=args.plots, limit=args.limit,
    )
    scores = evaluate_audio(args.data, args.out, args.models, config, overwrite=args.overwrite, cache=args.cache)
    print(table_markdown(scores))
    return 0
