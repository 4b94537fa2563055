"""The paper's Table 2 on the synthetic world: fine-tuning losses against Base (D) and Base (G).

For every world seed S, every loss and every training seed K, with the same budget of
steps for every loss:

1. the world: ``seqvpr demo --out ROOT/worlds/wS --seed S --finetune-steps 0`` (rendered
   world, prepared traverses, pairs with the test region geographically disjoint from
   train/val, the untrained demo encoder, and the Base (D) / Base (G) rows);
2. the validation split (``--val day``, the default): the demo's val split holds only the
   night traverse, which the untrained encoder does not localise, so selecting ``best.pt``
   on it selects nothing. This builds val pairs of the *training* query traverses in the
   train/val region (the val preset of ``seqvpr pairs``: starts every 12 m, 20 queries
   per reference, another seed) into ``ROOT/worlds/wS/pairs-val-day``; the test region
   is never read. ``--val demo`` keeps the demo's night val split;
3. ``seqvpr finetune`` into ``ROOT/runs/wS/steps<N>-val-<V>/<loss>-seed<K>`` with
   ``config/finetune-cpu.yaml``, ``--trainable netvlad`` and one frozen-feature cache per
   world (``ROOT/worlds/wS/frozen-cache``);
4. ``seqvpr evaluate`` of the run's ``best.pt`` on the test pairs with GDTW
   (``ROOT/evals/...``, same layout).

Every step that finished is skipped when the tool runs again (a run killed midway resumes
from its ``last.pt``), so the tool can be killed and restarted at any moment. The first
run of each world goes alone (it fills the world's frozen-feature cache); the rest go
``--jobs`` at a time, one torch thread each, seed by seed (all losses of seed 0 first).

Whatever has finished is aggregated into ``--report`` (Markdown: per world, one row per
method, per condition and threshold the mean and sample standard deviation over seeds and
the number of seeds) and ``--figure`` (accuracy against threshold over all conditions,
mean with the min-max band over seeds, and accuracy at 5 m per condition).

Usage::

    .venv/bin/python tools/table2.py --root /tmp/table2 --world-seeds 0 1 --seeds 0 1 2 \\
        --losses otam along-gt dilate decdtw --budget-steps 100 --jobs 2 \\
        --report /tmp/table2/table2.md --figure docs/images/table2.png
    .venv/bin/python tools/table2.py ... --aggregate-only     # tables and figure from what finished
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger("table2")

REPOSITORY = Path(__file__).resolve().parent.parent
CPU_PRESET = REPOSITORY / "config" / "finetune-cpu.yaml"
LABELS = {"otam": "OTAM", "along-gt": "Along-GT", "dilate": "DILATE", "decdtw": "DecDTW", "soft-dtw": "Soft-DTW"}
BASE_ROWS = (("dtw", "Base (D)"), ("gdtw", "Base (G)"))
THRESHOLDS_M = (2.0, 3.0, 5.0, 10.0)
# Background processes: one torch/BLAS thread each, so --jobs processes use --jobs cores.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------------------
# Aggregation (pure: per-run accuracy tables in, mean and spread out)

Accuracy = dict[tuple[str, float], float]  # (condition, threshold m) -> % of sequences


@dataclass(frozen=True)
class Cell:
    """One table cell over seeds: mean, sample standard deviation (0 for one seed), min, max."""

    mean: float
    std: float
    low: float
    high: float
    seeds: int


def read_accuracy(path: str | os.PathLike, alignment: str, model: str | None = None) -> Accuracy:
    """Max-error accuracy of one alignment method from an ``accuracy.csv`` of ``seqvpr evaluate``.

    Args:
        path: the evaluation's ``accuracy.csv``.
        alignment: ``gdtw`` or ``dtw``.
        model: the model's name; None: the file must hold a single model.

    Raises:
        ValueError: no such rows, or several models and ``model`` is None (naming the file).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["metric"] == "max" and row["alignment"] == alignment]
    models = sorted({row["model"] for row in rows})
    if model is None and len(models) > 1:
        raise ValueError(f"{path}: several models ({', '.join(models)}); name one")
    rows = [row for row in rows if model is None or row["model"] == model]
    if not rows:
        raise ValueError(f"{path}: no max-error rows for alignment {alignment!r} and model {model!r}")
    accuracy: Accuracy = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("acc@") and key.endswith("m"):
                accuracy[(row["condition"], float(key[4:-1]))] = float(value)
    return accuracy


