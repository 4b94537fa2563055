"""tools/table2.py: per-run accuracy tables aggregated over seeds (mean, sample std, min, max)."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "table2.py"


@pytest.fixture(scope="module")
def table2():
    spec = importlib.util.spec_from_file_location("table2_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _write_accuracy(path: Path, model: str, values: dict[tuple[str, str], dict[float, float]]) -> None:
    """An accuracy.csv like `seqvpr evaluate` writes: max and mean rows; mean rows get other numbers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    thresholds = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 15.0, 20.0)
    columns = ["method", "model", "alignment", "condition", "metric", "sequences", "median_error_m",
               *[f"acc@{t:g}m" for t in thresholds]]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for (alignment, condition), by_threshold in values.items():
            for metric, offset in (("max", 0.0), ("mean", 50.0)):
                writer.writerow([f"{model} ({alignment})", model, alignment, condition, metric, 10, 7.5,
                                 *[by_threshold.get(t, 0.0) + offset for t in thresholds]])


def _study(table2, root: Path, seeds=(0, 1, 2)):
    return table2.Study(root, (0,), ("decdtw",), tuple(seeds), 40, "day")


def _fake_world(table2, study) -> None:
    world = study.world(0)
    for name in ("pairs/summary.json", "model/encoder.pt", "evaluation/results.json"):
        (world / name).parent.mkdir(parents=True, exist_ok=True)
        (world / name).write_text("{}")
    _write_accuracy(world / "evaluation" / "accuracy.csv", "base", {
        ("dtw", "snow"): {5.0: 10.0}, ("dtw", "all"): {5.0: 5.0},
        ("gdtw", "snow"): {5.0: 20.0}, ("gdtw", "all"): {5.0: 12.5},
    })


def test_mean_and_spread_over_seeds_from_run_files(table2, tmp_path):
    study = _study(table2, tmp_path)
    _fake_world(table2, study)
    snow_at_5 = [20.0, 30.0, 40.0]
    for seed, value in zip(study.seeds, snow_at_5):
        evaluation = study.evaluation(0, "decdtw", seed)
        _write_accuracy(evaluation / "accuracy.csv", "DecDTW",
                        {("gdtw", "snow"): {5.0: value, 2.0: 1.0}, ("gdtw", "all"): {5.0: value / 2}})
        (evaluation / "results.json").write_text("{}")

    rows = table2.collect(study)[0]
    assert rows["Base (D)"][0][("snow", 5.0)] == 10.0
    assert rows["Base (G)"][0][("all", 5.0)] == 12.5
    cells = table2.summarise(rows["DecDTW"])
    cell = cells[("snow", 5.0)]
    assert cell.mean == pytest.approx(30.0)
    assert cell.std == pytest.approx(10.0)  # sample std (ddof 1) of 20, 30, 40
    assert (cell.low, cell.high, cell.seeds) == (20.0, 40.0, 3)
    assert cells[("all", 5.0)].mean == pytest.approx(15.0)
    assert cells[("snow", 2.0)].std == 0.0

    table = table2.markdown_table({name: table2.summarise(runs) for name, runs in rows.items()}, 3)
    lines = table.splitlines()
    assert lines[0].startswith("| Method | seeds | snow @2 m | snow @3 m | snow @5 m | snow @10 m | all @2 m")
    decdtw = next(line for line in lines if line.startswith("| DecDTW"))
    assert decdtw.split(" | ")[1] == "3/3"
    assert decdtw.split(" | ")[4] == "30.0 ± 10.0"
    base = next(line for line in lines if line.startswith("| Base (G)"))
    assert base.split(" | ")[1:5] == ["-", "0.0", "0.0", "20.0"]


def test_unfinished_runs_are_left_out_and_counted(table2, tmp_path):
    study = table2.Study(tmp_path, (0,), ("otam", "decdtw"), (0, 1, 2), 40, "day")
    _fake_world(table2, study)
    done = study.evaluation(0, "decdtw", 1)
    _write_accuracy(done / "accuracy.csv", "DecDTW", {("gdtw", "all"): {5.0: 33.0}})
    (done / "results.json").write_text("{}")
    unfinished = study.evaluation(0, "decdtw", 2)  # accuracy.csv written, results.json not yet
    _write_accuracy(unfinished / "accuracy.csv", "DecDTW", {("gdtw", "all"): {5.0: 99.0}})

    runs = table2.collect(study)[0]["DecDTW"]
    assert len(runs) == 1
    cell = table2.summarise(runs)[("all", 5.0)]
    assert (cell.mean, cell.std, cell.seeds) == (33.0, 0.0, 1)
    report, figure = tmp_path / "table.md", tmp_path / "figure.png"
    table2.write_outputs(study, report, figure)
    text = report.read_text()
    assert "| DecDTW | 1/3 |" in text
    assert "| OTAM | 0/3 | - | - | - | - | - | - | - | - |" in text  # planned, nothing finished
    assert "Not finished yet: OTAM, DecDTW." in text
    assert figure.stat().st_size > 0


def test_summaries_match_numpy_on_random_runs(table2):
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 100, size=(4, 2, 3))  # seeds x conditions x thresholds
    conditions, thresholds = ("night", "all"), (2.0, 5.0, 10.0)
    runs = [{(c, t): float(values[s, i, j]) for i, c in enumerate(conditions) for j, t in enumerate(thresholds)}
            for s in range(4)]
    cells = table2.summarise(runs)
    for i, condition in enumerate(conditions):
        for j, threshold in enumerate(thresholds):
            column = values[:, i, j]
            cell = cells[(condition, threshold)]
            assert cell.mean == pytest.approx(sum(column) / 4)
            assert cell.std == pytest.approx((sum((column - column.mean()) ** 2) / 3) ** 0.5)
            assert (cell.low, cell.high) == (column.min(), column.max())


def test_read_accuracy_refuses_a_file_with_several_models(table2, tmp_path):
    path = tmp_path / "accuracy.csv"
    _write_accuracy(path, "base", {("gdtw", "all"): {5.0: 1.0}})
    with open(path, "a", newline="") as handle:
        handle.write("X (G),X,gdtw,all,max,10,7.5,0,0,0,0,0,0,0,0\n")
    with pytest.raises(ValueError, match="several models"):
        table2.read_accuracy(path, "gdtw")
    assert table2.read_accuracy(path, "gdtw", "base")[("all", 5.0)] == 1.0
