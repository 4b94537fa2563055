"""``seqvpr evaluate``: localization accuracy of encoders on sequence pairs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seqvpr.errors import SeqvprError

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
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", type=Path, nargs="+", help="pairs CSV file(s)")
    parser.add_argument("--traverses", type=Path, required=True, help="folder of the prepared traverses")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=CHECKPOINT",
                        help="encoder checkpoint or folder of descriptors files, repeatable; "
                        "the first is the base model")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--methods", nargs="+", default=["dtw", "gdtw", "independent"],
                        choices=["dtw", "gdtw", "independent"], help="alignment methods (default all)")
    parser.add_argument("--lam", type=float, default=0.1, help="GDTW regularisation weight (default 0.1)")
    parser.add_argument("--grid-size", type=int, default=50, help="GDTW candidates per knot (default 50)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--batch-images", type=int, default=16, help="images per encoder batch (default 16)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _models(specs: list[str]):
    from seqvpr.vpr.checkpoints import load_encoder

    models = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        name = name or ("base" if not models else Path(path).stem)
        if name in models:
            raise SeqvprError(f"--model {spec}: the name {name!r} is used twice")
        if Path(path).is_dir():
            models[name] = Path(path)
        elif Path(path).is_file():
            models[name] = load_encoder(path)
        else:
            raise SeqvprError(f"--model {spec}: no such checkpoint file or descriptors folder {path}")
    return models


def run_evaluation(pair_files, traverse_root: Path, models: dict, out: Path, config, progress: bool = True,
                   command_line: str = "") -> dict:
    """Evaluates, writes tables, plots and the log; returns the written paths and table text."""
    from seqvpr.config import save_config
    from seqvpr.data.pair_files import read_pairs
    from seqvpr.evaluation import evaluate, write_results
    from seqvpr.plots import plot_error_cdfs, plot_sequence_map

    out.mkdir(parents=True, exist_ok=True)
    log_handler = logging.FileHandler(out / "evaluate.log", mode="a", encoding="utf-8")
    log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root_logger = logging.getLogger()
    root_logger.addHandler(log_handler)
    previous_level = root_logger.level
    root_logger.setLevel(min(previous_level or logging.INFO, logging.INFO))
    try:
        logging.getLogger(__name__).info("command: %s", command_line or "(python API)")
        save_config(config, out / "evaluation.yaml")
        results = evaluate(pair_files, traverse_root, models, out / "descriptors", config, progress)
        metadata = {"command": command_line, "pairs": [str(p) for p in pair_files],
                    "traverses": str(traverse_root), "models": list(models)}
        written = write_results(out, results, metadata)
        for metric in ("max", "mean"):
            written[f"cdf_{metric}"] = plot_error_cdfs(results, out / f"error_cdf_{metric}.png", metric)
        first = results[0]
        examples = [r for r in results if r.model == first.model and r.method == first.method]
        step = max(1, len(examples) // max(1, config.map_examples))
        maps = []
        pairs_cache: dict[str, list] = {}
        for example in examples[::step][: config.map_examples]:
            path = next(p for p in pair_files if Path(p).name == example.pair_file)
            pairs = pairs_cache.setdefault(example.pair_file, read_pairs(path))
            same_pair = [r for r in results
                         if r.pair_file == example.pair_file and r.pair_index == example.pair_index]
            name = f"{Path(example.pair_file).stem}_{example.pair_index:05d}.png"
            maps.append(plot_sequence_map(pairs[example.pair_index], same_pair, out / "maps" / name))
        written["maps"] = maps
        logging.getLogger(__name__).info("wrote %s", ", ".join(str(v) for v in written.values()))
    finally:
        root_logger.removeHandler(log_handler)
        root_logger.setLevel(previous_level)
        log_handler.close()
    return {"written": written, "table": written["max_markdown"].read_text(encoding="utf-8"),
            "results": results}


def run(args: argparse.Namespace) -> int:
    from seqvpr.align import GDTWConfig
    from seqvpr.evaluation import EvaluationConfig

    for path in args.pairs:
        if not path.is_file():
            raise SeqvprError(f"{path}: no such pairs file")
    if not args.traverses.is_dir():
        raise SeqvprError(f"{args.traverses}: no such traverse folder")
    config = EvaluationConfig(methods=tuple(args.methods),
                              gdtw=GDTWConfig(subsequence=True, lam=args.lam, grid_size=args.grid_size),
                              batch_images=args.batch_images, device=args.device)
    models = _models(args.model)
    outcome = run_evaluation(args.pairs, args.traverses, models, args.out, config,
                             progress=not args.no_progress, command_line=args.command_line)
    print(outcome["table"])
    print(f"results in {args.out}/")
    return 0
