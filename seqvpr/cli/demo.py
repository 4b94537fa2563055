"""``seqvpr demo``: the main job on a built-in default, with nothing to download.

Renders a synthetic street world, prepares it like RobotCar data, builds reference/query
sequence pairs, initialises a small NetVLAD encoder without training (random VGG16
weights cut after conv1_2, NetVLAD clusters by k-means on reference images), evaluates
Base (D), Base (G) and Indep, prints the accuracy table and writes the plots. Every step
calls the library function behind one of the ordinary commands (``synth``,
``prepare-robotcar``, ``pairs``, ``evaluate``), so the demo exercises the same code a
user runs on real data.

``seqvpr demo --signals`` instead aligns a synthetic signal pair with a known warp in a
few seconds, a look at GDTW alone.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from seqvpr.cli.argtypes import non_negative_int, positive_float, positive_int

NAME = "demo"
HELP = "run the main job on a built-in default (synthetic world, no downloads)"
DESCRIPTION = """\
Run the whole pipeline on a synthetic world, on this machine, with nothing downloaded:

  1. render a ~1 km street route in four conditions (overcast, sunny, snow, night)
     in the Oxford RobotCar layout                                  (seqvpr synth)
  2. demosaic and geotag the images                      (seqvpr prepare-robotcar)
  3. build 25-frame reference / 10-frame query sequence pairs          (seqvpr pairs)
  4. initialise a small NetVLAD encoder WITHOUT training: VGG16 cut after its first
     block (conv1_2) with random weights, 64 NetVLAD clusters by k-means on reference
     images, 120x90 input (see docs/demo.md for why, and what it scores)
  5. localise every test query with classic DTW (Base D), GDTW (Base G) and
     independent retrieval (Indep); print accuracy at 2/3/5/10 m   (seqvpr evaluate)
  6. fine-tune the encoder's NetVLAD layer with the DecDTW max-error loss on the train
     pairs, within a fixed budget of steps                          (seqvpr finetune)
  7. evaluate the fine-tuned encoder beside the base one: the DecDTW rows  (evaluate)

Outputs go to --out (default demo-output/): raw/ and prepared/ traverses, pairs/,
model/encoder.pt, finetune/ (the training run), evaluation/ (tables, error CDFs,
example maps). Steps that finished are reused when the demo runs again with the same
--out and options (recorded in OUT/seqvpr-options.yaml); another --seed, --length-m,
--width, --height or --finetune-steps stops with a message naming it (--overwrite
rebuilds OUT, or choose another --out). --finetune-steps 0 stops after step 5.

