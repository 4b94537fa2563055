"""``seqvpr audio align SCORE PERFORMANCE --out DIR``: align a recording to its score."""

from __future__ import annotations

import argparse
from pathlib import Path

from seqvpr.cli.argtypes import positive_float, positive_int

NAME = "audio"
HELP = "audio-to-score alignment of your own files (`seqvpr audio align SCORE PERFORMANCE`)"
DESCRIPTION = """\
Audio-to-score alignment of a whole performance (action `align`).

SCORE is MIDI (.mid), MusicXML (.xml, .musicxml, .mxl), kern (.krn) or ABC (.abc);
PERFORMANCE is an audio file (wav, flac, ogg, ...). The score is synthesised at its
nominal tempo; both are turned into features (CQT by default, or a trained model's with
--model); a coarse DTW over the whole piece is refined by GDTW in overlapping windows.

Writes DIR/alignment.csv (score_s, score_beat, performance_s: one row per feature frame,
21.5 per second), DIR/alignment.png (the path over the cost matrix and the local tempo)
and DIR/summary.json. See docs/audio.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    align = actions.add_parser("align", help="align a performance to its score", description=DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    align.add_argument("score", type=Path, help="score file (MIDI, MusicXML, kern, ABC)")
    align.add_argument("performance", type=Path, help="recording (wav, flac, ogg, ...)")
    align.add_argument("--out", type=Path, required=True, help="output folder")
    align.add_argument("--model", type=Path, default=None, help="a trained audio model (audio-train best.pt)")
    align.add_argument("--config", type=Path, default=None, help="options from a YAML file (config/audio_align.yaml)")
    align.add_argument("--features", choices=("cqt", "chroma", "melspec"), default=None,
                       help="base features without --model (default cqt)")
    align.add_argument("--lam", type=positive_float, default=None, help="GDTW lambda (default: per feature)")
    align.add_argument("--window-frames", type=positive_int, default=None, help="GDTW window length (default 256)")
    align.add_argument("--overwrite", action="store_true", help="replace OUT if it holds another alignment")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from seqvpr.audio.piece import PieceAlignConfig, align_piece
    from seqvpr.audio.plots import plot_piece_alignment
    from seqvpr.config import load_config
    from seqvpr.errors import ConfigError
    from seqvpr.io import atomic_path, claim_output_dir

    config = load_config(args.config, PieceAlignConfig) if args.config else PieceAlignConfig()
    flags = {"features": args.features, "lam": args.lam, "window_frames": args.window_frames}
    try:
        config = dataclasses.replace(config, **{key: value for key, value in flags.items() if value is not None})
    except ValueError as error:
        raise ConfigError(f"audio align: {error}") from error
    model = None
    if args.model is not None:
        from seqvpr.audio.model import load_audio_model

        model = load_audio_model(args.model)
    result = align_piece(args.score, args.performance, config, model)
    options = {"score": args.score, "performance": args.performance, "model": args.model,
               "config": dataclasses.asdict(config)}
    claim_output_dir(args.out, options, overwrite=args.overwrite, command="seqvpr audio align")
    with atomic_path(args.out / "alignment.csv") as tmp:
        lines = ["score_s,score_beat,performance_s"]
        lines += [f"{s:.4f},{b:.4f},{p:.4f}" for s, b, p in zip(result.score_s, result.beats, result.performance_s)]
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot_piece_alignment(args.out / "alignment.png", result, f"{args.performance.name} -> {args.score.name}")
    summary = {"score": str(args.score), "performance": str(args.performance),
               "features": model.features if model else config.features, "model": str(args.model or ""),
               "frames": len(result.score_s), "score_end_s": float(result.score_s[-1]),
               "performance_start_s": float(result.performance_s[0]),
               "performance_end_s": float(result.performance_s[-1]),
               "seconds": {key: round(value, 3) for key, value in result.seconds.items()},
               "out": str(args.out)}
    with atomic_path(args.out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary))
    return 0
