"""Output folders of synth, prepare-robotcar and pairs: same options resume, other options
stop with a message naming them, --overwrite rebuilds, and no file of an earlier run
survives beside the new ones."""

import json
import os
import shutil
import stat
from pathlib import Path

from seqvpr.cli import main
from seqvpr.data.images import read_image
from seqvpr.data.pair_files import make_pairs


def files_of(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def synth(out: Path, *extra: str) -> int:
    return main(["synth", "--out", str(out), "--seed", "2", "--length-m", "120", "--width", "32", "--height", "24",
                 "--fps", "2", "--conditions", "overcast", "--workers", "1", *extra])


def test_synth_resumes_same_options_and_refuses_others(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert synth(raw) == 0
    before = files_of(raw)
    frames = sorted(raw.glob("*/stereo/centre/*.png"))
    assert len(frames) > 20 and read_image(frames[0]).shape == (24, 32)
    # Resume: deleted files come back byte-identical.
    frames[3].unlink()
    next(raw.glob("*/gps/ins.csv")).unlink()
    assert synth(raw) == 0
    assert files_of(raw) == before
    capsys.readouterr()
    # Other image size or conditions: a one-line error naming the option; nothing changes.
    assert synth(raw, "--width", "48", "--height", "36") == 2
    error = capsys.readouterr().err
    assert "camera.width (was 32, now 48)" in error and "camera.height (was 24, now 36)" in error
    assert "--overwrite" in error and "seed" not in error
    assert synth(raw, "--conditions", "overcast,sunny") == 2
    assert "conditions (was ['overcast'], now ['overcast', 'sunny'])" in capsys.readouterr().err
    assert files_of(raw) == before
    # --overwrite rebuilds: every frame has the new size and no old frame is left.
    assert synth(raw, "--width", "48", "--height", "36", "--overwrite") == 0
    (traverse,) = [path for path in raw.iterdir() if path.is_dir()]
    listed = {line.split()[0] + ".png" for line in (traverse / "stereo.timestamps").read_text().splitlines()}
    written = {path.name for path in (traverse / "stereo" / "centre").iterdir()}
    assert written == listed
    assert {read_image(traverse / "stereo" / "centre" / name).shape for name in written} == {(36, 48)}


def test_prepare_refuses_other_long_side_and_overwrite_rebuilds(tiny_world, tmp_path, capsys):
    name = tiny_world.truths[0].name
    raw = tmp_path / "raw"
    shutil.copytree(tiny_world.raw / name, raw / name)
    out = tmp_path / "prepared"
    assert main(["prepare-robotcar", str(raw), "--out", str(out), "--long-side", "24"]) == 0
    before = files_of(out)
    assert read_image(next((out / name / "images").iterdir())).shape == (18, 24, 3)
    assert main(["prepare-robotcar", str(raw), "--out", str(out), "--long-side", "24"]) == 0
    assert files_of(out) == before
    capsys.readouterr()
    assert main(["prepare-robotcar", str(raw), "--out", str(out), "--long-side", "16"]) == 2
    error = capsys.readouterr().err
    assert "long_side (was 24, now 16)" in error and "--overwrite" in error
    assert files_of(out) == before
    assert main(["prepare-robotcar", str(raw), "--out", str(out), "--long-side", "16", "--overwrite"]) == 0
    shapes = {read_image(path).shape for path in (out / name / "images").iterdir()}
    assert shapes == {(12, 16, 3)}


def test_pairs_are_written_as_one_set(tiny_world, tmp_path, capsys):
    prepared = shutil.copytree(tiny_world.prepared, tmp_path / "prepared", ignore=shutil.ignore_patterns("*.png"))
    out = tmp_path / "pairs"
    summary = make_pairs(prepared, out, train_fraction=0.5, seed=4)
    assert (out / "test_sunny.csv").is_file() and summary["splits"]["test"]["by_condition"]["sunny"]["pairs"] > 0
    # Same options, but the sunny traverse is gone: its CSVs must not survive.
    sunny = next(t for t in tiny_world.truths if t.condition == "sunny")
    shutil.rmtree(prepared / sunny.name)
    summary = make_pairs(prepared, out, train_fraction=0.5, seed=4)
    listed = {entry["file"] for split in summary["splits"].values() for entry in split["by_condition"].values()}
    assert not any("sunny" in name for name in listed)
    assert {path.name for path in out.glob("*.csv")} == listed
    assert json.loads((out / "summary.json").read_text()) == summary
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging folder left
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask  # not the staging folder's 0700
    assert stat.S_IMODE((out / "summary.json").stat().st_mode) == 0o666 & ~mask
    # Other options stop and change nothing; --overwrite rebuilds.
    before = files_of(out)
    assert main(["pairs", str(prepared), "--out", str(out), "--train-fraction", "0.5", "--seed", "5"]) == 2
    assert "seed (was 4, now 5)" in capsys.readouterr().err and files_of(out) == before
    assert main(["pairs", str(prepared), "--out", str(out), "--train-fraction", "0.5", "--seed", "5",
                 "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["seed"] == 5