With --signals: align a synthetic signal to a warped, noisy copy with GDTW and DTW
instead (seconds), printing both warps against the true one.
"""

DEMO_CONDITIONS = ("overcast", "sunny", "snow", "night")
INIT_IMAGES = 150
# Step 6 trains NetVLAD only (the conv1 block stays frozen, its output cached) with Adam at
# a learning rate that moves a small random encoder within the budget, validating on an
# evenly spaced subset of the val pairs.
FINETUNE_LR = 1e-3
FINETUNE_VAL_PAIRS = 32


@dataclass(frozen=True)
class DemoOptions:
    """Options of ``seqvpr demo`` (``config/demo.yaml`` documents every key)."""

    seed: int = 0
    length_m: float = 1000.0
    width: int = 240
    height: int = 180
    workers: int = 2
    finetune_steps: int = 20

    def __post_init__(self) -> None:
        if self.finetune_steps < 0:
            raise ValueError(f"finetune_steps must be >= 0, got {self.finetune_steps}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default demo-output/)")
    parser.add_argument("--config", type=Path, default=None,
                        help="options from a YAML file (see config/demo.yaml); flags given win")
    parser.add_argument("--seed", type=int, default=None, help="world, pairs and encoder seed (default 0)")
    parser.add_argument("--length-m", type=positive_float, default=None, help="route length in metres (default 1000)")
    parser.add_argument("--width", type=positive_int, default=None, help="rendered image width (default 240)")
    parser.add_argument("--height", type=positive_int, default=None, help="rendered image height (default 180)")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes rendering traverses (default 2)")
    parser.add_argument("--finetune-steps", type=non_negative_int, default=None,
                        help="DecDTW fine-tuning steps of step 6 (default 20; 0 stops after step 5)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild OUT if it holds a demo run with other options (seed, length, size, steps)")
    parser.add_argument("--signals", action="store_true", help="the quick signal-alignment demo instead")


def run(args: argparse.Namespace) -> int:
    from seqvpr.config import options_config

    options = options_config(DemoOptions, args.config, {
        "seed": args.seed, "length_m": args.length_m, "width": args.width, "height": args.height,
        "workers": args.workers, "finetune_steps": args.finetune_steps,
    })
    if args.signals:
        return _signal_demo(args.out, options.seed)
    import shlex

    from seqvpr.data.pair_files import make_pairs
    from seqvpr.data.prepare import PrepareConfig, prepare_robotcar
    from seqvpr.data.robotcar import RobotCarConfig
    from seqvpr.data.synth.drive import SynthConfig, synthesize
    from seqvpr.data.synth.render import Camera
    from seqvpr.data.synth.world import WorldConfig
    from seqvpr.errors import SeqvprError
    from seqvpr.evaluation import EvaluationConfig, evaluate
    from seqvpr.io import claim_output_dir

    started = time.perf_counter()
    out = args.out
    raw, prepared, pairs_dir = out / "raw", out / "prepared", out / "pairs"
    synth = SynthConfig(world=WorldConfig(route_length_m=options.length_m),
                        camera=Camera(width=options.width, height=options.height), conditions=DEMO_CONDITIONS)
    # Everything in OUT follows from these: another seed or size stops instead of mixing worlds.
    claim_output_dir(out, {"seed": options.seed, "length_m": options.length_m, "width": options.width,
                           "height": options.height, "finetune_steps": options.finetune_steps},
                     overwrite=args.overwrite, command="demo")

    _step(1, "rendering the synthetic world")
    truths = synthesize(synth, raw, seed=options.seed, workers=options.workers, progress=True)
    for truth in truths:
        print(f"{truth.name}  {truth.condition:9s} {len(truth):5d} images  {truth.path_length_m[-1]:7.1f} m")
    _step(2, "preparing traverses (demosaic, geotag)")
    for truth in truths:
        prepare_robotcar(raw / truth.name, prepared, RobotCarConfig(condition=truth.condition), PrepareConfig(),
                         progress=True)
    print(f"prepared {len(truths)} traverses into {prepared}")
    _step(3, "building sequence pairs")
    summary = make_pairs(prepared, pairs_dir, train_fraction=0.5, seed=options.seed, progress=True)
    for name, split in summary["splits"].items():
        print(f"{name}: {split['pairs']} pairs")
    _step(4, "initialising a small encoder (no training)")
    checkpoint = _untrained_encoder(prepared, out / "model" / "encoder.pt", options.seed)
    _step(5, "evaluating Base (D), Base (G), Indep on the test pairs")
    test_pairs = sorted(pairs_dir.glob("test_*.csv"))
    if not test_pairs:
        raise SeqvprError(f"{pairs_dir}: no test pairs were built; try a longer route (--length-m)")
    evaluation = out / "evaluation"
    command = shlex.join(["seqvpr", "evaluate", *map(str, test_pairs), "--traverses", str(prepared),
                          "--model", f"base={checkpoint}", "--out", str(evaluation)])
    # The demo owns its evaluation folder (its own options are checked above): steps 5 and 7
    # write it with different models, keeping the descriptor cache.
    evaluate(EvaluationConfig(), test_pairs, prepared, {"base": checkpoint}, evaluation, command_line=command,
             overwrite=True)
    print((evaluation / "accuracy_max_error.md").read_text(encoding="utf-8"))
    print(f"results in {evaluation}/ (the same as: {command})")
    print(f"\nencoder: {checkpoint}: VGG16 conv1 block with random weights (seed {options.seed}) + NetVLAD "
          f"with k-means clusters from {INIT_IMAGES} reference images; untrained, so night queries fail")
    if options.finetune_steps:
        _step(6, f"fine-tuning NetVLAD with the DecDTW max-error loss ({options.finetune_steps} steps of 8 pairs)")
        tuned = _finetune(pairs_dir, prepared, checkpoint, out / "finetune", options.finetune_steps)
        _step(7, "evaluating the fine-tuned encoder (DecDTW) beside the base one")
        command = shlex.join(["seqvpr", "evaluate", *map(str, test_pairs), "--traverses", str(prepared),
                              "--model", f"base={checkpoint}", "--model", f"DecDTW={tuned}", "--out", str(evaluation)])
        evaluate(EvaluationConfig(), test_pairs, prepared, {"base": checkpoint, "DecDTW": tuned}, evaluation,
                 command_line=command, overwrite=True)
        print((evaluation / "accuracy_max_error.md").read_text(encoding="utf-8"))
        print(f"DecDTW: {tuned}, the base encoder after {options.finetune_steps} steps of DecDTW fine-tuning of "
              f"its NetVLAD layer (docs/training.md); results in {evaluation}/ (the same as: {command})")
    print(f"demo finished in {time.perf_counter() - started:.0f} s; outputs in {out}/")
    return 0


def _step(number: int, text: str) -> None:
    print(f"\n[{number}/7] {text}", flush=True)


def _finetune(pairs_dir: Path, prepared: Path, checkpoint: Path, out: Path, steps: int) -> Path:
    """Step 6: DecDTW fine-tuning of the demo encoder's NetVLAD layer; returns the checkpoint to evaluate."""
    import shlex

    from seqvpr.train.finetune import FinetuneConfig, finetune
    from seqvpr.train.run import LoopConfig

    config = FinetuneConfig(trainable_from="netvlad", lr=FINETUNE_LR, val_max_pairs=FINETUNE_VAL_PAIRS,
                            loop=LoopConfig(epochs=1, batch_size=8, validations_per_epoch=5, max_steps=steps))
    train, val = sorted(pairs_dir.glob("train_*.csv")), sorted(pairs_dir.glob("val_*.csv"))
    command = shlex.join(["seqvpr", "finetune", "--train", *map(str, train), "--val", *map(str, val),
                          "--traverses", str(prepared), "--model", str(checkpoint), "--out", str(out),
                          "--trainable", "netvlad", "--lr", str(FINETUNE_LR), "--epochs", "1",
                          "--max-steps", str(steps)])
    result = finetune(train, val, prepared, checkpoint, out, config, command_line=f"{command} (via seqvpr demo)")
    print(f"{result.steps} steps; val max error (mean over {FINETUNE_VAL_PAIRS} val pairs) "
          f"{result.metrics[0]['val_max_error_m']:.1f} m at step {result.metrics[0]['step']} -> "
          f"{result.metrics[-1]['val_max_error_m']:.1f} m at step {result.steps}; best.pt from step "
          f"{result.best_step}; run folder {out}")
    return out / "best.pt"


