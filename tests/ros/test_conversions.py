"""Conversions between messages and seqvpr values, with real ROS 2 and ROS 1 message classes.

The checks live in conversion_checks.py: the ROS 2 ones run here, the ROS 1 ones in a
child process (a process holds only one ROS version's message packages).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import conversion_checks
from ros_env import ros1_available, ros2_available

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def ros2_messages():
    if not ros2_available():
        pytest.skip("the ROS 2 wheels are not installed (pip install -e '.[ros2]')")
    return conversion_checks.load("ros2")


@pytest.mark.parametrize("check", conversion_checks.CHECKS, ids=lambda check: check.__name__)
def test_ros2_conversions(check, ros2_messages):
    check(ros2_messages)


def test_ros1_conversions():
    if not ros1_available():
        pytest.skip("Debian's ROS 1 Python packages are not installed (tools/install_system_packages.sh)")
    result = subprocess.run([sys.executable, str(HERE / "conversion_checks.py"), "ros1"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") == len(conversion_checks.CHECKS), result.stdout