def summarise(runs: Sequence[Accuracy]) -> dict[tuple[str, float], Cell]:
    """Mean and spread over runs (seeds) of every (condition, threshold) the runs share."""
    if not runs:
        raise ValueError("no runs to summarise")
    keys = set(runs[0]).intersection(*runs[1:])
    cells = {}
    for key in keys:
        values = np.array([run[key] for run in runs], dtype=float)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        cells[key] = Cell(float(values.mean()), std, float(values.min()), float(values.max()), len(values))
    return cells


def conditions_of(cells: Iterable[Mapping[tuple[str, float], Cell]]) -> list[str]:
    """Conditions in table order: sorted, ``all`` last."""
    found = {condition for table in cells for condition, _ in table}
    return sorted(found - {"all"}) + (["all"] if "all" in found else [])


def markdown_table(rows: Mapping[str, Mapping[tuple[str, float], Cell]], planned_seeds: int) -> str:
    """Methods as rows, condition x threshold as columns; each cell ``mean ± std``.

    Rows with one value and ``planned_seeds`` 0 (the untrained Base rows) show the value
    alone; a trained row names how many of the planned seeds finished.
    """
    conditions = conditions_of(rows.values())
    header = ["Method", "seeds"] + [f"{c} @{t:g} m" for c in conditions for t in THRESHOLDS_M]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, cells in rows.items():
        seeds = max((cell.seeds for cell in cells.values()), default=0)
        line = [method, "-" if method.startswith("Base") else f"{seeds}/{planned_seeds}"]
        for condition in conditions:
            for threshold in THRESHOLDS_M:
                cell = cells.get((condition, threshold))
                if cell is None:
                    line.append("-")
                elif method.startswith("Base") or cell.seeds == 1:
                    line.append(f"{cell.mean:.1f}")
                else:
                    line.append(f"{cell.mean:.1f} ± {cell.std:.1f}")
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Layout of ROOT


@dataclass(frozen=True)
class Study:
    """What to run and where."""

    root: Path
    world_seeds: tuple[int, ...]
    losses: tuple[str, ...]
    seeds: tuple[int, ...]
    budget_steps: int
    val: str

    def world(self, world_seed: int) -> Path:
        return self.root / "worlds" / f"w{world_seed}"

    def run(self, world_seed: int, loss: str, seed: int) -> Path:
        return self.root / "runs" / f"w{world_seed}" / self._budget() / f"{loss}-seed{seed}"

    def evaluation(self, world_seed: int, loss: str, seed: int) -> Path:
        return self.root / "evals" / f"w{world_seed}" / self._budget() / f"{loss}-seed{seed}"

    def _budget(self) -> str:
        return f"steps{self.budget_steps}-val-{self.val}"


def _world_done(world: Path) -> bool:
    return all((world / name).is_file() for name in
               ("pairs/summary.json", "model/encoder.pt", "evaluation/results.json", "evaluation/accuracy.csv"))


def _run_done(run: Path, budget_steps: int) -> bool:
    metrics = run / "metrics.csv"
    if not (run / "best.pt").is_file() or not metrics.is_file():
        return False
    with open(metrics, newline="", encoding="utf-8") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    return bool(steps) and steps[-1] >= budget_steps


def _evaluation_done(evaluation: Path) -> bool:
    return (evaluation / "results.json").is_file() and (evaluation / "accuracy.csv").is_file()


