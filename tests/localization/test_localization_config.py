"""config/localization.yaml is LocalizerConfig's defaults, every key commented; bad values are ConfigErrors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from seqvpr.config import load_config
from seqvpr.errors import ConfigError
from seqvpr.localization import LocalizerConfig, MapConfig

YAML = Path(__file__).resolve().parents[2] / "config" / "localization.yaml"


def test_the_shipped_yaml_is_the_defaults_and_every_key_is_commented():
    assert load_config(YAML, LocalizerConfig) == LocalizerConfig()
    lines = YAML.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"key without a comment: {line}"


@pytest.mark.parametrize("bad", [{"query_period_s": 0}, {"query_length": 1}, {"min_query_length": 16},
                                 {"confidence_threshold": 1.5}, {"query_spacing_m": -1.0}, {"bogus": 1},
                                 {"speed_ratios": "[]"}, {"speed_ratios": "[0.5, 3.0]"}, {"consistency_m": 0}])
def test_bad_values_name_the_field(tmp_path, bad):
    path = tmp_path / "c.yaml"
    path.write_text("".join(f"{key}: {value}\n" for key, value in bad.items()))
    with pytest.raises(ConfigError, match=next(iter(bad))):
        load_config(path, LocalizerConfig)


def test_map_config_checks_its_fields():
    with pytest.raises(ConfigError, match="large_index"):
        MapConfig(large_index="hnsw")
    with pytest.raises(ConfigError, match="reference_spacing_m"):
        MapConfig(reference_spacing_m=-1)


def test_fast_preset_changes_only_the_proposal_cadence_and_speed_ratios():
    fast = load_config(YAML.parent / "localization-fast.yaml", LocalizerConfig)
    assert fast.global_every == 3 and fast.speed_ratios == (1.0,)
    assert dataclasses.replace(fast, global_every=1, speed_ratios=(0.7, 1.0, 1.4)) == LocalizerConfig()
