"""Where ROS may run in the tests: only inside a private, loopback-only network namespace.

DDS discovery multicasts on every interface, and roscore listens on all of them, so no
test starts ROS on the host network. A pytest test calls :func:`run_isolated`, which
re-executes a driver script under ``unshare -n`` (a new network namespace, root only);
the driver (and every helper process that starts ROS) first calls
:func:`require_private_network`, which brings loopback up and refuses to go on unless
``lo`` is the only interface. :func:`ros_environment` then pins discovery, the ROS 1
master and the log folders to loopback and to the test.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

__all__ = [
    "ros1_available",
    "ros2_available",
    "isolation_available",
    "require_private_network",
    "ros_environment",
    "run_isolated",
]

DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")


def ros2_available() -> bool:
    """The rclpy wheels are importable (the ``ros2`` extra)."""
    return importlib.util.find_spec("rclpy") is not None


def ros1_available() -> bool:
    """Debian's ROS 1 is installed: rospy, roscore and roslaunch."""
    return (DEBIAN_DIST_PACKAGES / "rospy").is_dir() and all(shutil.which(tool) for tool in ("roscore", "roslaunch"))


def isolation_available() -> str | None:
    """None when ``unshare -n`` works here, else the reason it does not."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (util-linux, iproute2)"
    result = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return f"`unshare -n` is not permitted here (needs root): {result.stderr.strip()}"
    return None


def require_private_network() -> None:
    """Brings loopback up; exits unless this process sees no interface but ``lo``.

    Called first by every process of the tests that starts ROS.
    """
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        sys.exit(f"refusing to start ROS: network interfaces {interfaces} are visible; run under `unshare -n`")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    flags = subprocess.run(["ip", "-o", "link", "show", "lo"], capture_output=True, text=True, check=True).stdout
    if ",UP" not in flags:
        sys.exit(f"refusing to start ROS: loopback is not up ({flags.strip()})")


def ros_environment(folder: Path) -> dict[str, str]:
    """Environment for ROS processes: loopback discovery, a local master, logs in ``folder``."""
    env = dict(os.environ)
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_DOMAIN_ID="17",
        ROS_MASTER_URI="http://127.0.0.1:11311",
        ROS_IP="127.0.0.1",
        ROS_HOME=str(folder / "ros_home"),
        ROS_LOG_DIR=str(folder / "ros_log"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("ROS_HOSTNAME", None)
    return env


def run_isolated(script: Path, args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    """Runs ``python script args`` in a new loopback-only network namespace."""
    return subprocess.run(
        ["unshare", "-n", "--", sys.executable, str(script), *args],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
