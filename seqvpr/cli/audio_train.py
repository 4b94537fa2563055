"""``seqvpr audio-train``: learn audio features for alignment (GRU) with DecDTW or a baseline loss."""

from __future__ import annotations

import argparse
from pathlib import Path

from seqvpr.cli.argtypes import positive_float, positive_int

NAME = "audio-train"
HELP = "train a GRU on audio features for score alignment (DecDTW TimeErr loss or a baseline)"
DESCRIPTION = """\
Train the paper's learned audio features (§7.1, appendix A.4) on a data set from
`seqvpr audio-data build`: a one-layer bidirectional GRU (128-d, L2-normalised) on top of
CQT, chroma or melspec features, shared by score and performance.

Losses: decdtw (TimeErr of the DecDTW warp, the paper's method), soft-dtw, along-gt,
dilate (alpha 0, gamma 0.1, Omega = absolute alignment error). Adam 1e-4, batch 5,
20 epochs; lambda 0.1 / 0.7 / 0.9 for cqt / chroma / melspec. The model with the lowest
validation TimeErr (GDTW alignment for decdtw, DTW for the others) is kept as OUT/best.pt.

Writes OUT/: best.pt, last.pt, metrics.csv, curves.png, config.yaml, command.txt. A run
killed at any moment resumes with `seqvpr audio-train --resume OUT` (or the same command).
Options come from --config FILE (see config/audio_train.yaml) and the flags, which win.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="folder written by `seqvpr audio-data build`")
    parser.add_argument("--out", type=Path, help="run folder")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN", help="resume the run in RUN")
    parser.add_argument("--config", type=Path, default=None, help="options from a YAML file; flags win")
    parser.add_argument("--features", choices=("cqt", "chroma", "melspec"), default=None, help="default cqt")
    parser.add_argument("--loss", choices=("decdtw", "soft-dtw", "along-gt", "dilate"), default=None,
                        help="default decdtw")
    parser.add_argument("--lam", type=positive_float, default=None, help="GDTW lambda (default: the paper's)")
    parser.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate (default 1e-4)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="epochs (default 20)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="slices per step (default 5)")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    parser.add_argument("--val-limit", type=positive_int, default=None, help="validate on the first N val slices")
    parser.add_argument("--overwrite", action="store_true", help="rebuild OUT if it holds a run with other options")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace):
    from seqvpr.config import config_from_dict, config_to_dict, load_yaml
    from seqvpr.train.audio import AudioTrainConfig

    values = config_to_dict(AudioTrainConfig())
    if args.config is not None:
        values = config_to_dict(config_from_dict(AudioTrainConfig, load_yaml(args.config) or {}, str(args.config)))
    flags = {"features": args.features, "loss": args.loss, "lam": args.lam, "lr": args.lr, "val_limit": args.val_limit}
    values.update({key: value for key, value in flags.items() if value is not None})
    loop = {"epochs": args.epochs, "batch_size": args.batch_size, "max_steps": args.max_steps, "seed": args.seed}
    values["loop"].update({key: value for key, value in loop.items() if value is not None})
    return config_from_dict(AudioTrainConfig, values, "audio-train options")


def run(args: argparse.Namespace) -> int:
    from seqvpr.config import config_from_dict
    from seqvpr.errors import SeqvprError
    from seqvpr.train.audio import AudioTrainConfig, audio_train
    from seqvpr.train.run import read_run_options

    if args.resume is not None:
        options = read_run_options(args.resume, NAME)
        config = config_from_dict(AudioTrainConfig, options["config"], f"{args.resume}: recorded config")
        data, out = options["data"], args.resume
    else:
        missing = [f"--{name}" for name in ("data", "out") if getattr(args, name) is None]
        if missing:
            raise SeqvprError(f"missing {', '.join(missing)} (or --resume RUN)")
        config, data, out = _config(args), args.data, args.out
    result = audio_train(data, out, config, overwrite=args.overwrite, command_line=args.command_line,
                         progress=not args.no_progress)
    print(f"{result.steps} steps; best val TimeErr {result.best_metric:.1f} ms at step {result.best_step}; "
          f"run folder {result.run}")
    return 0