def collect(study: Study) -> dict[int, dict[str, list[Accuracy]]]:
    """Per world seed, per table row, the accuracy of every finished run (Base rows: one)."""
    results: dict[int, dict[str, list[Accuracy]]] = {}
    for world_seed in study.world_seeds:
        world = study.world(world_seed)
        rows: dict[str, list[Accuracy]] = {}
        if _world_done(world):
            for alignment, label in BASE_ROWS:
                rows[label] = [read_accuracy(world / "evaluation" / "accuracy.csv", alignment, "base")]
        for loss in study.losses:
            rows[LABELS[loss]] = [
                read_accuracy(study.evaluation(world_seed, loss, seed) / "accuracy.csv", "gdtw")
                for seed in study.seeds if _evaluation_done(study.evaluation(world_seed, loss, seed))
            ]
        results[world_seed] = rows
    return results


# ---------------------------------------------------------------------------------------
# Steps


def _seqvpr(arguments: Sequence[object], log: Path) -> float:
    """Runs ``python -m seqvpr ARGUMENTS`` with one thread, output appended to ``log``; returns seconds."""
    command = [sys.executable, "-m", "seqvpr", *map(str, arguments)]
    started = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT,
                                   env={**os.environ, **THREAD_ENV}, cwd=REPOSITORY, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit status {completed.returncode}; see {log}")
    return time.perf_counter() - started


def build_world(study: Study, world_seed: int) -> None:
    world = study.world(world_seed)
    if not _world_done(world):
        seconds = _seqvpr(["demo", "--out", world, "--seed", world_seed, "--finetune-steps", 0],
                          study.root / "logs" / f"world{world_seed}.log")
        LOGGER.info("world %d built in %.0f s", world_seed, seconds)
    if study.val == "day":
        build_day_val(world)


def build_day_val(world: Path) -> Path:
    """Val pairs of the training query traverses in the train/val region (see the module docstring)."""
    from seqvpr.config import load_yaml
    from seqvpr.data.pair_files import route_splits, write_pairs
    from seqvpr.data.pairs import PRESETS, build_pairs
    from seqvpr.data.tables import atomic_write_text
    from seqvpr.data.traverse import find_traverses
    from seqvpr.io import claim_output_dir

    out = world / "pairs-val-day"
    if (out / "summary.json").is_file():
        return out
    recorded = load_yaml(world / "pairs" / "seqvpr-options.yaml")
    traverses = find_traverses(world / "prepared", check_images=False)
    by_name = {traverse.name: traverse for traverse in traverses}
    train = next(split for split in route_splits(traverses, recorded.get("reference"), recorded["train_fraction"])
                 if split.name == "train")
    seed = int(recorded["seed"]) + 1000
    claim_output_dir(out, {"world": world, "queries": list(train.queries), "seed": seed}, command="table2 val")

    def pieces(name: str) -> list:
        mask = train.masks[name].astype(np.int8)
        edges = np.diff(np.concatenate([[0], mask, [0]]))
        runs = []
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            keep = np.zeros(len(mask), bool)
            keep[start:end] = True
            runs.append(by_name[name].subset(keep))
        return runs

    references = [piece for name in train.references for piece in pieces(name)]
    queries = [piece for name in train.queries for piece in pieces(name)]
    pairs, counts = build_pairs(references, queries, PRESETS["val"], np.random.default_rng(seed))
    by_condition: dict[str, list] = {}
    for pair in pairs:
        by_condition.setdefault(pair.query_condition, []).append(pair)
    for condition, condition_pairs in by_condition.items():
        write_pairs(out / f"val_{condition}.csv", condition_pairs)
    summary = {"queries": list(train.queries), "pairs": {c: len(p) for c, p in by_condition.items()},
               "counts": counts, "seed": seed}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    LOGGER.info("%s: day val pairs %s", out, summary["pairs"])
    return out


