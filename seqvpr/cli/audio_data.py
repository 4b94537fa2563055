"""``seqvpr audio-data build``: build the audio-to-score data set from the music21 corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from seqvpr.cli.argtypes import non_negative_int, positive_int

NAME = "audio-data"
HELP = "build the audio-to-score data set (music21 scores, synthetic performances, exact truth)"
DESCRIPTION = """\
Build an audio-to-score alignment data set without downloads (the DecDTW paper, §7.1).

Scores come from the music21 corpus; each is synthesised at its nominal tempo, and
performances are rendered with a random expressive tempo map (+-30 %, ritardandi,
fermatas), asynchrony, dynamics, sustain, another piano timbre, reverb and noise. The tempo
map is the exact ground truth. Works are split into train/val/test (no score in two
splits); scores are cut into 256-frame slices with a performance window 1.1x the slice's
true span; features (CQT, chroma, melspec) are cached.

Presets: config/audio_data_small.yaml (CI, 6 works) and config/audio_data_full.yaml
(the Table-1 run, 40 works, two performances each). An interrupted build resumes when
run again with the same options; other options stop unless --overwrite. See docs/audio.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    build = actions.add_parser("build", help="build (or resume) a data set", description=DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("--out", type=Path, required=True, help="output folder")
    build.add_argument("--config", type=Path, default=None,
                       help="options from a YAML file (config/audio_data_small.yaml, the default, or _full)")
    build.add_argument("--seed", type=non_negative_int, default=None, help="random seed (overrides the config)")
    build.add_argument("--works", type=positive_int, default=None, help="number of works (overrides the config)")
    build.add_argument("--overwrite", action="store_true", help="rebuild OUT if it holds a build with other options")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from seqvpr.audio.build import build_audio_data
    from seqvpr.audio.dataset import AudioDataConfig
    from seqvpr.config import load_config
    from seqvpr.errors import ConfigError

    config = load_config(args.config, AudioDataConfig) if args.config else AudioDataConfig()
    flags = {key: value for key, value in {"seed": args.seed, "works": args.works}.items() if value is not None}
    try:
        config = dataclasses.replace(config, **flags)
    except ValueError as error:
        raise ConfigError(f"audio-data build: {error}") from error
    out = build_audio_data(config, args.out, overwrite=args.overwrite)
    print(out)
    return 0
