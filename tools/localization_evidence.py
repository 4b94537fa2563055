"""Evidence for the streaming localizer on the synthetic world (no oracle windows).

Builds (or reuses) a synthetic world, the demo's untrained encoder and a map of the
reference (survey) traverse; replays every query traverse through the localizer and
splits its keyframes geographically, as ``seqvpr pairs`` does: those whose truth lies on
the first half of the route are the validation split, the second half the test split.
Confidence (margin and streak of consistent keyframes), covariance and the publishing
threshold (the lowest confidence at which validation fixes were at most 1 % wrong) are
calibrated on the validation split; then, with the calibrated localizer replayed again:

- per split: availability (keyframes with a fix), wrong-fix rate (> 10 m), accuracy of the
  fixed keyframes at 2/3/5/10 m beside oracle-window Base (G) on the same keyframes (the
  query aligned to its true reference stretch with the paper's lambda = 0.1, as the
  offline protocol does), and how often the 95 % covariance ellipse holds the truth;
- a threshold sweep on the test split;
- a kidnap per query: two stretches 300 m apart spliced together (stamps continuing);
- a route not in the map: each query's last 40 % against a map of the reference's first 40 %.

Usage (results go to OUT/evidence.json; the world, encoder, map and descriptors in OUT are
reused when present)::

    .venv/bin/python tools/localization_evidence.py --out /tmp/evidence
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from seqvpr.cli import main as seqvpr
from seqvpr.config import config_to_dict, load_config
from seqvpr.data.traverse import find_traverses
from seqvpr.extraction import encode_images
from seqvpr.localization import LocalizerConfig, MapPart, StreamingLocalizer, build_map, load_map, write_map
from seqvpr.localization.calibration import Calibration, calibrated_settings, save_calibration
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
    parser.add_argument("--config", type=Path, default=Path("config/localization.yaml"),
                        help="localizer settings (default config/localization.yaml)")
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
    config = load_config(args.config, LocalizerConfig)
    track = np.asarray(reference_map.positions)
    fraction = reference_map.path_length_m / reference_map.path_length_m[-1]

    def on_test_half(attempts):
        nearest = np.argmin(np.linalg.norm(attempts.truths[:, None] - track[None], axis=2), axis=1)
        return fraction[nearest] >= args.split

    # The proposals, margins and streaks do not depend on the calibration: one replay with
    # the built-in mapping gives the validation attempts to calibrate on.
    uncalibrated = Attempts.concatenate([keyframe_attempts(reference_map, [q], [descriptors[q.name]], config,
                                                           Calibration()) for q in queries])
    validation_raw = uncalibrated.select(~on_test_half(uncalibrated))
    calibration = dataclasses.replace(calibrate(validation_raw, config.confidence_threshold),
                                      settings=calibrated_settings(config))
    save_calibration(calibration, map_dir)
    threshold = calibration.publish_threshold if config.confidence_threshold is None else config.confidence_threshold
    attempts = Attempts.concatenate([keyframe_attempts(reference_map, [q], [descriptors[q.name]], config,
                                                       calibration) for q in queries])
    test = on_test_half(attempts)
    report = {
        "reference": reference.name, "split": args.split, "config": config_to_dict(config),
        "calibration": config_to_dict(calibration), "threshold": threshold,
        "best_window_within_10m": {"validation": float((attempts.errors_m[~test] <= 10).mean()),
                                   "test": float((attempts.errors_m[test] <= 10).mean())},
        "reliability": {"validation": reliability(attempts.select(~test), calibration, threshold),
                        "test": reliability(attempts.select(test), calibration, threshold)},
    }
    oracle = _oracle(reference_map, queries, descriptors, attempts, config)
    report["splits"] = {name: _scores(attempts.select(mask), oracle[mask], calibration, threshold)
                        for name, mask in (("validation", ~test), ("test", test))}
    report["per_query_test"] = {
        f"{q.name} ({q.condition})": _scores(attempts.select(test & (attempts.traverse == q.name)),
                                              oracle[test & (attempts.traverse == q.name)], calibration, threshold)
        for q in queries}
    report["threshold_sweep_test"] = _sweep(attempts.select(test), oracle[test], threshold)
    for name in ("validation", "test"):
        plot_reliability(args.out / f"reliability_{'val' if name == 'validation' else 'test'}.png",
                         report["reliability"][name], f"{name} split")
    report["kidnap"] = {f"{q.name} ({q.condition})": _kidnap(reference_map, q, descriptors[q.name], config)
                        for q in queries}
    head = _head_map(reference_map, args.out / "head_map")
    report["unknown_route"] = {f"{q.name} ({q.condition})": _unknown_route(head, q, descriptors[q.name], config,
                                                                             calibration)
                               for q in queries}
    report["seconds"] = time.perf_counter() - started
    (args.out / "evidence.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _oracle(reference_map, queries, descriptors, attempts, config):
    """Oracle-window Base (G) error of every attempt's newest keyframe (paper: lambda 0.1, e = 1)."""
    base_g = dataclasses.replace(config, lam=0.1, speed_ratios=(1.0,))
    errors = np.full(len(attempts.margins), np.nan)
    for query in queries:
        mine = np.flatnonzero(attempts.traverse == query.name)
        errors[mine] = oracle_errors(reference_map, query, descriptors[query.name],
                                     [attempts.query_times[i] for i in mine], base_g)
    return errors


