import math
from pathlib import Path

import pytest

from seqvpr.align import GDTWConfig
from seqvpr.config import config_from_dict, load_config, save_config
from seqvpr.errors import ConfigError
from seqvpr.evaluation import EvaluationConfig
from seqvpr.vpr.encoder import EncoderConfig

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


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("subsequence: 'yes'\n", "subsequence", "bool"),
        ("grid_size: '25'\n", "grid_size", "int"),
        ("grid_size: true\n", "grid_size", "int"),
        ("refinements: 2.0\n", "refinements", "int"),
        ("kernel: 3\n", "kernel", "str"),
    ],
)
def test_wrong_types_are_errors_naming_file_and_field(tmp_path, text, field, expected):
    path = tmp_path / "typed.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"typed.yaml: {field}: expected .*{expected}"):
        load_config(path, GDTWConfig)


def test_int_is_a_float_and_list_is_a_tuple():
    config = config_from_dict(GDTWConfig, {"lam": 1, "refine_factor": 0.5})
    assert config.lam == 1.0 and isinstance(config.lam, float)
    encoder = config_from_dict(EncoderConfig, {"pixel_mean": [1, 2, 3], "pca_dim": None})
    assert encoder.pixel_mean == (1.0, 2.0, 3.0)
    with pytest.raises(ConfigError, match=r"pixel_mean: expected tuple\[float, float, float\]"):
        config_from_dict(EncoderConfig, {"pixel_mean": [1, 2]})
    with pytest.raises(ConfigError, match="flatten_order: expected"):
        config_from_dict(EncoderConfig, {"flatten_order": "sideways"})


def test_nested_dataclass_field_is_named_with_its_path():
    with pytest.raises(ConfigError, match=r"run.yaml: gdtw: lam: expected"):
        config_from_dict(EvaluationConfig, {"gdtw": {"lam": "0.1"}}, "run.yaml")
    config = config_from_dict(EvaluationConfig, {"gdtw": {"lam": 0.2}, "methods": ["gdtw"]})
    assert config.gdtw.lam == 0.2 and config.methods == ("gdtw",)


def test_duplicate_key_is_an_error(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("lam: 0.1\nsubsequence: true\nlam: 0.2\n")
    with pytest.raises(ConfigError, match="twice.yaml: not valid YAML.*duplicate key 'lam'"):
        load_config(path, GDTWConfig)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nothing.yaml: no such config file"):
        load_config(tmp_path / "nothing.yaml", GDTWConfig)


def test_shipped_step_configs_load_as_the_defaults():
    from seqvpr.extraction import ExtractConfig

    assert load_config(CONFIG_DIR / "extract.yaml", ExtractConfig) == ExtractConfig()
    assert load_config(CONFIG_DIR / "evaluate.yaml", EvaluationConfig) == EvaluationConfig()


def test_shipped_data_step_configs_load_as_the_defaults():
    from seqvpr.cli.pairs import PairsOptions
    from seqvpr.cli.prepare_robotcar import PrepareOptions
    from seqvpr.data.synth.drive import SynthConfig

    assert load_config(CONFIG_DIR / "synth.yaml", SynthConfig) == SynthConfig()
    assert load_config(CONFIG_DIR / "prepare.yaml", PrepareOptions) == PrepareOptions()
    assert load_config(CONFIG_DIR / "pairs.yaml", PairsOptions) == PairsOptions()


def test_every_shipped_config_key_has_a_comment():
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.strip() and not line.lstrip().startswith("#") and ":" in line and not line.lstrip().startswith("-"):
                above = lines[index - 1].strip() if index else ""
                assert above.startswith("#") or "#" in line or lines[index - 2].lstrip().startswith("#"), (
                    f"{path.name}:{index + 1}: {line.strip()} has no comment")


def test_a_written_evaluation_config_reads_back(tmp_path):
    config = config_from_dict(EvaluationConfig, {"methods": ["gdtw"], "gdtw": {"lam": 0.3, "band": 0.5}})
    save_config(config, tmp_path / "evaluation.yaml")
    assert load_config(tmp_path / "evaluation.yaml", EvaluationConfig) == config


def test_shipped_demo_config_loads_as_the_defaults():
    from seqvpr.cli.demo import DemoOptions

    assert load_config(CONFIG_DIR / "demo.yaml", DemoOptions) == DemoOptions()
