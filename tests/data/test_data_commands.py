"""The synth -> prepare-robotcar -> pairs commands, end to end on a tiny world."""

import json

import pytest

from seqvpr.cli import build_parser, main
from seqvpr.data.traverse import find_traverses


def test_commands_chain(tmp_path, capsys):
    raw, prepared, pairs = tmp_path / "raw", tmp_path / "prepared", tmp_path / "pairs"
    assert main(["synth", "--out", str(raw), "--seed", "1", "--length-m", "420", "--width", "32",
                 "--height", "24", "--fps", "4", "--conditions", "overcast,night", "--workers", "1"]) == 0
    assert "wrote 2 traverses" in capsys.readouterr().out
    assert main(["prepare-robotcar", str(raw), "--out", str(prepared), "--long-side", "32"]) == 0
    assert {traverse.condition for traverse in find_traverses(prepared)} == {"overcast", "night"}
    assert main(["pairs", str(prepared), "--out", str(pairs), "--train-fraction", "0.4"]) == 0
    output = capsys.readouterr().out
    summary = json.loads((pairs / "summary.json").read_text())
    assert summary["splits"]["test"]["pairs"] > 0 and "test:" in output
    assert (pairs / "test_night.csv").is_file()


def test_bad_input_is_a_clean_error(tmp_path, capsys):
    assert main(["prepare-robotcar", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no RobotCar traverses" in capsys.readouterr().err
    assert main(["pairs", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no traverses found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["synth"])  # --out is required
