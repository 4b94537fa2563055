#!/usr/bin/env bash
# Debian packages the test suite uses: ROS 1 (roscore, roslaunch, rospy and the message
# packages; the ROS 1 node tests run against them), fluidsynth and a General MIDI
# soundfont (realistic piano synthesis for the audio tests), and iproute2 (`ip`, used to
# bring up loopback inside the private network namespaces that ROS tests run in); catkin
# with cmake, g++, make and rospack (tests/ros/test_workspace.py builds a catkin workspace).
# Installs only what is missing; needs root and apt-get. Elsewhere it says what to install
# and exits 0: the tests that need a missing package are then skipped with that reason.
set -euo pipefail
packages=(ros-core python3-rospy python3-rosbag python3-sensor-msgs python3-geometry-msgs
          python3-nav-msgs python3-diagnostic-msgs libfluidsynth3 fluid-soundfont-gm iproute2
          catkin cmake g++ make rospack-tools)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "note: Debian packages missing (tests that need them are skipped): ${missing[*]}" >&2
    echo "      install them with: sudo apt-get install ${missing[*]}" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
