"""seqvpr.ros imports its ROS version only inside each node's main()."""

from __future__ import annotations

import json
import subprocess
import sys

ROS_MODULES = ("rclpy", "rospy", "sensor_msgs", "geometry_msgs", "diagnostic_msgs", "std_msgs", "builtin_interfaces")
MODULES = ("seqvpr.ros", "seqvpr.ros.conversions", "seqvpr.ros.queue", "seqvpr.ros.params", "seqvpr.ros.node_core",
           "seqvpr.ros.ros1_path", "seqvpr.ros.ros1_node", "seqvpr.ros.ros2_node")


def test_importing_seqvpr_ros_loads_no_ros_package():
    code = (f"import importlib, json, sys; [importlib.import_module(m) for m in {MODULES!r}]; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {ROS_MODULES!r})))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []
