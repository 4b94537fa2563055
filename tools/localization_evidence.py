"""Evidence for the streaming localizer on the synthetic world (no oracle windows).

Builds (or reuses) a synthetic world, the demo's untrained encoder and a map of the
reference (survey) traverse; calibrates confidence and covariance on the validation split
(every query traverse's keyframes on the first half of the route: the geographic split
``seqvpr pairs`` makes); then, on the test split (the second half) of every query traverse:

- accuracy of the published keyframe fixes at 2/3/5/10 m and the wrong-fix rate (> 10 m),
  beside oracle-window Base (G) on the same keyframes (the query aligned to its true
  reference stretch, as the offline paper protocol does);
- how often the 95 % covariance ellipse holds the truth;
- a kidnap: two stretches of one query spliced together (stamps continuing);
- a route not in the map: the query's last 40 % against a map of the reference's first 40 %.

Usage (results go to OUT/evidence.json and OUT/evidence.md)::

    .venv/bin/python tools/localization_evidence.py --out /tmp/evidence [--length-m 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from seqvpr.cli import main as seqvpr
from seqvpr.data.traverse import find_traverses
from seqvpr.extraction import encode_images
from seqvpr.localization import LocalizerConfig, MapPart, StreamingLocalizer, build_map, load_map, write_map
from seqvpr.localization.calibration import Calibration, save_calibration
from seqvpr.localization.plots import plot_reliability
from seqvpr.localization.validation import Attempts, calibrate, keyframe_attempts, oracle_errors, reliability
from seqvpr.vpr import load_encoder

CONDITIONS = "overcast,sunny,snow,dusk,night"
THRESHOLDS = (2.0, 3.0, 5.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--length-m", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lam", type=float, help="GDTW lambda (default: LocalizerConfig's)")
    parser.add_argument("--split", type=float, default=0.5,
                        help="keyframes past this fraction of the route are the test split (default 0.5)")
    args = parser.parse_args()
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    started = time.perf_counter()
    raw, prepared = args.out / "raw", args.out / "prepared"
    if not prepared.is_dir():
        assert seqvpr(["synth", "--out", str(raw), "--seed", str(args.seed), "--length-m", str(args.length_m),
                       "--width", "120", "--height", "90", "--conditions", CONDITIONS]) == 0
        assert seqvpr(["prepare-robotcar", str(raw), "--out", str(prepared)]) == 0
    from seqvpr.cli.demo import _untrained_encoder

    model = _untrained_encoder(prepared, args.out / "encoder.pt", args.seed)
    traverses = find_traverses(prepared)
    reference, queries = traverses[0], traverses[1:]
    map_dir = args.out / "map"
    if not (map_dir / "map.yaml").is_file():
        build_map([reference.root], model, map_dir)
    reference_map = load_map(map_dir)
    encoder = load_encoder(model).eval()
    descriptors = {}
    for query in queries:
        cache = args.out / "descriptors" / f"{query.name}.npy"
        if not cache.is_file():
            values, _, _ = encode_images(encoder, [query.image_path(i) for i in range(len(query))])
            cache.parent.mkdir(exist_ok=True)
            np.save(cache, values)
        descriptors[query.name] = np.load(cache)
    config = LocalizerConfig() if args.lam is None else LocalizerConfig(lam=args.lam)
    # Geographic split, as the pairs builder makes it: keyframes whose truth lies on the first
    # half of the route are the validation split, the second half the test split.
    track = np.asarray(reference_map.positions)
    fraction = reference_map.path_length_m / reference_map.path_length_m[-1]

    def region(attempts):
        nearest = np.argmin(np.linalg.norm(attempts.truths[:, None] - track[None], axis=2), axis=1)
        return fraction[nearest] >= args.split

    uncalibrated = Attempts.concatenate([keyframe_attempts(reference_map, [q], [descriptors[q.name]], config,
                                                           Calibration()) for q in queries])
    validation = uncalibrated.select(~region(uncalibrated))
    calibration = calibrate(validation, config.confidence_threshold)
    save_calibration(calibration, map_dir)
    report = {"reference": reference.name, "split": args.split, "lam": config.lam,
              "validation_acc10_all_keyframes": float((validation.errors_m <= 10).mean()),
              "calibration": {"validation": reliability(validation, calibration, config.confidence_threshold)}}
    plot_reliability(args.out / "reliability_val.png", report["calibration"]["validation"], "validation split")
    tested = []
    report["tests"] = {}
    for query in queries:
        attempts = keyframe_attempts(reference_map, [query], [descriptors[query.name]], config, calibration)
        attempts = attempts.select(region(attempts))
        tested.append(attempts)
        report["tests"][query.name] = _scores(reference_map, query, descriptors[query.name], attempts, config,
                                              calibration)
    merged = Attempts.concatenate(tested)
    report["calibration"]["test"] = reliability(merged, calibration, config.confidence_threshold)
    report["threshold_sweep"] = _sweep(reference_map, queries, descriptors, merged, calibration, config)
    plot_reliability(args.out / "reliability_test.png", report["calibration"]["test"], "test split")
    report["kidnap"] = _kidnap(reference_map, queries[0], descriptors[queries[0].name], config)
    report["unknown_route"] = _unknown_route(reference_map, queries[0], descriptors[queries[0].name], config,
                                             args.out / "head_map")
    report["seconds"] = time.perf_counter() - started
    (args.out / "evidence.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _sweep(reference_map, queries, descriptors, attempts, calibration, config):
    """Test-split keyframes by confidence threshold: availability, wrong fixes, streaming vs oracle.

    Confidences are the calibrated ones of each attempt's margin (the replay behind the
    attempts ran at the default threshold, which only changes how often it tracks).
    """
    by_name = {q.name: q for q in queries}
    oracle = np.concatenate([
        oracle_errors(reference_map, by_name[name], descriptors[name],
                      [t for t, n in zip(attempts.query_times, attempts.traverse) if n == name], config)
        for name in dict.fromkeys(attempts.traverse)])
    order = np.concatenate([np.flatnonzero(attempts.traverse == name) for name in dict.fromkeys(attempts.traverse)])
    errors, oracle_sorted = attempts.errors_m[order], oracle
    confidence = np.array([calibration.confidence(m) for m in attempts.margins])[order]
    rows = []
    for threshold in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5):
        chosen = confidence >= threshold
        rows.append({
            "threshold": threshold, "keyframes": int(len(chosen)), "fixes": int(chosen.sum()),
            "availability": float(chosen.mean()),
            "wrong_fix_rate": float((errors[chosen] > 10).mean()) if chosen.any() else None,
            "streaming_acc10": float((errors[chosen] <= 10).mean()) if chosen.any() else None,
            "oracle_acc10": float((oracle_sorted[chosen] <= 10).mean()) if chosen.any() else None,
            "streaming_acc5": float((errors[chosen] <= 5).mean()) if chosen.any() else None,
            "oracle_acc5": float((oracle_sorted[chosen] <= 5).mean()) if chosen.any() else None,
        })
    return rows


def _scores(reference_map, query, values, attempts, config, calibration):
    published = attempts.published
    errors = attempts.errors_m[published]
    oracle = oracle_errors(reference_map, query, values, [t for t, p in zip(attempts.query_times, published) if p],
                           config)
    return {
        "condition": query.condition,
        "keyframes": int(len(published)),
        "fixes": int(published.sum()),
        "availability": float(published.mean()) if len(published) else None,
        "streaming_accuracy": {f"{t:g}m": float((errors <= t).mean()) if errors.size else None for t in THRESHOLDS},
        "oracle_base_g_accuracy": {f"{t:g}m": float((oracle <= t).mean()) if oracle.size else None
                                   for t in THRESHOLDS},
        "wrong_fix_rate": float((errors > 10).mean()) if errors.size else None,
        "coverage_95": reliability(attempts, calibration, config.confidence_threshold)["coverage_95"],
    }


def _kidnap(reference_map, query, values, config):
    path = query.path_length_m
    first = np.flatnonzero(path < path[-1] / 3)[-200:]
    second = np.flatnonzero(path > path[first[-1]] + 300)[:300]
    period = np.median(np.diff(query.times_s))
    stamps = query.times_s[first[0]] + period * np.arange(len(first) + len(second))
    rows = np.concatenate([first, second])
    localizer = StreamingLocalizer(reference_map, config)
    outcome = []
    for i, (stamp, row) in enumerate(zip(stamps, rows)):
        estimate = localizer.update(stamp, descriptor=values[row])
        if i >= len(first) and estimate.is_keyframe:
            error = float(np.hypot(estimate.easting - query.positions[row, 0],
                                   estimate.northing - query.positions[row, 1])) if estimate.has_fix else None
            outcome.append({"status": estimate.status.value, "error_m": error})
    wrong = [i for i, o in enumerate(outcome) if o["error_m"] is not None and o["error_m"] > 10]
    correct = [i for i, o in enumerate(outcome) if o["error_m"] is not None and o["error_m"] <= 10]
    return {"keyframes_after": len(outcome), "wrong_fix_keyframes": wrong,
            "first_correct_fix_keyframe": correct[0] if correct else None,
            "statuses_first_10": [o["status"] for o in outcome[:10]]}


def _unknown_route(reference_map, query, values, config, head_dir):
    path = reference_map.path_length_m
    keep = path < 0.4 * path[-1]
    part = MapPart("head", "x", np.asarray(reference_map.times)[keep], np.asarray(reference_map.positions)[keep],
                   np.asarray(reference_map.headings)[keep], np.asarray(reference_map.descriptors)[keep])
    head = write_map(head_dir, [part], zone=str(reference_map.zone), fingerprint=reference_map.fingerprint,
                     encoder={})
    tail = query.path_length_m > 0.6 * query.path_length_m[-1]
    localizer = StreamingLocalizer(head, config, calibration=StreamingLocalizer(reference_map).calibration)
    estimates = [localizer.update(s, descriptor=v) for s, v in zip(query.times_s[tail], values[tail])]
    keyframes = [e for e in estimates if e.is_keyframe]
    return {"keyframes": len(keyframes), "fixes": sum(e.has_fix for e in keyframes)}


if __name__ == "__main__":
    main()
