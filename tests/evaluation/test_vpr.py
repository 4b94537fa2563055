"""seqvpr.evaluation.vpr end to end: `seqvpr demo` on a tiny world, then `seqvpr evaluate` on its outputs."""

import csv
import json

import pytest

from seqvpr.cli import main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    # The fine-tuning steps (6-7) are covered by the slow pinned-demo test in tests/cli.
    code = main(["demo", "--out", str(out), "--length-m", "500", "--finetune-steps", "0"])
    assert code == 0
    return out


def test_demo_writes_tables_plots_and_a_meaningful_result(demo_run, capsys):
    evaluation = demo_run / "evaluation"
    table = (evaluation / "accuracy_max_error.md").read_text()
    assert "| Base (G) |" in table and "| Base (D) |" in table and "| Indep |" in table
    for name in ("error_cdf_max.png", "error_cdf_mean.png"):
        data = (evaluation / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    maps = sorted((evaluation / "maps").glob("*.png"))
    assert maps and all(path.stat().st_size > 10_000 for path in maps)
    rows = list(csv.DictReader((evaluation / "per_sequence.csv").open()))
    assert {row["alignment"] for row in rows} == {"dtw", "gdtw", "independent"}
    accuracy = {row["method"]: float(row["acc@10m"]) for row in csv.DictReader((evaluation / "accuracy.csv").open())
                if row["condition"] == "all" and row["metric"] == "max"}
    # A query covers ~90 m of a ~120 m reference window: placing it at random puts some
    # frame tens of metres off, so chance accuracy at 10 m is about 0. The untrained
    # encoder with GDTW must do clearly better, and better than DTW (the paper's finding).
    assert accuracy["Base (G)"] >= 15.0
    assert accuracy["Base (G)"] > accuracy["Base (D)"]
    # The demo is deterministic: its table on this 500 m route is pinned.
    assert [line for line in table.splitlines() if line.startswith(("| Base", "| Indep"))] == [
        "| Base (D) | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 5.3 | 10.5 | 10.5 | 0.0 | 2.2 | 4.4 | 4.4 |",
        "| Base (G) | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 91.7 | 0.0 | 0.0 | 15.8 | 78.9 | 0.0 | 0.0 | 6.7 | 57.8 |",
        "| Indep | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 5.3 | 0.0 | 0.0 | 0.0 | 2.2 |",
    ]
    results = json.loads((evaluation / "results.json").read_text())
    assert results["metadata"]["models"] == ["base"]
    log = (evaluation / "evaluate.log").read_text()
    assert "command: seqvpr evaluate" in log
    assert (evaluation / "evaluation.yaml").read_text().startswith("methods:")


def test_second_evaluation_reuses_cached_descriptors(demo_run, tmp_path, capsys):
    cache = demo_run / "evaluation" / "descriptors" / "base"
    stamps = {path: path.stat().st_mtime_ns for path in cache.glob("*.npz")}
    assert stamps
    pairs = sorted((demo_run / "pairs").glob("test_*.csv"))
    command = ["evaluate", *map(str, pairs), "--traverses", str(demo_run / "prepared"),
               "--model", f"base={demo_run / 'model' / 'encoder.pt'}", "--out", str(demo_run / "evaluation"),
               "--methods", "gdtw", "--no-progress"]
    tables = (demo_run / "evaluation" / "accuracy_max_error.md").read_bytes()
    # Other options than the recorded ones stop, naming them; nothing changes.
    assert main(command) == 2
    assert "config.methods (was ['dtw', 'gdtw', 'independent'], now ['gdtw'])" in capsys.readouterr().err
    assert (demo_run / "evaluation" / "accuracy_max_error.md").read_bytes() == tables
    # --overwrite rebuilds the results and keeps the descriptor cache (keyed by content).
    code = main([*command, "--overwrite"])
    assert code == 0
    assert "| Base (G) |" in capsys.readouterr().out and "| Base (D) |" not in (
        demo_run / "evaluation" / "accuracy_max_error.md").read_text()
    assert {path: path.stat().st_mtime_ns for path in cache.glob("*.npz")} == stamps


def test_demo_with_another_seed_stops_naming_it(demo_run, capsys):
    def files():
        return {path: path.stat().st_mtime_ns for path in demo_run.rglob("*") if path.is_file()}

    before = files()
    assert main(["demo", "--out", str(demo_run), "--length-m", "500", "--seed", "1"]) == 2
    error = capsys.readouterr().err
    assert "seed (was 0, now 1)" in error and "--overwrite" in error
    assert files() == before


def test_evaluate_names_missing_inputs(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.csv"), "--traverses", str(tmp_path), "--model",
                 "base=x.pt", "--out", str(tmp_path / "out")]) == 2
    assert "none.csv: no such pairs file" in capsys.readouterr().err
    pairs = tmp_path / "p.csv"
    pairs.write_text("x\n")
    assert main(["evaluate", str(pairs), "--traverses", str(tmp_path), "--model", "base=missing.pt",
                 "--out", str(tmp_path / "out")]) == 2
    assert "no such checkpoint file or descriptors folder missing.pt" in capsys.readouterr().err
    config = tmp_path / "evaluate.yaml"
    config.write_text("methods: [gdtw]\ngdtw:\n  lambda: 0.2\n")
    assert main(["evaluate", str(pairs), "--traverses", str(tmp_path), "--model", "base=missing.pt",
                 "--out", str(tmp_path / "out"), "--config", str(config)]) == 2
    assert "evaluate.yaml: gdtw: unknown key(s) ['lambda'] for GDTWConfig" in capsys.readouterr().err
    config.write_text("methods: [gdtw, hmm]\n")
    assert main(["evaluate", str(pairs), "--traverses", str(tmp_path), "--model", "base=missing.pt",
                 "--out", str(tmp_path / "out"), "--config", str(config)]) == 2
    assert "methods must be a non-empty subset of ('gdtw', 'dtw', 'independent')" in capsys.readouterr().err


