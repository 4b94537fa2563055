"""``seqvpr evaluate``: localization accuracy of encoders on sequence pairs."""

from __future__ import annotations

import argparse
from pathlib import Path

from seqvpr.cli.argtypes import GRID_SIZE_LIMIT, grid_size, positive_int

NAME = "evaluate"
HELP = "accuracy at 2/3/5/10 m of Base (D), Base (G), Indep (and fine-tuned models) on pairs CSVs"
DESCRIPTION = """\
Evaluate sequence localization on reference/query pairs (written by `seqvpr pairs`).

Every pair's frames are encoded with each model (descriptors are cached under
<out>/descriptors/<model>/, so a second run does not re-encode), aligned with classic
subsequence DTW (D), subsequence GDTW (G) and independent nearest-neighbour retrieval
(Indep), and the predicted positions are compared with the query positions projected onto
the reference. Writes to --out:

  accuracy_max_error.md, accuracy_mean_error.md   tables like the paper's Table 2
  accuracy.csv, results.json                      every threshold (1-20 m), per condition
  per_sequence.csv                                max and mean error of every sequence
  error_cdf_max.png, error_cdf_mean.png           error CDFs per method and condition
  maps/*.png                                      example sequences: truth vs predictions
  evaluation.yaml, evaluate.log                   resolved options and the command line

Models: --model NAME=CHECKPOINT (repeatable; the first is the base model). A checkpoint is
a seqvpr checkpoint or a published NetVLAD checkpoint (see docs/encoder.md). Instead of a
checkpoint, NAME=FOLDER uses precomputed descriptors: FOLDER/<traverse>.npz files from
`seqvpr extract` (one per traverse folder), nothing is encoded.

Options come from --config FILE (YAML, see config/evaluate.yaml) and the flags, which win.
They are recorded in OUT/seqvpr-options.yaml: a rerun with other inputs or options stops
naming them; --overwrite rebuilds OUT, keeping its descriptor cache (an entry is reused
only for the same encoder, traverse folder and image content).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", type=Path, nargs="+", help="pairs CSV file(s)")
    parser.add_argument("--traverses", type=Path, required=True, help="folder of the prepared traverses")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=CHECKPOINT",
                        help="encoder checkpoint or folder of descriptors files, repeatable; "
                        "the first is the base model")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--config", type=Path, default=None,
                        help="options from a YAML file (see config/evaluate.yaml); flags win")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help="alignment methods: gdtw, dtw, independent (default all)")
    parser.add_argument("--lam", type=float, default=None, help="GDTW regularisation weight (default 0.1)")
    parser.add_argument("--grid-size", type=grid_size, default=None,
                        help=f"GDTW candidates per knot, 2..{GRID_SIZE_LIMIT} (default 50)")
    parser.add_argument("--device", default=None, help="torch device: cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--batch-images", type=positive_int, default=None, help="images per encoder batch (default 16)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild OUT if it holds an evaluation with other inputs or options "
                        "(its descriptor cache is kept)")


def model_specs(specs: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` options as name -> path (a bare PATH: ``base`` first, then the file stem)."""
    from seqvpr.errors import SeqvprError

    models: dict[str, Path] = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        name = name or ("base" if not models else Path(path).stem)
        if name in models:
            raise SeqvprError(f"--model {spec}: the name {name!r} is used twice")
        models[name] = Path(path)
    return models


def run(args: argparse.Namespace) -> int:
    from seqvpr.config import options_config
    from seqvpr.evaluation import EvaluationConfig, evaluate

    config = options_config(EvaluationConfig, args.config, {
        "methods": args.methods, "device": args.device, "batch_images": args.batch_images,
        "gdtw": {"lam": args.lam, "grid_size": args.grid_size},
    })
    out = evaluate(config, args.pairs, args.traverses, model_specs(args.model), args.out,
                   progress=not args.no_progress, command_line=args.command_line, overwrite=args.overwrite)
    print((out / "accuracy_max_error.md").read_text(encoding="utf-8"))
    print(f"results in {args.out}/")
    return 0
