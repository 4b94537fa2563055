"""``seqvpr train-base``: single-image NetVLAD training with hard negatives (the base network)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train-base"
HELP = "train an encoder on single images: triplet loss, 10 hard negatives mined with faiss"
DESCRIPTION = """\
Train the base NetVLAD encoder on single images (the DecDTW paper's base network, NetVLAD's
recipe): triplet margin loss (margin 0.1) of each query against its closest positive
(database frame within 10 m) and its 10 hardest negatives (beyond 25 m), mined with faiss
from a random pool; Adam lr 1e-5, batch 4 queries.

Images come from prepared traverses (ROOT/<name>/traverse.csv), split along the route like
`seqvpr pairs`: the reference traverse's frames in the train/val region are the database,
the other traverses' frames there are the training and validation queries; the test region
is never read. Validation: recall@1/5/10 at 25 m; best.pt maximises recall@5.

Writes OUT/ like `seqvpr finetune` (best.pt, last.pt, metrics.csv, curves.png, config.yaml,
command.txt); resumable with --resume OUT; multi-GPU with torchrun (see docs/training.md).
Options come from --config FILE (see config/train_base.yaml) and the flags, which win.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--traverses", type=Path, help="folder of prepared traverses")
    parser.add_argument("--model", type=Path, help="starting encoder checkpoint")
    parser.add_argument("--out", type=Path, help="run folder")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN", help="resume the run in folder RUN")
    parser.add_argument("--config", type=Path, default=None, help="options from a YAML file; flags win")
    parser.add_argument("--trainable", default=None, metavar="LAYER", help="first trainable layer (default conv5_1)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-5)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 10)")
    parser.add_argument("--batch-size", type=int, default=None, help="queries per step (default 4)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu (default) or cuda")
    parser.add_argument("--overwrite", action="store_true", help="rebuild OUT if it holds a run with other options")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from seqvpr.config import config_from_dict, options_config
    from seqvpr.errors import SeqvprError
    from seqvpr.train.run import read_run_options
    from seqvpr.train.train_base import TrainBaseConfig, train_base

    if args.resume is not None:
        options = read_run_options(args.resume, NAME)
        config = config_from_dict(TrainBaseConfig, options["config"], f"{args.resume}: recorded config")
        traverses, model, out = options["traverses"], options["base_model"], args.resume
    else:
        missing = [f"--{name}" for name in ("traverses", "model", "out") if getattr(args, name) is None]
        if missing:
            raise SeqvprError(f"missing {', '.join(missing)} (or --resume RUN)")
        config = options_config(TrainBaseConfig, args.config, {
            "trainable_from": args.trainable, "lr": args.lr, "device": args.device,
            "loop": {"epochs": args.epochs, "batch_size": args.batch_size, "max_steps": args.max_steps,
                     "seed": args.seed},
        })
        traverses, model, out = args.traverses, args.model, args.out
    result = train_base(traverses, model, out, config, overwrite=args.overwrite, command_line=args.command_line,
                        progress=not args.no_progress)
    best = result.metrics and max(result.metrics, key=lambda row: row["val_recall@5"])
    if result.main_process and best:
        print(f"{result.steps} steps; best val recall@1/5/10 at 25 m: {best['val_recall@1']:.3f}/"
              f"{best['val_recall@5']:.3f}/{best['val_recall@10']:.3f} (step {result.best_step}); "
              f"run folder {result.run}")
    return 0