def _scores(attempts, oracle, calibration, threshold):
    """Availability, wrong fixes, accuracy of published fixes vs the oracle window, ellipse coverage."""
    confidence = np.array([calibration.confidence(m, n) for m, n in zip(attempts.margins, attempts.streaks)])
    published = confidence >= threshold
    assert np.array_equal(published, attempts.published), "replayed publication differs from the calibration's"
    errors, oracle = attempts.errors_m[published], oracle[published]
    coverage = reliability(attempts, calibration, threshold)
    return {
        "keyframes": int(len(published)),
        "fixes": int(published.sum()),
        "availability": float(published.mean()) if len(published) else None,
        "wrong_fixes": int((errors > 10).sum()),
        "wrong_fix_rate": float((errors > 10).mean()) if errors.size else None,
        "streaming_accuracy": {f"{t:g}m": float((errors <= t).mean()) if errors.size else None for t in THRESHOLDS},
        "oracle_base_g_accuracy": {f"{t:g}m": float((oracle <= t).mean()) if oracle.size else None
                                   for t in THRESHOLDS},
        "coverage_95": coverage["coverage_95"],
        "coverage_95_correct": coverage["coverage_95_correct"],
    }


def _sweep(attempts, oracle, threshold):
    """Test keyframes by confidence threshold: availability, wrong fixes, streaming vs oracle at 10 m."""
    confidence = attempts.confidences
    rows = []
    for level in sorted({0.0, 0.3, 0.5, 0.6, 0.7, 0.8, round(threshold, 3)}):
        chosen = confidence >= level
        rows.append({
            "threshold": level, "fixes": int(chosen.sum()), "availability": float(chosen.mean()),
            "wrong_fix_rate": float((attempts.errors_m[chosen] > 10).mean()) if chosen.any() else None,
            "streaming_acc10": float((attempts.errors_m[chosen] <= 10).mean()) if chosen.any() else None,
            "oracle_acc10": float((oracle[chosen] <= 10).mean()) if chosen.any() else None,
        })
    return rows


def _kidnap(reference_map, query, values, config):
    """Frames of the first third, then frames from 300 m further on, stamps continuing."""
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
            "fixes_after": len(wrong) + len(correct),
            "statuses_first_10": [o["status"] for o in outcome[:10]]}


def _head_map(reference_map, head_dir):
    path = reference_map.path_length_m
    keep = path < 0.4 * path[-1]
    part = MapPart("head", "x", np.asarray(reference_map.times)[keep], np.asarray(reference_map.positions)[keep],
                   np.asarray(reference_map.headings)[keep], np.asarray(reference_map.descriptors)[keep])
    return write_map(head_dir, [part], zone=str(reference_map.zone), fingerprint=reference_map.fingerprint,
                     encoder={})


def _unknown_route(head, query, values, config, calibration):
    """The query's last 40 % (not in the head map): every fix there is wrong."""
    tail = query.path_length_m > 0.6 * query.path_length_m[-1]
    localizer = StreamingLocalizer(head, config, calibration=calibration)
    estimates = [localizer.update(s, descriptor=v) for s, v in zip(query.times_s[tail], values[tail])]
    keyframes = [e for e in estimates if e.is_keyframe]
    return {"keyframes": len(keyframes), "fixes": sum(e.has_fix for e in keyframes)}


if __name__ == "__main__":
    main()
