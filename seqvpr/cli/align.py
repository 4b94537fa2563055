"""``seqvpr align``: align a query signal to a reference signal stored as ``.npz`` files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seqvpr.cli.argtypes import GRID_SIZE_LIMIT, grid_size
from seqvpr.errors import SeqvprError

NAME = "align"
HELP = "align a query signal to a reference signal (.npz files) with GDTW or DTW"
DESCRIPTION = """\
Align a query signal to a reference signal and write the warp.

Each input is an .npz file with two arrays:
  times   (N,)    sample times in seconds, strictly increasing
  values  (N, D)  feature vectors (the same D in both files)

The output .npz holds `knots` (query times, s), `warp` (reference times at the knots, s)
and `cost`; a JSON summary is printed. GDTW (default) returns a continuous-time warp;
--method dtw runs classic DTW and reads the warp out at the query samples.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", type=Path, help="reference signal (.npz with times, values)")
    parser.add_argument("query", type=Path, help="query signal (.npz with times, values)")
    parser.add_argument("--out", type=Path, required=True, help="output .npz path")
    parser.add_argument("--method", choices=("gdtw", "dtw"), default="gdtw", help="default gdtw")
    parser.add_argument("--config", type=Path, default=None,
                        help="GDTW options from a YAML file (see config/gdtw.yaml); flags below win")
    parser.add_argument("--subsequence", action=argparse.BooleanOptionalAction, default=None,
                        help="the query lies somewhere inside the reference (free ends); default: full")
    parser.add_argument("--lam", type=float, default=None, help="GDTW regularisation weight (default 0.1)")
    parser.add_argument("--grid-size", type=grid_size, default=None,
                        help=f"GDTW candidates per knot M, 2..{GRID_SIZE_LIMIT} (default max(50, N_ref + 1))")
    parser.add_argument("--refinements", type=int, default=None, help="GDTW refinements (default 3)")
    parser.add_argument("--slope-min", type=float, default=None, help="min dphi/dt in units of e (default 0)")
    parser.add_argument("--slope-max", type=float, default=None, help="max dphi/dt in units of e (default inf)")
    parser.add_argument("--band", type=float, default=None, help="band width beta in [0, 1] (default none)")


def _gdtw_config(args: argparse.Namespace):
    import dataclasses

    from seqvpr.align import GDTWConfig
    from seqvpr.config import load_config

    config = load_config(args.config, GDTWConfig) if args.config else GDTWConfig()
    flags = {"subsequence": args.subsequence, "lam": args.lam, "grid_size": args.grid_size,
             "refinements": args.refinements, "slope_min": args.slope_min,
             "slope_max": args.slope_max, "band": args.band}
    return dataclasses.replace(config, **{key: value for key, value in flags.items() if value is not None})


def _load(path: Path):
    import numpy as np

    from seqvpr.align import Signal
    from seqvpr.io import read_npz

    arrays = read_npz(path, "a signal .npz with times (N,) and values (N, D)")
    missing = {"times", "values"} - set(arrays)
    if missing:
        raise SeqvprError(f"{path}: missing array(s) {sorted(missing)}; found {sorted(arrays)}")
    times, values = arrays["times"], arrays["values"]
    if times.ndim != 1 or values.ndim != 2 or values.shape[0] != times.shape[0]:
        raise SeqvprError(
            f"{path}: expected times (N,) and values (N, D), got {times.shape} and {values.shape}"
        )
    try:
        return Signal(times.astype(np.float64), values.astype(np.float64))
    except ValueError as error:
        raise SeqvprError(f"{path}: {error}") from error


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from seqvpr.align import dtw, gdtw
    from seqvpr.io import atomic_path

    if args.out.is_dir():
        raise SeqvprError(f"--out {args.out} is a folder; give the path of the .npz file to write")
    reference, query = _load(args.reference), _load(args.query)
    config = _gdtw_config(args)
    if args.method == "gdtw":
        result = gdtw(reference, query, config)
        knots, warp, cost = result.knots[0], result.warp[0], float(result.cost[0])
    else:
        result = dtw(reference, query, subsequence=config.subsequence)
        knots, warp, cost = query.times[0], result.warp[0], float(result.cost[0])
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, knots=knots.numpy(), warp=warp.numpy(), cost=np.float64(cost))
    summary = {
        "method": args.method, "subsequence": config.subsequence, "cost": cost,
        "warp_start_s": float(warp[0]), "warp_end_s": float(warp[-1]), "out": str(args.out),
    }
    print(json.dumps(summary))
    return 0
