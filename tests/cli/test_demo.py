"""`seqvpr demo`: the signal demo, and the main demo's table pinned (it is deterministic)."""

import subprocess
import sys

import pytest

from seqvpr.cli import main

# `seqvpr demo` (1 km route, seed 0) before the pipeline steps became library functions;
# the refactor and anything after it must leave these numbers as they are.
DEMO_TABLE_ROWS = [
    "| Base (D) | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 6.4 | 0.0 | 0.0 | 8.9 | 21.4 | 0.0 | 0.0 | 3.4 | 10.3 |",
    "| Base (G) | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 25.5 | 59.6 | 1.8 | 3.6 | 23.2 | 53.6 | 0.7 | 1.4 | 17.2 | 40.0 |",
    "| Indep | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 1.8 | 5.4 | 0.0 | 0.0 | 0.7 | 2.1 |",
    "Sequences per condition: night: 42, snow: 47, sunny: 56, all: 145.",
]


def test_signal_demo_prints_warp_errors_and_writes_a_plot(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "seqvpr", "demo", "--signals", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )
    lines = completed.stdout.splitlines()
    gdtw_line = next(line for line in lines if line.startswith("GDTW warp error"))
    dtw_line = next(line for line in lines if line.startswith("DTW  warp error"))
    gdtw_mean = float(gdtw_line.split("mean ")[1].split(" s")[0])
    dtw_mean = float(dtw_line.split("mean ")[1].split(" s")[0])
    # Continuous-time alignment recovers the known warp better than the discrete baseline.
    assert gdtw_mean < dtw_mean < 1.0
    plot = tmp_path / "alignment.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000


@pytest.mark.slow
def test_demo_table_is_pinned(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    table = (tmp_path / "demo" / "evaluation" / "accuracy_max_error.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| Base", "| Indep", "Sequences"))]
    assert rows == DEMO_TABLE_ROWS
    assert all(row in printed for row in DEMO_TABLE_ROWS)
    # Steps 6-7: the fine-tuned encoder gets its own rows (DTW, GDTW, retrieval) of 16
    # accuracies each, printed beside the Base rows.
    tuned = [line for line in table.splitlines() if line.startswith("| DecDTW")]
    assert [line.split("|")[1].strip() for line in tuned] == ["DecDTW (D)", "DecDTW (G)", "DecDTW Indep"]
    for line in tuned:
        assert line in printed
        accuracies = [float(cell) for cell in line.strip("|").split("|")[1:]]
        assert len(accuracies) == 16 and all(0.0 <= value <= 100.0 for value in accuracies)
    assert (tmp_path / "demo" / "finetune" / "best.pt").is_file()


def test_demo_options_come_from_a_config_file(tmp_path, capsys):
    (tmp_path / "demo.yaml").write_text("seed: 3\n")
    assert main(["demo", "--signals", "--out", str(tmp_path / "a"), "--config", str(tmp_path / "demo.yaml")]) == 0
    from_file = capsys.readouterr().out
    assert main(["demo", "--signals", "--out", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert capsys.readouterr().out == from_file
    assert main(["demo", "--signals", "--out", str(tmp_path / "a")]) == 0
    assert capsys.readouterr().out != from_file  # seed 0
    (tmp_path / "demo.yaml").write_text("seed: 3\nlength: 500\n")
    assert main(["demo", "--out", str(tmp_path / "b"), "--config", str(tmp_path / "demo.yaml")]) == 2
    assert "demo.yaml: unknown key(s) ['length'] for DemoOptions" in capsys.readouterr().err
