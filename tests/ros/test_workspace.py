"""A ROS workspace picks the package up from package.xml.

- ROS 1: a catkin workspace with the checkout in ``src/`` builds and installs it with
  ``catkin_make``; ``rospack`` then finds the package and ``roslaunch`` resolves
  ``localization.launch``, the node's executable and its parameters (devel and install
  spaces).
- ROS 2: the install that colcon's ament_python build runs registers the package in the
  ament index and puts package.xml, the launch files and the node parameters under
  ``share/seqvpr``.

Nothing here starts roscore or a node: roslaunch's ``--files``, ``--args`` and
``--dump-params`` only read the launch file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).parent
REPO = HERE.parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's catkin and roslaunch live in its dist-packages
LAUNCH_ARGS = ["map_dir:=/maps/route", "model:=/maps/encoder.pt", "image:=/camera/image_raw"]
SHARED_FILES = ["package.xml", "launch/localization.launch", "launch/localization.launch.py",
                "config/localization_node.yaml"]


def _catkin_missing() -> str | None:
    """None when catkin_make can build here, else what is missing."""
    tools = ("catkin_make", "cmake", "make", "c++", "rospack", "roslaunch")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing or not Path(SYSTEM_PYTHON).exists():
        return (f"ROS 1 catkin workspace tools are missing: {missing or [SYSTEM_PYTHON]} "
                "(Debian: catkin cmake g++ make rospack-tools ros-core; tools/install_system_packages.sh)")
    return None


def _sourced(setup_sh: Path, home: Path) -> dict[str, str]:
    """The environment after sourcing a catkin space's setup.sh in a clean shell."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(home), "ROS_HOME": str(home / "ros")}
    result = subprocess.run(["sh", "-c", f'. "{setup_sh}" && env -0'], env=clean, capture_output=True,
                            check=True, timeout=60)
    return dict(entry.split("=", 1) for entry in result.stdout.decode().split("\0") if "=" in entry)


def _run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _check_space(space: Path, package_dir: Path, executable: Path, home: Path) -> None:
    """rospack and roslaunch resolve the package, launch file, executable and parameters from ``space``."""
    env = _sourced(space / "setup.sh", home)
    assert env["ROS_VERSION"] == "1"
    cwd = home  # not the checkout: nothing may be found relative to the current folder
    assert _run(["rospack", "find", "seqvpr"], env, cwd).strip() == str(package_dir)

    launch = ["seqvpr", "localization.launch", *LAUNCH_ARGS]
    files = _run(["roslaunch", "--files", *launch], env, cwd).split()
    assert files == [str(package_dir / "launch" / "localization.launch")]

    node_command = _run(["roslaunch", "--args", "/seqvpr_localization", *launch], env, cwd).split()
    assert node_command[0] == str(executable)
    assert os.access(node_command[0], os.X_OK)
    assert "image:=/camera/image_raw" in node_command
    assert "__name:=seqvpr_localization" in node_command

    params = yaml.safe_load(_run(["roslaunch", "--dump-params", *launch], env, cwd))
    assert params["/seqvpr_localization/map_dir"] == "/maps/route"
    assert params["/seqvpr_localization/model"] == "/maps/encoder.pt"
    shipped = yaml.safe_load((REPO / "config" / "localization_node.yaml").read_text())
    loaded = "/seqvpr_localization/seqvpr_localization/ros__parameters/"
    for key in ("frame_id", "queue_size", "image_transport"):
        assert params[loaded + key] == shipped["seqvpr_localization"]["ros__parameters"][key]


@pytest.mark.slow
def test_catkin_workspace_builds_installs_and_resolves_the_package(tmp_path: Path):
    missing = _catkin_missing()
    if missing:
        pytest.skip(missing)
    workspace = tmp_path / "catkin_ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "seqvpr").symlink_to(REPO, target_is_directory=True)
    home = tmp_path / "home"
    home.mkdir()
    build_env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    _run(["catkin_make", f"-DPYTHON_EXECUTABLE={SYSTEM_PYTHON}", "install"], build_env, workspace)

    installed = workspace / "install" / "share" / "seqvpr"
    for name in SHARED_FILES:
        assert (installed / name).read_bytes() == (REPO / name).read_bytes(), name
    program = workspace / "install" / "lib" / "seqvpr" / "seqvpr-ros1"
    # Installed as is: the shebang still picks the first python3 on PATH (the one seqvpr is in).
    assert program.read_bytes() == (REPO / "scripts" / "seqvpr-ros1").read_bytes()

    _check_space(workspace / "install", installed, program, home)
    source = workspace / "src" / "seqvpr"
    _check_space(workspace / "devel", source, source / "scripts" / "seqvpr-ros1", home)


def test_ament_python_install_registers_the_package(tmp_path: Path):
    """The install step of colcon's ament_python build, into a temporary prefix.

    The build and egg-info folders go to tmp_path too, so the checkout is not written to,
    and ``install --prefix`` (unlike pip) leaves the environment's own seqvpr alone.
    """
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    build.mkdir()
    command = [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(build),
               "build", "--build-base", str(build),
               "install", "--prefix", str(prefix), "--record", str(tmp_path / "record.txt"),
               "--single-version-externally-managed"]
    _run(command, {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, REPO)

    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "seqvpr"
    assert marker.is_file()
    # config/ beside launch/: both launch files' default params_file resolves there.
    for name in SHARED_FILES:
        assert (prefix / "share" / "seqvpr" / name).read_bytes() == (REPO / name).read_bytes(), name

    pytest.importorskip("ament_index_python", reason="ament_index_python (the ros2 extra) is not installed")
    lookup = ("from ament_index_python.packages import get_package_share_directory, get_packages_with_prefixes;"
              "print(get_package_share_directory('seqvpr')); print(sorted(get_packages_with_prefixes()))")
    env = {**os.environ, "AMENT_PREFIX_PATH": str(prefix)}
    share, packages = _run([sys.executable, "-c", lookup], env, tmp_path).splitlines()
    assert share == str(prefix / "share" / "seqvpr")
    assert packages == "['seqvpr']"
