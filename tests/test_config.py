import math
from pathlib import Path

import pytest

from seqvpr.align import GDTWConfig
from seqvpr.config import load_config, save_config

CONFIG_DIR = Path(__file__).parents[1] / "config"


def test_shipped_gdtw_config_loads_and_matches_documented_defaults():
    config = load_config(CONFIG_DIR / "gdtw.yaml", GDTWConfig)
    assert config == GDTWConfig(subsequence=True)
    assert config.slope_max == math.inf


def test_round_trip(tmp_path):
    config = GDTWConfig(subsequence=True, lam=0.7, grid_size=64, band=0.25, slope_max=3.0)
    save_config(config, tmp_path / "run" / "gdtw.yaml")
    assert load_config(tmp_path / "run" / "gdtw.yaml", GDTWConfig) == config


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("subsequence: true\nlamda: 0.2\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key\(s\) \['lamda'\] for GDTWConfig"):
        load_config(path, GDTWConfig)


def test_invalid_value_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("refine_factor: 2.0\n")
    with pytest.raises(ValueError, match=r"bad.yaml: refine_factor must be in \(0, 1\)"):
        load_config(path, GDTWConfig)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("lam: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(path, GDTWConfig)
