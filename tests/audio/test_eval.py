"""audio-eval's table and plots; the synctoolbox peer; the audio commands end to end."""

import csv
import json

import numpy as np
import pytest
import soundfile

from seqvpr.audio.dataset import read_table, read_truth
from seqvpr.audio.metrics import time_errors
from seqvpr.cli import main
from seqvpr.evaluation.audio import AudioEvalConfig, evaluate_audio


def test_table_rows_columns_and_plots(tiny_data, tiny_model, tmp_path):
    out = tmp_path / "eval"
    scores = evaluate_audio(tiny_data, out, [tiny_model],
                            AudioEvalConfig(features=("cqt", "chroma"), peer=False, plots=1))
    methods = {(s.feature, s.method) for s in scores}
    assert methods == {("cqt", "Base (D)"), ("cqt", "Base (G)"), ("cqt", "seqvpr piece (G)"),
                       ("chroma", "Base (D)"), ("chroma", "Base (G)"), ("chroma", "DecDTW"),
                       ("chroma", "seqvpr piece (G)")}
    table = (out / "table.md").read_text()
    assert table.splitlines()[0] == "| Feature Type | Base (D) | Base (G) | DecDTW | seqvpr piece (G) |"
    assert "| Chroma |" in table and "| CQT |" in table
    with open(out / "table.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    base = next(r for r in rows if r["feature"] == "cqt" and r["method"] == "Base (G)")
    per_slice = [s.time_err_ms for s in scores if (s.feature, s.method) == ("cqt", "Base (G)")]
    assert float(base["time_err_ms"]) == pytest.approx(np.mean(per_slice), abs=0.01)
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == sorted(
        [f"{read_table(tiny_data / 'slices.csv')[-1]['slice']}-{k}.png" for k in ("cqt-base", "chroma-base",
                                                                                  "chroma-decdtw")])


@pytest.mark.slow
def test_synctoolbox_peer_aligns(tiny_data):
    from seqvpr.audio.peer import synctoolbox_align

    row = read_table(tiny_data / "performances.csv")[0]
    score, rate = soundfile.read(tiny_data / "works" / row["work"] / "score.flac", dtype="float32")
    performance, _ = soundfile.read(tiny_data / "performances" / row["performance"] / "performance.flac",
                                    dtype="float32")
    alignment = synctoolbox_align(score, performance, rate)
    truth = read_truth(tiny_data / "performances" / row["performance"] / "truth.csv")
    assert time_errors(alignment, truth).time_err_s < 0.1


def test_audio_align_command(tiny_data, tmp_path, capsys):
    row = read_table(tiny_data / "performances.csv")[0]
    score = tiny_data / "works" / row["work"] / "score.mid"
    performance = tiny_data / "performances" / row["performance"] / "performance.flac"
    out = tmp_path / "aligned"
    assert main(["audio", "align", str(score), str(performance), "--out", str(out), "--features", "chroma"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["features"] == "chroma" and (out / "alignment.png").is_file()
    table = np.loadtxt(out / "alignment.csv", delimiter=",", skiprows=1)
    assert (out / "alignment.csv").read_text().startswith("score_s,score_beat,performance_s\n")
    truth = read_truth(tiny_data / "performances" / row["performance"] / "truth.csv")
    inside = table[:, 0] <= truth.end
    assert np.abs(table[inside, 2] - truth(table[inside, 0])).mean() < 0.08
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(22050 * 3, dtype=np.float32), 22050)
    assert main(["audio", "align", str(score), str(silent), "--out", str(tmp_path / "x")]) == 2
    assert "silent" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_audio_data_command_refuses_other_options(tiny_data, capsys):
    assert main(["audio-data", "build", "--out", str(tiny_data), "--seed", "9"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_audio_align_with_a_trained_model(tiny_data, tiny_model, tmp_path, capsys):
    row = read_table(tiny_data / "performances.csv")[0]
    score = tiny_data / "works" / row["work"] / "score.mid"
    performance = tiny_data / "performances" / row["performance"] / "performance.flac"
    assert main(["audio", "align", str(score), str(performance), "--out", str(tmp_path / "m"),
                 "--model", str(tiny_model)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["features"] == "chroma" and summary["model"] == str(tiny_model)
    table = np.loadtxt(tmp_path / "m" / "alignment.csv", delimiter=",", skiprows=1)
    assert (np.diff(table[:, 2]) >= 0).all() and table.shape[1] == 3
    not_a_model = tmp_path / "model.pt"
    not_a_model.write_bytes(b"junk")
    assert main(["audio", "align", str(score), str(performance), "--out", str(tmp_path / "n"),
                 "--model", str(not_a_model)]) == 2
    assert "not a readable torch checkpoint" in capsys.readouterr().err
