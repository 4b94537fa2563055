"""`--config FILE` of the data steps: the file sets the options, flags given win."""

from seqvpr.cli import main
from seqvpr.data.images import read_rgb
from seqvpr.data.traverse import find_traverses


def test_synth_and_prepare_read_their_config_files(tmp_path, capsys):
    synth = tmp_path / "synth.yaml"
    synth.write_text("world:\n  route_length_m: 420.0\ncamera:\n  width: 40\n  height: 30\n"
                     "conditions: [overcast]\nframe_rate_hz: 2.0\n")
    assert main(["synth", "--out", str(tmp_path / "raw"), "--config", str(synth), "--width", "32",
                 "--height", "24", "--workers", "1"]) == 0
    assert "wrote 1 traverses" in capsys.readouterr().out
    prepare = tmp_path / "prepare.yaml"
    prepare.write_text("long_side: 16\n")
    assert main(["prepare-robotcar", str(tmp_path / "raw"), "--out", str(tmp_path / "prepared"),
                 "--config", str(prepare)]) == 0
    (traverse,) = find_traverses(tmp_path / "prepared")
    assert traverse.condition == "overcast"
    assert read_rgb(traverse.image_path(0)).shape == (12, 16, 3)  # 32x24 rendered, long side 16
    pairs = tmp_path / "pairs.yaml"
    pairs.write_text("train_fraction: 1.5\n")
    assert main(["pairs", str(tmp_path / "prepared"), "--out", str(tmp_path / "pairs"), "--config", str(pairs)]) == 2
    assert "pairs.yaml: train_fraction must be in (0, 1), got 1.5" in capsys.readouterr().err
