"""``seqvpr map build``: reference traverses -> a map folder the streaming localizer loads."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "map"
HELP = "build a localization map from reference traverses; calibrate its confidence and covariance"
DESCRIPTION = """\
seqvpr map build TRAVERSE... --model CKPT --out MAP

Encode every image of the reference traverses (prepared traverse folders; several
conditions of one route may go into one map) with the encoder checkpoint, and write MAP/:
descriptors (condition-centred: each traverse's mean descriptor subtracted, unless
--no-centre), times, positions and headings as memory-mapped .npy arrays, a faiss index
(exact up to --exact-max-frames frames, IVF or IVF-PQ beyond), and map.yaml with the
encoder's fingerprint. Interrupted builds resume. `seqvpr localize MAP SOURCE` uses it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    build = actions.add_parser("build", help="build a map", description=DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("traverses", type=Path, nargs="+", help="prepared reference traverse folders")
    build.add_argument("--model", type=Path, required=True, help="encoder checkpoint")
    build.add_argument("--out", type=Path, required=True, help="map folder")
    build.add_argument("--reference-spacing-m", type=float, default=1.0,
                       help="keep reference frames at least this far apart along the path; 0 keeps all (default 1)")
    build.add_argument("--exact-max-frames", type=int, default=100_000,
                       help="largest map with an exact index (default %(default)s)")
    build.add_argument("--large-index", choices=("ivf", "ivfpq"), default="ivf",
                       help="index beyond --exact-max-frames (default %(default)s)")
    build.add_argument("--nlist", type=int, help="IVF cells (default sqrt(frames))")
    build.add_argument("--nprobe", type=int, default=16, help="IVF cells searched per query (default %(default)s)")
    build.add_argument("--pq-subquantizers", type=int, default=64, help="IVF-PQ bytes per vector (default 64)")
    build.add_argument("--batch-size", type=int, default=16, help="images per encoder batch (default 16)")
    build.add_argument("--device", default="cpu", help="torch device of the encoder (default cpu)")
    build.add_argument("--no-centre", dest="centre", action="store_false",
                       help="keep the encoder's descriptors as they are (default: subtract each traverse's mean "
                            "descriptor, condition centring)")
    build.add_argument("--proposal-dim", type=int, default=256,
                       help="the faiss index holds the descriptors projected onto this many principal directions; "
                            "its shortlists are re-ranked on the whole descriptors (window proposals only; default "
                            "256; 0: index the whole descriptors)")
    build.add_argument("--overwrite", action="store_true", help="rebuild MAP if it holds another build")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    calibrate = actions.add_parser(
        "calibrate", help="calibrate confidence and covariance on validation traverses",
        description="seqvpr map calibrate MAP TRAVERSE... --model CKPT\n\n"
                    "Localize validation traverses (not in the map) against MAP, fit the margin -> confidence "
                    "mapping (isotonic) and the covariance (so that the 95 % ellipse holds 95 % of published "
                    "fixes), and write MAP/calibration.yaml, calibration_report.json and reliability.png. "
                    "Include drives of roads that are not in the map, so that the threshold learns to refuse "
                    "them. With query_spacing_m in --config, each traverse's travelled distance is its odometry.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    calibrate.add_argument("map", type=Path, help="map folder")
    calibrate.add_argument("traverses", type=Path, nargs="+", help="validation traverse folders")
    calibrate.add_argument("--model", type=Path, required=True, help="the map's encoder checkpoint")
    calibrate.add_argument("--config", type=Path, help="localizer settings (config/localization.yaml)")
    calibrate.add_argument("--correct-m", type=float, default=10.0,
                           help="a fix within this distance counts as correct (default 10)")


def run(args: argparse.Namespace) -> int:
    if args.action == "calibrate":
        return _calibrate(args)
    from seqvpr.errors import SeqvprError
    from seqvpr.io import claim_output_dir
    from seqvpr.localization import MapConfig, build_map

    config = MapConfig(reference_spacing_m=args.reference_spacing_m, exact_max_frames=args.exact_max_frames,
                       large_index=args.large_index, nlist=args.nlist, nprobe=args.nprobe,
                       pq_subquantizers=args.pq_subquantizers, batch_size=args.batch_size, device=args.device,
                       centre=args.centre, proposal_dim=args.proposal_dim or None)
    if not args.model.is_file():
        raise SeqvprError(f"map build: no such checkpoint file {args.model}")
    for traverse in args.traverses:
        if not (traverse / "traverse.csv").is_file():
            raise SeqvprError(f"map build: {traverse} is not a prepared traverse folder (no traverse.csv)")
    options = {"traverses": list(args.traverses), "model": args.model, "map_config": vars(config)}
    claim_output_dir(args.out, options, overwrite=args.overwrite, command="seqvpr map build")
    built = build_map(args.traverses, args.model, args.out, config, progress=not args.no_progress)
    print(f"map {args.out}: {len(built.traverses)} traverse(s), {len(built)} frames, {built.dim}-d, "
          f"{built.index_kind} index, encoder {built.fingerprint}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from seqvpr.config import load_config
    from seqvpr.errors import SeqvprError
    from seqvpr.localization import LocalizerConfig
    from seqvpr.localization.validation import calibrate_map

    config = load_config(args.config, LocalizerConfig) if args.config else LocalizerConfig()
    if not args.model.is_file():
        raise SeqvprError(f"map calibrate: no such checkpoint file {args.model}")
    calibration, report = calibrate_map(args.map, args.traverses, args.model, config, correct_m=args.correct_m)
    coverage = report["coverage_95"]
    print(f"calibrated {args.map} on {report['attempts']} keyframe alignments: {report['published']} published at "
          f"confidence >= {report['threshold']:.3f}, 95 % ellipse coverage "
          f"{'n/a' if coverage is None else f'{100 * coverage:.1f} %'}; wrote {args.map / 'calibration.yaml'}")
    return 0