def train_and_evaluate(study: Study, world_seed: int, loss: str, seed: int) -> None:
    world, run, evaluation = study.world(world_seed), study.run(world_seed, loss, seed), \
        study.evaluation(world_seed, loss, seed)
    name = f"w{world_seed} {loss} seed {seed}"
    log = study.root / "logs" / f"w{world_seed}-{run.parent.name}-{loss}-seed{seed}.log"
    if not _run_done(run, study.budget_steps):
        train_files = sorted((world / "pairs").glob("train_*.csv"))
        val_dir = world / ("pairs-val-day" if study.val == "day" else "pairs")
        val_files = sorted(val_dir.glob("val_*.csv"))
        steps_per_epoch = math.ceil(sum(_rows(path) for path in train_files) / 8)
        epochs = math.ceil(study.budget_steps / steps_per_epoch)
        seconds = _seqvpr(["finetune", "--train", *train_files, "--val", *val_files,
                           "--traverses", world / "prepared", "--model", world / "model" / "encoder.pt",
                           "--out", run, "--config", CPU_PRESET, "--trainable", "netvlad", "--loss", loss,
                           "--seed", seed, "--epochs", epochs, "--max-steps", study.budget_steps,
                           "--cache-dir", world / "frozen-cache", "--no-progress"], log)
        LOGGER.info("%s: trained in %.0f s", name, seconds)
    if not _evaluation_done(evaluation):
        seconds = _seqvpr(["evaluate", *sorted((world / "pairs").glob("test_*.csv")),
                           "--traverses", world / "prepared", "--model", f"{LABELS[loss]}={run / 'best.pt'}",
                           "--methods", "gdtw", "--out", evaluation, "--no-progress"], log)
        LOGGER.info("%s: evaluated in %.0f s", name, seconds)


def _rows(path: Path) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in handle) - 1


def run_study(study: Study, jobs: int, report: Path, figure: Path) -> None:
    for world_seed in study.world_seeds:
        build_world(study, world_seed)
    tasks = [(world_seed, loss, seed) for seed in study.seeds for world_seed in study.world_seeds
             for loss in study.losses]
    # The first run of each world fills its frozen-feature cache alone; the worlds' first runs in parallel.
    first = [next(task for task in tasks if task[0] == world_seed) for world_seed in study.world_seeds]
    rest = [task for task in tasks if task not in first]
    failures = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for batch in (first, rest):
            futures = {pool.submit(train_and_evaluate, study, *task): task for task in batch}
            for future, task in futures.items():
                try:
                    future.result()
                except Exception as error:  # one failed run must not stop the others
                    failures.append(f"w{task[0]} {task[1]} seed {task[2]}: {error}")
                    LOGGER.error("%s", failures[-1])
                write_outputs(study, report, figure)
    if failures:
        raise SystemExit("failed runs:\n" + "\n".join(failures))


# ---------------------------------------------------------------------------------------
# Outputs


def write_outputs(study: Study, report: Path, figure: Path) -> None:
    from seqvpr.io import atomic_path

    results = collect(study)
    text = [f"Table 2 on the synthetic world: accuracy (%) of max-error GDTW localisation on the test pairs; "
            f"trained rows: mean ± sample std over seeds (seeds finished / planned), {study.budget_steps} steps "
            f"per run, val split '{study.val}'.", ""]
    for world_seed, rows in results.items():
        summaries = {method: summarise(runs) if runs else {} for method, runs in rows.items()}
        text += [f"World seed {world_seed}:", "", markdown_table(summaries, len(study.seeds)), ""]
        missing = [method for method, runs in rows.items() if len(runs) < (1 if method.startswith("Base")
                                                                           else len(study.seeds))]
        if missing:
            text += [f"Not finished yet: {', '.join(missing)}.", ""]
    with atomic_path(report) as temporary:
        temporary.write_text("\n".join(text), encoding="utf-8")
    plot(results, figure, study.budget_steps)


