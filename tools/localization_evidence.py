"""Evidence for the streaming localizer on the synthetic world (no oracle windows).

Two synthetic worlds (seqvpr synth, same generator, different seeds, so different roads):
the *calibration world* (``--calibration-seed``, default 1) and the *test world*
(``--seed``, default 0, the demo's). Each has a reference (survey) traverse, made into a
map with the demo's untrained encoder, and four query traverses in other conditions.
Everything the localizer learns from data is fitted on the calibration world, its queries
replayed against its own map: the confidence (margin and streak of consistent
keyframes), the covariance and the publishing threshold (the lowest confidence at which
those fixes were at most 1 % wrong). The test world's queries are then replayed through
the calibrated localizer against the test world's map:

- availability (keyframes with a fix), wrong-fix rate (> 10 m), accuracy of the fixed
  keyframes at 2/3/5/10 m beside oracle-window Base (G) on the same keyframes (the query
  aligned to its true reference stretch with the paper's lambda = 0.1 on the encoder's
  own descriptors, as the offline protocol does), and how often the 95 % covariance
  ellipse holds the truth; per query, and a threshold sweep;
- a kidnap per query: two stretches 300 m apart spliced together (stamps continuing);
- routes not in the map: each test query's last 40 % against a map of the reference's
  first 40 %, and every calibration-world query against the test world's map.

Usage (worlds and the untrained encoder in OUT are reused when present; maps, descriptors
and the results, OUT/<fp>/evidence[_still<c>|_odometry<s>m].json and reliability plots, are
kept per encoder fingerprint <fp>)::

    .venv/bin/python tools/localization_evidence.py --out /tmp/evidence
    .venv/bin/python tools/localization_evidence.py --out /tmp/evidence --still-similarity 0.85   # stops left out
    .venv/bin/python tools/localization_evidence.py --out /tmp/evidence --odometry-spacing-m 8    # on odometry
    .venv/bin/python tools/localization_evidence.py --out /tmp/evidence --model run/best.pt   # another encoder
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
from seqvpr.extraction import encode_images, encoder_fingerprint
from seqvpr.localization import LocalizerConfig, MapConfig, MapPart, StreamingLocalizer, build_map, load_map, write_map
from seqvpr.localization.calibration import Calibration, calibrated_settings, save_calibration
from seqvpr.localization.plots import plot_reliability
from seqvpr.localization.validation import (Attempts, calibrate, confidences, keyframe_attempts, oracle_errors,
                                            reliability)
from seqvpr.vpr import load_encoder

CONDITIONS = "overcast,sunny,snow,dusk,night"
THRESHOLDS = (2.0, 3.0, 5.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--length-m", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the test world (default 0, the demo's)")
    parser.add_argument("--calibration-seed", type=int, default=1,
                        help="seed of the world the localizer is calibrated on (default 1)")
    parser.add_argument("--config", type=Path, default=Path("config/localization.yaml"),
                        help="localizer settings (default config/localization.yaml)")
    parser.add_argument("--no-centre", dest="centre", action="store_false",
                        help="maps without condition centring")
    parser.add_argument("--odometry-spacing-m", type=float,
                        help="keyframes every this many metres of odometry, aligned on distance (default: time)")
    parser.add_argument("--odometry-scale", type=float, default=1.0,
                        help="odometry = travelled distance x this (default 1.0; 1.02 reads 2 %% long)")
    parser.add_argument("--still-similarity", type=float,
                        help="on time: take keyframes this alike (cosine) for a standing robot (default: the config's)")
    parser.add_argument("--no-calibration-off-map", dest="calibration_off_map", action="store_false",
                        help="calibrate on the calibration world's in-map keyframes only")
    parser.add_argument("--model", type=Path,
                        help="encoder checkpoint (default: the demo's untrained encoder, OUT/encoder.pt)")
    args = parser.parse_args()
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    started = time.perf_counter()
    test_root, calibration_root = args.out, args.out / f"calibration_world{args.calibration_seed}"
    _render(test_root, args.seed, args.length_m)
    _render(calibration_root, args.calibration_seed, args.length_m)
    from seqvpr.cli.demo import _untrained_encoder

    model = args.model or _untrained_encoder(test_root / "prepared", args.out / "encoder.pt", args.seed)
    encoder = load_encoder(model).eval()
    # Maps and descriptors are kept per encoder, so several encoders can share the worlds.
    tag = encoder_fingerprint(encoder)
    suffix = "" if args.centre else "_uncentred"
    test = _world(test_root, model, encoder, MapConfig(centre=args.centre), f"map{suffix}", tag)
    calibration_world = _world(calibration_root, model, encoder, MapConfig(centre=args.centre), f"map{suffix}", tag)
    # Base (G) sees the encoder's descriptors as they are (no centring).
    raw_maps = [world["map"] if not args.centre else _world(root, model, encoder, MapConfig(centre=False),
                                                            "map_uncentred", tag)["map"]
                for world, root in ((test, test_root), (calibration_world, calibration_root))]
    config = load_config(args.config, LocalizerConfig)
    if args.still_similarity is not None:
        config = dataclasses.replace(config, still_similarity=args.still_similarity)
    odometry, mode = None, "" if config.still_similarity is None else f"_still{config.still_similarity:g}"
    if args.odometry_spacing_m is not None:
        config = dataclasses.replace(config, query_spacing_m=args.odometry_spacing_m)
        odometry, mode = args.odometry_scale, f"_odometry{args.odometry_spacing_m:g}m"

    # The proposals, margins and streaks do not depend on the calibration: one replay with
    # the built-in mapping gives the attempts to calibrate on: the calibration world's
    # queries on its map and, as off-map negatives, their last 60 % on a map of its first 40 %.
    calibration_head = _head_map(raw_maps[1], calibration_root / tag / f"head_map{suffix}",
                                 MapConfig(centre=args.centre))
    parts = [_attempts(calibration_world, config, Calibration(), odometry)]
    if args.calibration_off_map:
        parts.append(_off_map_attempts(calibration_head, calibration_world, config, odometry))
    validation_raw = Attempts.concatenate(parts)
    calibration = dataclasses.replace(calibrate(validation_raw, config.confidence_threshold),
                                      settings=calibrated_settings(config))
    save_calibration(calibration, test["map"].root)
    threshold = calibration.publish_threshold if config.confidence_threshold is None else config.confidence_threshold
    validation = _attempts(calibration_world, config, calibration, odometry)
    attempts = _attempts(test, config, calibration, odometry)
    queries = test["queries"]
    report = {
        "model": str(model), "encoder_fingerprint": tag, "reference": test["reference"].name,
        "seeds": {"test": args.seed, "calibration": args.calibration_seed}, "centred": args.centre,
        "odometry_scale": odometry, "calibration_keyframes": int(len(validation_raw.stamps)),
        "calibration_off_map": args.calibration_off_map, "config": config_to_dict(config),
        "calibration": config_to_dict(calibration), "threshold": threshold,
        "best_window_within_10m": {"calibration": float((validation.errors_m <= 10).mean()),
                                   "test": float((attempts.errors_m <= 10).mean())},
        "reliability": {"calibration": reliability(validation, calibration, threshold),
                        "test": reliability(attempts, calibration, threshold)},
    }
    report["nearest_frame_within_10m"] = {
        f"{q.name} ({q.condition})": {"centred" if m.centred else "uncentred":
                                      _nearest_frame(m, q, test["descriptors"][q.name])
                                      for m in dict.fromkeys((test["map"], raw_maps[0]))}
        for q in queries}
    oracle = _oracle(raw_maps[0], queries, test["descriptors"], attempts, config)
    validation_oracle = _oracle(raw_maps[1], calibration_world["queries"], calibration_world["descriptors"],
                                validation, config)
    report["splits"] = {"calibration": _scores(validation, validation_oracle, calibration, threshold),
                        "test": _scores(attempts, oracle, calibration, threshold)}
    report["per_query_test"] = {
        f"{q.name} ({q.condition})": _scores(attempts.select(attempts.traverse == q.name),
                                              oracle[attempts.traverse == q.name], calibration, threshold)
        for q in queries}
    report["threshold_sweep_test"] = _sweep(attempts, oracle, calibration, threshold)
    for name in ("calibration", "test"):
        plot = args.out / tag / f"reliability_{name}{mode}.png"
        plot_reliability(plot, report["reliability"][name], f"{name} world")
    report["kidnap"] = {f"{q.name} ({q.condition})": _kidnap(test["map"], q, test["descriptors"][q.name], config,
                                                              odometry)
                        for q in queries}
    head = _head_map(raw_maps[0], args.out / tag / f"head_map{suffix}", MapConfig(centre=args.centre))
    report["unknown_route"] = {f"{q.name} ({q.condition})": _unknown_route(head, q, test["descriptors"][q.name],
                                                                             config, calibration, 0.6, odometry)
                               for q in queries}
    report["other_world"] = {
        f"{q.name} ({q.condition})": _unknown_route(test["map"], q, calibration_world["descriptors"][q.name], config,
                                                    calibration, 0.0, odometry)
        for q in calibration_world["queries"]}
    report["seconds"] = time.perf_counter() - started
    name = f"evidence{mode}.json"
    (args.out / tag / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _render(root: Path, seed: int, length_m: float) -> None:
    """A synthetic world in five conditions, prepared, under ``root`` (kept if present)."""
    raw, prepared = root / "raw", root / "prepared"
    if not prepared.is_dir():
        assert seqvpr(["synth", "--out", str(raw), "--seed", str(seed), "--length-m", str(length_m),
                       "--width", "120", "--height", "90", "--conditions", CONDITIONS]) == 0
        assert seqvpr(["prepare-robotcar", str(raw), "--out", str(prepared)]) == 0


def _world(root: Path, model: Path, encoder, map_config: MapConfig, map_name: str, tag: str) -> dict:
    """The world's map of its first traverse and its query traverses' descriptors (cached in root/tag)."""
    traverses = find_traverses(root / "prepared")
    reference, queries = traverses[0], traverses[1:]
    map_dir = root / tag / map_name
    build_map([reference.root], model, map_dir, map_config, progress=False)  # returns a complete map as it is
    descriptors = {}
    for query in queries:
        cache = root / tag / "descriptors" / f"{query.name}.npy"
        if not cache.is_file():
            values, _, _ = encode_images(encoder, [query.image_path(i) for i in range(len(query))])
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, values)
        descriptors[query.name] = np.load(cache)
    return {"reference": reference, "queries": queries, "map": load_map(map_dir), "descriptors": descriptors}


def _nearest_frame(reference_map, query, values) -> float:
    """Share of keyframes whose nearest map frame (descriptors as the localizer aligns them) is within 10 m."""
    localizer = StreamingLocalizer(reference_map, LocalizerConfig(query_length=2, min_query_length=2),
                                   calibration=Calibration())
    hits = []
    for stamp, value, truth in zip(query.times_s, values, query.positions):
        keyframes = localizer.counters["keyframes"]
        localizer.update(float(stamp), descriptor=value)
        if localizer.counters["keyframes"] > keyframes:
            row = int(np.argmax(np.asarray(reference_map.descriptors) @ localizer.query_descriptors[-1]))
            hits.append(np.hypot(*(reference_map.positions[row] - truth)) <= 10.0)
    return float(np.mean(hits))


def _off_map_attempts(head, world: dict, config: LocalizerConfig, odometry: float | None) -> Attempts:
    """The world's queries past 60 % of their path on a map of its reference's first 40 %: all wrong."""
    parts = []
    for query in world["queries"]:
        tail = query.path_length_m >= 0.6 * query.path_length_m[-1]
        parts.append(keyframe_attempts(head, [query.subset(tail)], [world["descriptors"][query.name][tail]], config,
                                       Calibration(), odometry))
    return Attempts.concatenate(parts)


def _attempts(world: dict, config: LocalizerConfig, calibration: Calibration, odometry: float | None) -> Attempts:
    return Attempts.concatenate([keyframe_attempts(world["map"], [q], [world["descriptors"][q.name]], config,
                                                   calibration, odometry) for q in world["queries"]])


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
    confidence = confidences(attempts, calibration)
    published = (confidence >= threshold) & ~attempts.vetoed
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


def _sweep(attempts, oracle, calibration, threshold):
    """Test keyframes by confidence threshold: fixes, wrong fixes, 10 m accuracy beside the oracle, ellipse coverage."""
    confidence = attempts.confidences
    rows = []
    for level in sorted({0.0, 0.3, 0.5, 0.6, 0.7, 0.8, round(threshold, 3)}):
        chosen = (confidence >= level) & ~attempts.vetoed
        coverage = reliability(attempts, calibration, level)
        rows.append({
            "threshold": level, "fixes": int(chosen.sum()), "availability": float(chosen.mean()),
            "wrong_fix_rate": float((attempts.errors_m[chosen] > 10).mean()) if chosen.any() else None,
            "streaming_acc10": float((attempts.errors_m[chosen] <= 10).mean()) if chosen.any() else None,
            "oracle_acc10": float((oracle[chosen] <= 10).mean()) if chosen.any() else None,
            "coverage_95": coverage["coverage_95"], "coverage_95_correct": coverage["coverage_95_correct"],
        })
    return rows


def _kidnap(reference_map, query, values, config, odometry):
    """Frames of the first third, then frames from 300 m further on, stamps (and odometry) continuing."""
    path = query.path_length_m
    first = np.flatnonzero(path < path[-1] / 3)[-200:]
    second = np.flatnonzero(path > path[first[-1]] + 300)[:300]
    period = np.median(np.diff(query.times_s))
    stamps = query.times_s[first[0]] + period * np.arange(len(first) + len(second))
    rows = np.concatenate([first, second])
    step = float(np.median(np.diff(path[first])))
    travelled = np.concatenate([path[first], path[first[-1]] + step + path[second] - path[second[0]]])
    localizer = StreamingLocalizer(reference_map, config)
    outcome = []
    for i, (stamp, row) in enumerate(zip(stamps, rows)):
        estimate = localizer.update(stamp, descriptor=values[row],
                                    odometry=None if odometry is None else odometry * float(travelled[i]))
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


def _head_map(raw_map, head_dir, map_config):
    """A map of the reference's first 40 % (built from its uncentred descriptors)."""
    path = raw_map.path_length_m
    keep = path < 0.4 * path[-1]
    part = MapPart("head", "x", np.asarray(raw_map.times)[keep], np.asarray(raw_map.positions)[keep],
                   np.asarray(raw_map.headings)[keep], np.asarray(raw_map.descriptors)[keep])
    return write_map(head_dir, [part], zone=str(raw_map.zone), fingerprint=raw_map.fingerprint, encoder={},
                     config=map_config)


def _unknown_route(head, query, values, config, calibration, tail, odometry):
    """The query past ``tail`` of its path, on a map that does not hold it: every fix is wrong."""
    tail = query.path_length_m >= tail * query.path_length_m[-1]
    localizer = StreamingLocalizer(head, config, calibration=calibration)
    travelled = query.path_length_m[tail]
    estimates = [localizer.update(s, descriptor=v, odometry=None if odometry is None else odometry * float(d))
                 for s, v, d in zip(query.times_s[tail], values[tail], travelled)]
    keyframes = [e for e in estimates if e.is_keyframe]
    return {"keyframes": len(keyframes), "fixes": sum(e.has_fix for e in keyframes)}


if __name__ == "__main__":
    main()
