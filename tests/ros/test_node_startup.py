"""Starting the nodes: launch files resolve to the shipped parameters, bad parameters stop a node."""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
from pathlib import Path

import pytest

from ros_env import isolation_available, ros1_available, run_isolated
from seqvpr.ros.params import merge_ros1_parameters, node_config_from_parameters

HERE = Path(__file__).parent
REPO = HERE.parents[1]

ROSLAUNCH_PARAMS = """
import json, sys
import roslaunch.config
config = roslaunch.config.load_config_default([sys.argv[1]], None)  # args: the name:=value in sys.argv
node, = config.nodes
print(json.dumps({"package": node.package, "type": node.type, "name": node.name,
                  "remappings": node.remap_args,
                  "params": {key: value.value for key, value in config.params.items()}}))
"""


def test_ros1_launch_file_loads_the_params_file_into_the_node():
    """roslaunch's own loader reads launch/localization.launch; the node's parameters come out checked."""
    if not ros1_available():
        pytest.skip("Debian's ROS 1 is not installed (tools/install_system_packages.sh)")
    result = subprocess.run(
        ["/usr/bin/python3", "-c", ROSLAUNCH_PARAMS, str(REPO / "launch" / "localization.launch"),
         "map_dir:=/maps/route", "model:=/maps/encoder.pt", "image:=/camera/image_raw", "odom:=/wheel/odom"],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "ROS_PACKAGE_PATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    launched = json.loads(result.stdout)
    assert (launched["package"], launched["type"], launched["name"]) == ("seqvpr", "seqvpr-ros1", "seqvpr_localization")
    assert os.access(REPO / "scripts" / "seqvpr-ros1", os.X_OK)
    assert ["image", "/camera/image_raw"] in launched["remappings"]
    assert ["image/compressed", "/camera/image_raw/compressed"] in launched["remappings"]
    assert ["odom", "/wheel/odom"] in launched["remappings"]
    prefix = "/seqvpr_localization/"
    private: dict = {}
    for name, value in launched["params"].items():
        if name.startswith(prefix):
            level = private
            *parents, leaf = name[len(prefix):].split("/")
            for parent in parents:
                level = level.setdefault(parent, {})
            level[leaf] = value
    config = node_config_from_parameters(merge_ros1_parameters(private), "roslaunch")
    assert (config.map_dir, config.model, config.frame_id) == ("/maps/route", "/maps/encoder.pt", "utm")


def test_ros2_launch_file():
    """Byte-compiled always; loaded when launch_ros is installed (no wheel for it here)."""
    path = REPO / "launch" / "localization.launch.py"
    py_compile.compile(str(path), doraise=True)
    text = path.read_text()
    assert 'executable="seqvpr-ros2"' in text and '"config" / "localization_node.yaml"' in text
    assert '("odom", LaunchConfiguration("odom"))' in text
    pytest.importorskip("launch_ros")
    import importlib.util

    spec = importlib.util.spec_from_file_location("localization_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    arguments = {argument.name for argument in description.get_launch_arguments()}
    assert {"map_dir", "model", "image", "odom", "params_file"} <= arguments


ODOMETRY_WITHOUT_SPACING = (
    "node /seqvpr_localization: parameter odometry_topic is 'odom' but localizer.query_spacing_m is not set: "
    "odometry is used only when keyframes follow it; set localizer.query_spacing_m (metres between keyframes, "
    "e.g. 8) or leave odometry_topic empty to keyframe on time")


@pytest.mark.ros
def test_bad_parameters_stop_each_node_with_one_line(tmp_path):
    """A misspelt name, and odometry_topic without localizer.query_spacing_m: exit 2, the message on one line."""
    reason = isolation_available()
    if reason:
        pytest.skip(f"ROS tests run only in a private network namespace: {reason}")
    report = tmp_path / "report.json"
    result = run_isolated(HERE / "bad_parameters.py", [str(report)], timeout_s=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(report.read_text())
    assert runs, "neither ROS version is installed"
    for start, run in runs.items():
        assert run["status"] == 2, (start, run["output"][-2000:])
        if start.endswith("misspelt"):
            assert "unknown key(s) ['queue_sise']" in run["output"], (start, run["output"][-2000:])
        else:
            lines = [line for line in run["output"].splitlines() if "odometry_topic" in line]
            assert len(lines) == 1 and lines[0].endswith(ODOMETRY_WITHOUT_SPACING), (start, run["output"][-2000:])
