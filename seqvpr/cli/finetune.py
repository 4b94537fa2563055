"""``seqvpr finetune``: sequence fine-tuning of an encoder through the alignment (DecDTW)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "finetune"
HELP = "fine-tune an encoder on sequence pairs with the DecDTW max-error loss (or a baseline loss)"
DESCRIPTION = """\
Fine-tune a NetVLAD encoder end to end on the localisation error (the DecDTW paper, §7.2).

Every training pair's frames go through one shared encoder; the loss is, by default, the
largest squared position error over the query frames, where positions are read off the
reference track at the DecDTW warp (--loss decdtw). Baselines trained the same way:
otam, along-gt, dilate, soft-dtw. Only the layers from --trainable on are trained (the
paper: conv5 + NetVLAD); the frozen layers' output is computed once per image and cached
on disk (float16). Validation runs 5 times per epoch: mean over val pairs of the
per-sequence max error of GDTW localisation; the best model is kept.

Writes OUT/: best.pt, last.pt (encoder checkpoints for `seqvpr evaluate`/`extract`),
metrics.csv, curves.png, config.yaml, command.txt. A run killed at any moment resumes
with `seqvpr finetune --resume OUT` (or the same command again).

Options come from --config FILE (YAML, see config/finetune.yaml and the CPU preset
config/finetune-cpu.yaml) and the flags, which win. Multi-GPU / multi-node:
  torchrun --nproc_per_node 4 -m seqvpr finetune ... --device cuda
(gloo on CPU, NCCL on CUDA; --batch-size is the global batch). See docs/training.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", type=Path, nargs="+", help="training pairs CSV(s) from `seqvpr pairs`")
    parser.add_argument("--val", type=Path, nargs="+", help="validation pairs CSV(s)")
    parser.add_argument("--traverses", type=Path, help="folder of the prepared traverses")
    parser.add_argument("--model", type=Path, help="base encoder checkpoint (any format `load_encoder` reads)")
    parser.add_argument("--out", type=Path, help="run folder")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN",
                        help="resume the run in folder RUN with its recorded options")
    parser.add_argument("--config", type=Path, default=None, help="options from a YAML file; flags win")
    parser.add_argument("--loss", default=None, help="decdtw (default), otam, along-gt, dilate, soft-dtw")
    parser.add_argument("--reduction", default=None, help="decdtw loss over query frames: max (default) or mean")
    parser.add_argument("--penalty", default=None, help="decdtw position error: squared (default) or huber")
    parser.add_argument("--trainable", default=None, metavar="LAYER",
                        help="first trainable layer: conv5_1 (default), any convN_M, or netvlad")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-4)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 10)")
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per step, all processes (default 8)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (budget)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu (default) or cuda")
    parser.add_argument("--no-cache", action="store_true", help="recompute the frozen layers every step")
    parser.add_argument("--cache-dir", type=Path, default=None, help="frozen-feature cache (default OUT/frozen-features)")
    parser.add_argument("--overwrite", action="store_true", help="rebuild OUT if it holds a run with other options")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace):
    from seqvpr.config import options_config
    from seqvpr.train.finetune import FinetuneConfig

    return options_config(FinetuneConfig, args.config, {
        "loss": args.loss, "reduction": args.reduction, "penalty": args.penalty, "trainable_from": args.trainable,
        "lr": args.lr, "device": args.device, "cache_dir": args.cache_dir and str(args.cache_dir),
        "frozen_cache": False if args.no_cache else None,
        "loop": {"epochs": args.epochs, "batch_size": args.batch_size, "max_steps": args.max_steps, "seed": args.seed},
    })


def run(args: argparse.Namespace) -> int:
    from seqvpr.config import config_from_dict
    from seqvpr.errors import SeqvprError
    from seqvpr.train.finetune import FinetuneConfig, finetune
    from seqvpr.train.run import read_run_options

    if args.resume is not None:
        options = read_run_options(args.resume, NAME)
        config = config_from_dict(FinetuneConfig, options["config"], f"{args.resume}: recorded config")
        inputs = {"train": options["train_pairs"], "val": options["val_pairs"],
                  "traverses": options["traverses"], "model": options["base_model"], "out": args.resume}
    else:
        missing = [f"--{name}" for name in ("train", "val", "traverses", "model", "out") if getattr(args, name) is None]
        if missing:
            raise SeqvprError(f"missing {', '.join(missing)} (or --resume RUN)")
        config = _config(args)
        inputs = {name: getattr(args, name) for name in ("train", "val", "traverses", "model", "out")}
    result = finetune(inputs["train"], inputs["val"], inputs["traverses"], inputs["model"], inputs["out"], config,
                      overwrite=args.overwrite, command_line=args.command_line, progress=not args.no_progress)
    if result.main_process and result.metrics:
        last = result.metrics[-1]
        print(f"{result.steps} steps; best val max error {result.best_metric:.2f} m at step {result.best_step} "
              f"(last {last['val_max_error_m']:.2f} m); run folder {result.run}")
    return 0
