"""Whole-piece alignment: accuracy against the exact truth, windows, and user-input errors."""

import numpy as np
import pytest
import soundfile
import torch

from seqvpr.align import GDTWConfig, Signal, gdtw
from seqvpr.audio.dataset import read_table, read_truth
from seqvpr.audio.metrics import time_errors
from seqvpr.audio.alignment import Alignment
from seqvpr.audio.piece import PieceAlignConfig, _windows, align_features, align_piece
from seqvpr.errors import SeqvprError

RATE = 22050 / 1024


def _cached(data, name, kind="cqt"):
    with np.load(data / "features" / kind / f"{name}.npz") as cached:
        return cached["score_values"], cached["performance_values"]


def test_windows_cover_the_piece_with_overlap():
    assert _windows(100, 256, 64) == [(0, 100)]
    windows = _windows(1000, 256, 64)
    assert windows[0][0] == 0 and windows[-1][1] == 1000
    for (start, stop), (next_start, _) in zip(windows, windows[1:]):
        assert stop - start == 256 and stop - next_start >= 64


def test_piece_alignment_beats_its_coarse_pass(tiny_data):
    for row in read_table(tiny_data / "performances.csv"):
        truth = read_truth(tiny_data / "performances" / row["performance"] / "truth.csv")
        score, performance = _cached(tiny_data, row["performance"])
        warp, coarse, _ = align_features(score, performance, RATE, 0.1, PieceAlignConfig(window_frames=128,
                                                                                         overlap_frames=32))
        fine = time_errors(Alignment(np.arange(len(score)) / RATE, warp), truth)
        assert fine.time_err_s < 0.06
        assert fine.time_err_s < time_errors(coarse, truth).time_err_s
        assert (np.diff(warp) >= 0).all()


def test_windows_agree_with_one_gdtw_over_the_piece(tiny_data):
    name = read_table(tiny_data / "performances.csv")[0]["performance"]
    score, performance = _cached(tiny_data, name)
    windowed, _, _ = align_features(score, performance, RATE, 0.1, PieceAlignConfig(window_frames=96,
                                                                                    overlap_frames=32))
    times = torch.arange(len(score), dtype=torch.float64) / RATE
    whole = gdtw(Signal(torch.arange(len(performance), dtype=torch.float64) / RATE, torch.from_numpy(performance)),
                 Signal(times, torch.from_numpy(score)), GDTWConfig(subsequence=True, lam=0.1))
    assert np.abs(windowed - whole.warp[0].numpy()).mean() < 0.03


def test_align_piece_end_to_end(tiny_data):
    row = read_table(tiny_data / "performances.csv")[0]
    slug = row["work"]
    result = align_piece(tiny_data / "works" / slug / "score.mid",
                         tiny_data / "performances" / row["performance"] / "performance.flac")
    truth = read_truth(tiny_data / "performances" / row["performance"] / "truth.csv")
    assert time_errors(result.alignment, truth).time_err_s < 0.08
    assert result.beats[0] == 0 and (np.diff(result.beats) > 0).all()


@pytest.fixture()
def score_file(tiny_data):
    return tiny_data / "works" / read_table(tiny_data / "works.csv")[0]["slug"] / "score.mid"


def test_bad_performances_get_clear_errors(tmp_path, score_file):
    rate = 22050
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(rate * 5, dtype=np.float32), rate)
    with pytest.raises(SeqvprError, match="silent"):
        align_piece(score_file, silent)
    short = tmp_path / "short.wav"
    soundfile.write(short, 0.1 * np.ones(rate // 2, dtype=np.float32), rate)
    with pytest.raises(SeqvprError, match="too short"):
        align_piece(score_file, short)
    slow = tmp_path / "slow.wav"
    soundfile.write(slow, 0.1 * np.ones(4000 * 3, dtype=np.float32), 4000)
    with pytest.raises(SeqvprError, match="sample rate 4000 Hz"):
        align_piece(score_file, slow)
    text = tmp_path / "notes.ogg"
    text.write_text("not audio")
    with pytest.raises(SeqvprError, match="not a readable audio file"):
        align_piece(score_file, text)


def test_bad_scores_get_clear_errors(tmp_path, tiny_data):
    import pretty_midi

    performance = next((tiny_data / "performances").glob("*/performance.flac"))
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd garbage")
    with pytest.raises(SeqvprError, match="not a readable MIDI file"):
        align_piece(broken, performance)
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(SeqvprError, match="no notes"):
        align_piece(empty, performance)
    kern = tmp_path / "bad.krn"
    kern.write_text("**kern\n*M4/4\n=1\nthis is not kern\n*-\n")
    with pytest.raises(SeqvprError, match="bad.krn"):
        align_piece(kern, performance)
    pdf = tmp_path / "score.pdf"
    pdf.write_text("%PDF")
    with pytest.raises(SeqvprError, match="unknown score format"):
        align_piece(pdf, performance)
