"""Starts each node with bad parameters and reports how each start ended (a test helper).

    unshare -n -- python bad_parameters.py OUT.json

Refuses to run outside a private loopback-only network namespace. Each case in CASES is one
parameter added to valid ones: ROS 2, the node process with the params file plus
``-p NAME:=VALUE``; ROS 1, a roscore, then the node with the private parameter
``_NAME:=VALUE``. Writes each start's exit status and output, keyed ``ros2 CASE``/``ros1 CASE``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import xmlrpc.client
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from live_driver import _wait_for_master  # noqa: E402
from ros_env import require_private_network, ros1_available, ros2_available, ros_environment  # noqa: E402

PARAMS_FILE = str(REPO / "config" / "localization_node.yaml")
# Case name -> (parameter, value): a misspelt name; odometry without localizer.query_spacing_m.
CASES = {"misspelt": ("queue_sise", "3"), "odometry without spacing": ("odometry_topic", "odom")}


def _run(command: list[str], env: dict) -> dict:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    return {"status": result.returncode, "output": result.stdout + result.stderr}


def main() -> int:
    require_private_network()
    env = ros_environment(Path(tempfile.mkdtemp(prefix="seqvpr_ros_")))
    results = {}
    if ros2_available():
        for case, (name, value) in CASES.items():
            results[f"ros2 {case}"] = _run([sys.executable, "-m", "seqvpr.ros.ros2_node", "--ros-args",
                                            "--params-file", PARAMS_FILE, "-p", "map_dir:=/maps/a",
                                            "-p", "model:=/m.pt", "-p", f"{name}:={value}"], env)
    if ros1_available():
        roscore = subprocess.Popen(["roscore", "-p", "11311"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            _wait_for_master(env, 60)
            master = xmlrpc.client.ServerProxy(env["ROS_MASTER_URI"])
            for case, (name, value) in CASES.items():
                # Private parameters stay on the master after a node exits: start each case afresh.
                master.deleteParam("/bad_parameters", "/seqvpr_localization")
                results[f"ros1 {case}"] = _run([sys.executable, str(REPO / "scripts" / "seqvpr-ros1"),
                                                "_map_dir:=/maps/a", "_model:=/m.pt", f"_{name}:={value}"], env)
        finally:
            roscore.send_signal(signal.SIGINT)
            roscore.wait(timeout=30)
    Path(sys.argv[1]).write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