def test_fine_tuned_models_get_their_own_rows(demo_run, tmp_path, capsys):
    import shutil

    checkpoint = demo_run / "model" / "encoder.pt"
    tuned = tmp_path / "tuned.pt"
    shutil.copy(checkpoint, tuned)
    pairs = sorted((demo_run / "pairs").glob("test_*.csv"))[:1]
    code = main(["evaluate", *map(str, pairs), "--traverses", str(demo_run / "prepared"),
                 "--model", f"base={checkpoint}", "--model", f"DecDTW={tuned}", "--out", str(tmp_path / "eval"),
                 "--methods", "gdtw", "dtw", "--no-progress"])
    assert code == 0
    table = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert {"Base (G)", "Base (D)", "DecDTW (G)", "DecDTW (D)"} <= set(rows)
    # The same weights under two names give the same accuracies.
    assert rows["Base (G)"].split("|")[2:] == rows["DecDTW (G)"].split("|")[2:]


def test_precomputed_descriptor_folder_gives_the_same_table(demo_run, tmp_path, capsys):
    import shutil

    cache = demo_run / "evaluation" / "descriptors" / "base"
    folder = tmp_path / "precomputed"
    shutil.copytree(cache, folder)
    pairs = sorted((demo_run / "pairs").glob("test_*.csv"))
    code = main(["evaluate", *map(str, pairs), "--traverses", str(demo_run / "prepared"),
                 "--model", f"base={folder}", "--out", str(tmp_path / "eval"), "--no-progress"])
    assert code == 0
    capsys.readouterr()

    def gdtw_row(path):
        return next(line for line in path.read_text().splitlines() if line.startswith("| Base (G) |"))

    # (Other tests rewrite the demo's tables with fewer methods; the Base (G) row stays.)
    assert gdtw_row(tmp_path / "eval" / "accuracy_max_error.md") == gdtw_row(
        demo_run / "evaluation" / "accuracy_max_error.md")
    (folder / next(iter(sorted(p.name for p in folder.glob("*.npz"))))).unlink()
    assert main(["evaluate", *map(str, pairs), "--traverses", str(demo_run / "prepared"),
                 "--model", f"base={folder}", "--out", str(tmp_path / "eval2"), "--no-progress"]) == 2
    assert "no descriptors file for traverse" in capsys.readouterr().err