def plot(results: Mapping[int, Mapping[str, list[Accuracy]]], path: Path, budget_steps: int) -> None:
    """Accuracy (all conditions) against threshold with the seeds' min-max band; accuracy at 5 m per condition."""
    from seqvpr.plotting import pyplot, save_figure

    worlds = list(results)
    figure, axes = pyplot().subplots(2, len(worlds), figsize=(6.5 * len(worlds), 9), dpi=110, squeeze=False)
    colours = dict(zip(["Base (D)", "Base (G)", *LABELS.values()],
                       ["tab:gray", "black", "tab:orange", "tab:green", "tab:purple", "tab:red", "tab:brown"]))
    for column, world_seed in enumerate(worlds):
        summaries = {method: summarise(runs) for method, runs in results[world_seed].items() if runs}
        curve, bars = axes[0, column], axes[1, column]
        for method, cells in summaries.items():
            thresholds = sorted(t for condition, t in cells if condition == "all")
            mean = [cells[("all", t)].mean for t in thresholds]
            seeds = max(cell.seeds for cell in cells.values())
            label = method if method.startswith("Base") else f"{method} (n = {seeds} seeds)"
            style = "--" if method.startswith("Base") else "-"
            curve.plot(thresholds, mean, style, marker="o", ms=3, color=colours[method], label=label)
            if seeds > 1:
                curve.fill_between(thresholds, [cells[("all", t)].low for t in thresholds],
                                   [cells[("all", t)].high for t in thresholds], color=colours[method], alpha=0.15)
        curve.set_xlabel("threshold on the sequence's max error [m]")
        curve.set_ylabel("test sequences localised [%]")
        curve.set_title(f"world seed {world_seed}: all conditions (band: min-max over seeds)")
        curve.grid(alpha=0.3)
        curve.legend(fontsize=8)
        conditions = conditions_of(summaries.values())
        width = 0.8 / max(len(summaries), 1)
        for index, (method, cells) in enumerate(summaries.items()):
            positions = np.arange(len(conditions)) + (index - (len(summaries) - 1) / 2) * width
            means = [cells[(c, 5.0)].mean if (c, 5.0) in cells else np.nan for c in conditions]
            errors = [cells[(c, 5.0)].std if (c, 5.0) in cells else 0.0 for c in conditions]
            bars.bar(positions, means, width, yerr=errors, capsize=2, color=colours[method], label=method)
        bars.set_xticks(np.arange(len(conditions)), conditions)
        bars.set_ylabel("accuracy at 5 m [%] (error bar: std over seeds)")
        bars.set_title(f"world seed {world_seed}: accuracy at 5 m per condition, {budget_steps} steps per run")
        bars.grid(alpha=0.3, axis="y")
        bars.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="folder of worlds, runs, evaluations and logs")
    parser.add_argument("--world-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--losses", nargs="+", default=["otam", "along-gt", "dilate", "decdtw"], choices=list(LABELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds per loss")
    parser.add_argument("--budget-steps", type=int, required=True, help="optimiser steps per run (every loss)")
    parser.add_argument("--val", choices=("day", "demo"), default="day",
                        help="val split: day (training traverses, train/val region) or the demo's (night)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    parser.add_argument("--report", type=Path, default=None, help="Markdown tables (default ROOT/table2.md)")
    parser.add_argument("--figure", type=Path, default=None, help="PNG figure (default ROOT/table2.png)")
    parser.add_argument("--aggregate-only", action="store_true", help="only write the tables and figure")
    args = parser.parse_args(argv)
    if args.budget_steps < 1 or args.jobs < 1:
        parser.error("--budget-steps and --jobs must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    study = Study(args.root.resolve(), tuple(args.world_seeds), tuple(args.losses), tuple(args.seeds),
                  args.budget_steps, args.val)
    report = args.report or study.root / "table2.md"
    figure = args.figure or study.root / "table2.png"
    if args.aggregate_only:
        write_outputs(study, report, figure)
    else:
        run_study(study, args.jobs, report, figure)
    LOGGER.info("wrote %s and %s", report, figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
