"""The node's parameters: required, unknown and mistyped names stop it with a clear message."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from seqvpr.errors import ConfigError
from seqvpr.localization import LocalizerConfig
from seqvpr.ros.params import NODE_NAME, NodeConfig, merge_ros1_parameters, node_config_from_parameters

PARAMS_FILE = Path(__file__).parents[2] / "config" / "localization_node.yaml"


def test_dotted_ros2_names_build_the_nested_localizer_config():
    config = node_config_from_parameters(
        {"map_dir": "/maps/a", "model": "/m.pt", "localizer.query_length": 6, "localizer.confidence_threshold": 1,
         "use_sim_time": False, "image_transport": "compressed"}, "node /x")
    assert config.localizer == LocalizerConfig(query_length=6, confidence_threshold=1.0)
    assert (config.map_dir, config.subscribed_topic) == ("/maps/a", "image/compressed")


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"model": "/m.pt"}, "node /x: missing required parameter(s) ['map_dir']"),
        ({"map_dir": "/a", "model": "/m.pt", "queue_sise": 3}, "unknown key(s) ['queue_sise']"),
        ({"map_dir": "/a", "model": "/m.pt", "localizer.query_lenght": 3},
         "localizer: unknown key(s) ['query_lenght']"),
        ({"map_dir": "/a", "model": "/m.pt", "queue_size": "3"}, "queue_size: expected int, got '3'"),
        ({"map_dir": "/a", "model": "/m.pt", "queue_size": 0}, "queue_size must be >= 1"),
        ({"map_dir": "", "model": "/m.pt"}, "map_dir must name a path"),
        ({"map_dir": "/a", "model": "/m.pt", "image_transport": "theora"}, "image_transport"),
        ({"map_dir": "/a", "model": "/m.pt", "localizer.query_length": 1}, "query_length must be an integer >= 2"),
    ],
)
def test_bad_parameters_are_named(parameters, words):
    with pytest.raises(ConfigError) as error:
        node_config_from_parameters(parameters, "node /x")
    assert words in str(error.value)


def test_the_params_file_is_valid_and_every_key_is_commented():
    """The shipped file parses into NodeConfig (with the required paths given) and documents each key."""
    document = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    assert list(document) == [NODE_NAME] and list(document[NODE_NAME]) == ["ros__parameters"]
    parameters = document[NODE_NAME]["ros__parameters"]
    config = node_config_from_parameters({**parameters, "map_dir": "/maps/a", "model": "/m.pt"}, str(PARAMS_FILE))
    assert isinstance(config, NodeConfig)
    lines = PARAMS_FILE.read_text(encoding="utf-8").splitlines()
    keys = [line for line in lines if line.strip() and not line.strip().startswith("#") and ":" in line]
    assert keys[:2] == [f"{NODE_NAME}:", "  ros__parameters:"]
    for line in keys[2:]:
        index = lines.index(line)
        assert "#" in line or lines[index - 1].strip().startswith("#"), f"key without a comment: {line!r}"


def test_ros1_parameters_unwrap_the_ros2_layout_and_direct_ones_win():
    private = {
        NODE_NAME: {"ros__parameters": {"map_dir": "/from/file", "model": "/m.pt",
                                        "localizer": {"query_length": 8, "top_k": 4}}},
        "map_dir": "/from/launch",
        "localizer": {"top_k": 7},
    }
    merged = merge_ros1_parameters(private)
    assert merged == {"map_dir": "/from/launch", "model": "/m.pt", "localizer": {"query_length": 8, "top_k": 7}}
    assert node_config_from_parameters(merged, "node /x").localizer.top_k == 7


def test_odometry_topic_needs_query_spacing_m():
    base = {"map_dir": "/a", "model": "/m.pt", "odometry_topic": "odom"}
    with pytest.raises(ConfigError) as error:
        node_config_from_parameters(base, "node /x")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("node /x: parameter odometry_topic is 'odom' but localizer.query_spacing_m is not set")
    config = node_config_from_parameters({**base, "localizer.query_spacing_m": 8}, "node /x")
    assert (config.odometry_topic, config.localizer.query_spacing_m, config.odometry_hold_s) == ("odom", 8.0, 0.2)
    assert node_config_from_parameters({"map_dir": "/a", "model": "/m.pt"}, "node /x").odometry_topic == ""
    with pytest.raises(ConfigError, match="odometry_hold_s must be a finite number >= 0"):
        node_config_from_parameters({**base, "localizer.query_spacing_m": 8, "odometry_hold_s": -1.0}, "node /x")


def test_missing_nav_msgs_is_a_clear_error(monkeypatch):
    from seqvpr.errors import SeqvprError
    from seqvpr.ros.conversions import load_odometry_type

    monkeypatch.setitem(sys.modules, "nav_msgs", None)
    monkeypatch.setitem(sys.modules, "nav_msgs.msg", None)
    with pytest.raises(SeqvprError) as error:
        load_odometry_type("Debian: apt-get install python3-nav-msgs")
    assert str(error.value).startswith("parameter odometry_topic needs nav_msgs/Odometry, which does not import")
    assert str(error.value).endswith("Debian: apt-get install python3-nav-msgs")
