"""A tiny audio data set, built once per test session."""

import pytest

from seqvpr.audio.dataset import AudioDataConfig

TINY = AudioDataConfig(works=3, min_score_s=12.5, max_score_s=14.0, seed=3)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from seqvpr.audio.build import build_audio_data

    return build_audio_data(TINY, tmp_path_factory.mktemp("audio") / "data")


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory):
    """best.pt of a one-step DecDTW run on chroma."""
    from seqvpr.train.audio import AudioTrainConfig, audio_train
    from seqvpr.train.run import LoopConfig

    loop = LoopConfig(epochs=1, batch_size=1, validations_per_epoch=1, max_steps=1, amp=False)
    config = AudioTrainConfig(features="chroma", loss="decdtw", loop=loop)
    return audio_train(tiny_data, tmp_path_factory.mktemp("audio-run") / "run", config, progress=False).run / "best.pt"
