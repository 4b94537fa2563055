"""A calibration records the localizer settings it was fitted with; other settings are warned about."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from seqvpr.localization import LocalizerConfig, MapPart, StreamingLocalizer, write_map
from seqvpr.localization.calibration import (CALIBRATED_SETTINGS, Calibration, calibrated_settings,
                                             load_calibration, save_calibration, settings_mismatch)


@pytest.fixture()
def calibrated_map(tmp_path):
    rng = np.random.default_rng(0)
    part = MapPart("r", "x", np.arange(100) * 0.5, np.zeros((100, 2)), np.zeros(100), rng.normal(size=(100, 16)))
    write_map(tmp_path / "m", [part], zone="30U", fingerprint="f", encoder={})
    save_calibration(Calibration(settings=calibrated_settings(LocalizerConfig())), tmp_path / "m")
    return tmp_path / "m"


def test_settings_round_trip_through_the_file(calibrated_map):
    calibration = load_calibration(calibrated_map)
    assert set(calibration.settings) == set(CALIBRATED_SETTINGS)
    assert calibration.settings["speed_ratios"] == [0.7, 1.0, 1.4] and calibration.settings["query_length"] == 10
    assert settings_mismatch(calibration, LocalizerConfig()) == []
    # The threshold and the device are not calibrated settings.
    assert settings_mismatch(calibration, LocalizerConfig(confidence_threshold=0.9, device="cpu")) == []


def test_the_same_settings_load_silently_and_others_are_named(calibrated_map):
    from seqvpr.localization import load_map

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        StreamingLocalizer(load_map(calibrated_map), LocalizerConfig())
    with pytest.warns(UserWarning, match=r"query_length: 10 -> 15; speed_ratios: \[0.7, 1.0, 1.4\] -> \[1.0\]"):
        StreamingLocalizer(load_map(calibrated_map), LocalizerConfig(query_length=15, speed_ratios=(1.0,)))


def test_a_calibration_without_settings_is_not_checked():
    assert settings_mismatch(Calibration(), LocalizerConfig(query_length=15)) == []


def test_an_uncalibrated_map_is_logged_as_such(calibrated_map, caplog):
    from seqvpr.localization import load_map

    reference_map = load_map(calibrated_map)
    with caplog.at_level("WARNING", logger="seqvpr.localization.streaming"):
        StreamingLocalizer(reference_map, LocalizerConfig())  # its calibration.yaml
        (calibrated_map / "calibration.yaml").unlink()
        uncalibrated = load_map(calibrated_map)
        StreamingLocalizer(uncalibrated, LocalizerConfig(), calibration=Calibration())  # one given
        StreamingLocalizer(uncalibrated, LocalizerConfig(confidence_threshold=0.7))  # a threshold of one's own
        assert not caplog.records
        StreamingLocalizer(uncalibrated, LocalizerConfig())
    assert len(caplog.records) == 1
    assert "has no calibration" in caplog.text and "fixes are published from 0.50" in caplog.text
    assert "seqvpr map calibrate" in caplog.text
