"""Tempo maps, performances, synthesis, features and the data builder."""


import numpy as np
import pytest

from seqvpr.audio.dataset import AudioDataConfig, read_table, read_truth
from seqvpr.audio.features import compute_features
from seqvpr.audio.performance import PerformanceConfig, perform
from seqvpr.audio.score import corpus_score
from seqvpr.audio.slices import AudioSlices, collate_slices
from seqvpr.audio.tempo import TempoMapConfig, random_tempo_map
from seqvpr.errors import OutputConflictError

from .conftest import TINY


def test_tempo_map_is_exact_and_bounded():
    onsets = np.arange(0, 30, 0.5)
    config = TempoMapConfig(ritardandi=0, fermatas=0)
    tempo_map = random_tempo_map(30.0, np.random.default_rng(0), config, onsets)
    slopes = np.diff(tempo_map.performance_s) / np.diff(tempo_map.score_s)
    assert tempo_map.score_s[0] == 0.0 and tempo_map.score_s[-1] == 30.0
    # Tempo within +-30 % except in the closing ritardando (the last 4 s at most).
    body = tempo_map.score_s[1:] <= 26.0
    assert (1 / slopes[body]).min() >= 0.7 - 1e-9 and (1 / slopes[body]).max() <= 1.3 + 1e-9
    assert 0.2 <= tempo_map.performance_s[0] <= 1.0
    again = random_tempo_map(30.0, np.random.default_rng(0), config, onsets)
    np.testing.assert_array_equal(again.performance_s, tempo_map.performance_s)


def test_fermata_holds_a_chord():
    onsets = np.arange(0, 20, 1.0)
    config = TempoMapConfig(ritardandi=0, fermatas=1, fermata_stretch=(3.0, 3.0), variation=0.0,
                            ritardando_s=(0.0, 0.0))
    tempo_map = random_tempo_map(20.0, np.random.default_rng(1), config, onsets)
    slopes = np.diff(tempo_map.performance_s) / np.diff(tempo_map.score_s)
    held = np.isclose(slopes, 3.0)
    assert np.isclose(np.diff(tempo_map.score_s)[held].sum(), 1.0)  # one chord of one second
    assert np.allclose(slopes[~held], 1.0)


def test_performance_follows_the_tempo_map():
    score = corpus_score("bach/bwv66.6.mxl")
    rng = np.random.default_rng(0)
    onsets = np.unique([n.start for i in score.instruments for n in i.notes])
    tempo_map = random_tempo_map(max(onsets) + 2, rng, TempoMapConfig(), onsets)
    played = perform(score, tempo_map, rng, program=1, config=PerformanceConfig())
    for voice, source in zip(played.instruments, score.instruments):
        assert voice.program == 1
        starts = np.array([n.start for n in voice.notes])
        expected = tempo_map(np.array([n.start for n in source.notes]))
        assert np.abs(starts - expected).max() <= 0.02 + 1e-9
        assert np.abs(starts - expected).mean() > 1e-3  # there is asynchrony
        assert any(c.number == 64 and c.value == 127 for c in voice.control_changes)
    velocities = [n.velocity for v in played.instruments for n in v.notes]
    assert min(velocities) >= 1 and max(velocities) <= 127 and np.std(velocities) > 5


def test_features_find_the_pitch():
    rate = 22050
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(2 * rate) / rate)
    cqt = compute_features(tone, rate, "cqt")
    assert cqt.values.shape == (len(tone) // 1024 + 1, 48)
    assert np.allclose(np.linalg.norm(cqt.values, axis=1), 1.0, atol=1e-5)
    assert np.argmax(cqt.values[20]) == 69 - 36  # A4 above C2
    assert np.argmax(compute_features(tone, rate, "chroma").values[20]) == 9  # pitch class A
    melspec = compute_features(tone, 44100, "melspec")  # resampled to 22050
    assert melspec.values.shape[1] == 128 and melspec.times[1] == pytest.approx(1024 / 22050)


def test_build_writes_splits_slices_and_truth(tiny_data):
    works = read_table(tiny_data / "works.csv")
    assert [row["split"] for row in works] == ["train", "val", "test"]
    assert len({row["work"] for row in works}) == 3
    slices = read_table(tiny_data / "slices.csv")
    assert {row["split"] for row in slices} == {"train", "val", "test"}
    rate = TINY.feature_config.frame_rate
    for row in slices:
        truth = read_truth(tiny_data / "performances" / row["performance"] / "truth.csv")
        first = truth(int(row["score_start"]) / rate)
        last = truth((int(row["score_start"]) + 255) / rate)
        start, length = int(row["performance_start"]), int(row["performance_frames"])
        assert start / rate <= first and last <= (start + length - 1) / rate  # window holds the span
        assert 1.1 * (last - first) * rate <= length <= 1.1 * (last - first) * rate + 4


def test_truth_maps_score_notes_to_performed_notes(tiny_data):
    import pretty_midi

    name = read_table(tiny_data / "performances.csv")[0]["performance"]
    slug = read_table(tiny_data / "works.csv")[0]["slug"]
    truth = read_truth(tiny_data / "performances" / name / "truth.csv")
    score = pretty_midi.PrettyMIDI(str(tiny_data / "works" / slug / "score.mid"))
    played = pretty_midi.PrettyMIDI(str(tiny_data / "performances" / name / "performance.mid"))
    for source, voice in zip(score.instruments, played.instruments):
        expected = truth(np.array([note.start for note in source.notes]))
        assert np.abs(np.array([note.start for note in voice.notes]) - expected).max() <= 0.02 + 1e-9


def test_slices_batch_into_signals(tiny_data):
    dataset = AudioSlices(tiny_data, "train", "chroma")
    batch = collate_slices([dataset[i] for i in range(len(dataset))])
    assert batch.query.values.shape[1:] == (256, 12)
    assert batch.target.shape == (len(dataset), 256)
    item = dataset[0]
    np.testing.assert_allclose(batch.target[0].numpy(), item.truth(item.score_times))


def test_rebuild_resumes_and_other_options_conflict(tiny_data):
    from seqvpr.audio.build import build_audio_data

    before = (tiny_data / "slices.csv").read_text()
    build_audio_data(TINY, tiny_data)  # same options: resumes, nothing changes
    assert (tiny_data / "slices.csv").read_text() == before
    other = AudioDataConfig(works=3, min_score_s=12.5, max_score_s=14.0, seed=4)
    with pytest.raises(OutputConflictError, match="seed"):
        build_audio_data(other, tiny_data)


def test_scores_load_from_musicxml_and_kern_files():
    import music21

    from seqvpr.audio.score import load_score, note_count

    root = music21.__file__.rsplit("/", 1)[0] + "/corpus/"
    for work in ("bach/bwv66.6.mxl", "chopin/mazurka06-2.krn"):
        midi = load_score(root + work)
        assert note_count(midi) == note_count(corpus_score(work)) > 50
