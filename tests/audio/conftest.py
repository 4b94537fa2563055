"""A tiny audio data set, built once per test session."""

import pytest

from seqvpr.audio.dataset import AudioDataConfig

TINY = AudioDataConfig(works=3, min_score_s=12.5, max_score_s=14.0, seed=3)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from seqvpr.audio.build import build_audio_data

    return build_audio_data(TINY, tmp_path_factory.mktemp("audio") / "data")