def _untrained_encoder(prepared: Path, checkpoint: Path, seed: int) -> Path:
    """The demo encoder: random VGG16 conv1 block, NetVLAD clusters by k-means on reference images.

    Untrained deeper VGG blocks are random projections of random projections; on the
    synthetic world they keep less of the facade colours and edges that tell places apart
    than the first block does (docs/demo.md has the measurements).
    """
    import numpy as np
    import torch

    from seqvpr.data.images import read_rgb
    from seqvpr.data.traverse import find_traverses
    from seqvpr.extraction import encoder_fingerprint
    from seqvpr.vpr.encoder import EncoderConfig, NetVLADEncoder, images_to_tensor
    from seqvpr.vpr.weights import save_encoder

    if checkpoint.exists():
        print(f"reusing {checkpoint}")
        return checkpoint
    torch.manual_seed(seed)
    config = EncoderConfig(backbone_blocks=1, num_clusters=64, image_width=120, image_height=90)
    encoder = NetVLADEncoder(config).eval()
    reference = min(find_traverses(prepared, check_images=False), key=lambda traverse: traverse.name)
    picks = np.linspace(0, len(reference) - 1, INIT_IMAGES).round().astype(int)
    images = [read_rgb(reference.image_path(index)) for index in picks]
    batches = [images_to_tensor(images[start : start + 16], encoder.config) for start in range(0, len(images), 16)]
    encoder.initialize_clusters(batches, seed=seed)
    save_encoder(encoder, checkpoint)
    print(f"wrote {checkpoint} (fingerprint {encoder_fingerprint(encoder)})")
    return checkpoint


def _signal_demo(out: Path, seed: int) -> int:
    from seqvpr.align import GDTWConfig, dtw, gdtw
    from seqvpr.align.synthetic import warped_pair

    reference, query, true_warp = warped_pair(seed=seed, noise=0.2)
    result = gdtw(reference, query, GDTWConfig(subsequence=True, lam=0.1))
    baseline = dtw(reference, query, subsequence=True)
    gdtw_error = (result.warp[0] - true_warp[0]).abs()
    dtw_error = (baseline.warp[0] - true_warp[0]).abs()
    print("query t [s]   true phi [s]   GDTW phi [s]   DTW phi [s]")
    for t, truth, ours, theirs in zip(
        query.times[0].tolist(), true_warp[0].tolist(), result.warp[0].tolist(), baseline.warp[0].tolist()
    ):
        print(f"{t:11.2f}   {truth:12.2f}   {ours:12.2f}   {theirs:11.2f}")
    print()
    print(f"GDTW warp error: mean {gdtw_error.mean():.3f} s, max {gdtw_error.max():.3f} s "
          f"(objective {float(result.cost[0]):.4f})")
    print(f"DTW  warp error: mean {dtw_error.mean():.3f} s, max {dtw_error.max():.3f} s")
    plot_path = out / "alignment.png"
    _plot_signals(plot_path, query.times[0], true_warp[0], result.warp[0], baseline.warp[0])
    print(f"plot: {plot_path}")
    return 0


def _plot_signals(path: Path, times, truth, ours, theirs) -> None:
    from seqvpr.plotting import pyplot, save_figure

    figure, axis = pyplot().subplots(figsize=(6, 4.5), dpi=120)
    axis.plot(times, truth, "k-", lw=2, label="true warp")
    axis.plot(times, ours, "o-", color="tab:blue", ms=4, label="GDTW (continuous)")
    axis.step(times, theirs, where="mid", color="tab:orange", label="DTW (discrete)")
    axis.set_xlabel("query time t [s]")
    axis.set_ylabel("reference time phi(t) [s]")
    axis.set_title("seqvpr demo --signals: query aligned to reference")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)
