"""Runs the localization node live against the player and records what it publishes.

    unshare -n -- python live_driver.py --ros 2 --world WORLD --out OUT

Refuses to run outside a private loopback-only network namespace. Starts the node (ROS 2:
``python -m seqvpr.ros.ros2_node --ros-args --params-file config/localization_node.yaml``;
ROS 1: ``roscore``, then ``roslaunch launch/localization.launch``; both with the shipped
parameters but a longer queue, QUEUE_SIZE), subscribes to its
``pose``, ``fix`` and ``/diagnostics``, and plays the world's query stream:

1. the route's frames, then the foreign ones, at 10 Hz; the player is killed (SIGKILL) after ``KILL_AFTER`` frames,
   then restarted ``RESTART_GAP`` frames later, and plays on through the foreign frames;
2. the stress frames at 100 Hz (10 s).

During phase 1 a second node, ``ODOMETRY_NODE``, localizes the same images with odometry:
the player also publishes ``nav_msgs/Odometry`` on ``odom`` (positions relative to the
first frame, ``ODOMETRY_PER_FRAME`` readings per frame), and that node runs with
``odometry_topic: odom`` and ``localizer.query_spacing_m: ODOMETRY_SPACING_M``, publishing
on ``odometry/pose`` and ``odometry/fix``. It is stopped (SIGINT) before the burst.

Writes ``OUT/report.json``: every message received (with its wall-clock arrival time),
the players' logs (frame index, stamp, wall-clock send time), phase boundaries and the
node's exit status. The pytest tests judge the report.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from ros_env import require_private_network, ros_environment  # noqa: E402
from ros_world import ROUTE, World  # noqa: E402

# The shipped parameters, with a queue long enough that a loaded test machine drops no
# frame at 10 Hz (the 10 Hz poses are compared with the offline run frame for frame).
QUEUE_SIZE = 25
KILL_AFTER = 50
RESTART_GAP = 10
SLOW_HZ = 10.0
FAST_HZ = 100.0
NODE_NAME = "seqvpr_localization"
ODOMETRY_NODE = "seqvpr_odometry"
ODOMETRY_TOPIC = "odom"
# Metres of odometry between keyframes: the route moves about 1.55 m per 0.2 s frame, so
# this makes about twice the keyframes of one a second (the time rule), clearly apart.
ODOMETRY_SPACING_M = 4.0
ODOMETRY_PER_FRAME = 4


class Recorder:
    """Collects pose, fix and diagnostics messages with their arrival times (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.poses: list[dict] = []
        self.fixes: list[dict] = []
        self.diagnostics: list[dict] = []
        self.odometry_poses: list[dict] = []
        self.odometry_fixes: list[dict] = []
        self.odometry_diagnostics: list[dict] = []

    @staticmethod
    def _stamp(stamp) -> list[int]:
        return [stamp.sec, stamp.nanosec] if hasattr(stamp, "nanosec") else [stamp.secs, stamp.nsecs]

    def on_pose(self, message, into: str = "poses") -> None:
        now = time.time()
        covariance = list(message.pose.covariance)
        record = {"stamp": self._stamp(message.header.stamp), "frame_id": message.header.frame_id, "wall": now,
                  "x": message.pose.pose.position.x, "y": message.pose.pose.position.y,
                  "qz": message.pose.pose.orientation.z, "qw": message.pose.pose.orientation.w,
                  "covariance": covariance}
        with self.lock:
            getattr(self, into).append(record)

    def on_fix(self, message, into: str = "fixes") -> None:
        now = time.time()
        record = {"stamp": self._stamp(message.header.stamp), "frame_id": message.header.frame_id, "wall": now,
                  "latitude": message.latitude, "longitude": message.longitude,
                  "status": int(message.status.status), "covariance": list(message.position_covariance)}
        with self.lock:
            getattr(self, into).append(record)

    def on_odometry_pose(self, message) -> None:
        self.on_pose(message, "odometry_poses")

    def on_odometry_fix(self, message) -> None:
        self.on_fix(message, "odometry_fixes")

    def on_diagnostics(self, message) -> None:
        now = time.time()
        for status in message.status:
            if status.name.endswith(": localization"):
                level = status.level if isinstance(status.level, int) else status.level[0]
                record = {"wall": now, "name": status.name, "level": level, "message": status.message,
                          "values": {item.key: item.value for item in status.values}}
                into = self.odometry_diagnostics if status.name.startswith(f"/{ODOMETRY_NODE}:") else self.diagnostics
                with self.lock:
                    into.append(record)

    def report(self) -> dict:
        with self.lock:
            return {"poses": list(self.poses), "fixes": list(self.fixes), "diagnostics": list(self.diagnostics),
                    "odometry": {"poses": list(self.odometry_poses), "fixes": list(self.odometry_fixes),
                                 "diagnostics": list(self.odometry_diagnostics)}}


def _subscribe_ros2(recorder: Recorder):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import NavSatFix

    rclpy.init()
    node = rclpy.create_node("live_test_recorder")
    node.create_subscription(PoseWithCovarianceStamped, "pose", recorder.on_pose, 100)
    node.create_subscription(NavSatFix, "fix", recorder.on_fix, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", recorder.on_diagnostics, 100)
    node.create_subscription(PoseWithCovarianceStamped, "odometry/pose", recorder.on_odometry_pose, 100)
    node.create_subscription(NavSatFix, "odometry/fix", recorder.on_odometry_fix, 100)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()

    def close() -> None:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()

    return close


def _subscribe_ros1(recorder: Recorder):
    from seqvpr.ros.ros1_path import enable_ros1_imports

    enable_ros1_imports()
    import rospy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from sensor_msgs.msg import NavSatFix

    rospy.init_node("live_test_recorder", disable_signals=True)
    rospy.Subscriber("pose", PoseWithCovarianceStamped, recorder.on_pose, queue_size=100)
    rospy.Subscriber("fix", NavSatFix, recorder.on_fix, queue_size=100)
    rospy.Subscriber("/diagnostics", DiagnosticArray, recorder.on_diagnostics, queue_size=100)
    rospy.Subscriber("odometry/pose", PoseWithCovarianceStamped, recorder.on_odometry_pose, queue_size=100)
    rospy.Subscriber("odometry/fix", NavSatFix, recorder.on_odometry_fix, queue_size=100)
    return lambda: rospy.signal_shutdown("test finished")


def _wait_for_master(env: dict, timeout_s: float) -> None:
    import xmlrpc.client

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            xmlrpc.client.ServerProxy(env["ROS_MASTER_URI"]).getSystemState("/live_test")
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("roscore did not come up")


def _params_file(out: Path, node_name: str = NODE_NAME, odometry: bool = False) -> Path:
    """config/localization_node.yaml with ``queue_size`` set to QUEUE_SIZE, for ``node_name``;
    with ``odometry``, the odometry node's ``odometry_topic`` and ``localizer.query_spacing_m``."""
    import yaml

    document = yaml.safe_load((REPO / "config" / "localization_node.yaml").read_text(encoding="utf-8"))
    parameters = document.pop(NODE_NAME)["ros__parameters"]
    parameters["queue_size"] = QUEUE_SIZE
    if odometry:
        parameters["odometry_topic"] = ODOMETRY_TOPIC
        parameters["localizer"]["query_spacing_m"] = ODOMETRY_SPACING_M
    path = out / f"{node_name}.yaml"
    path.write_text(yaml.safe_dump({node_name: {"ros__parameters": parameters}}), encoding="utf-8")
    return path


def _start_node(ros: str, world: World, env: dict, out: Path) -> tuple[subprocess.Popen, list[subprocess.Popen]]:
    """The node process (roslaunch for ROS 1) and helper processes to stop after it (roscore)."""
    log = open(out / "node.log", "w", encoding="utf-8")  # noqa: SIM115 - closed with the process
    params = _params_file(out)
    if ros == "2":
        command = [sys.executable, "-m", "seqvpr.ros.ros2_node", "--ros-args", "--params-file", str(params),
                   "-p", f"map_dir:={world.map_dir}", "-p", f"model:={world.model}"]
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), []
    core_log = open(out / "roscore.log", "w", encoding="utf-8")  # noqa: SIM115
    roscore = subprocess.Popen(["roscore", "-p", "11311"], env=env, stdout=core_log, stderr=subprocess.STDOUT)
    _wait_for_master(env, 60)
    command = ["roslaunch", "--wait", str(REPO / "launch" / "localization.launch"),
               f"map_dir:={world.map_dir}", f"model:={world.model}", f"params_file:={params}"]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), [roscore]


def _start_odometry_node(ros: str, world: World, env: dict, out: Path) -> subprocess.Popen:
    """The second node, localizing with odometry, its outputs remapped to ``odometry/...``.

    ROS 2: the params file for its name; ROS 1: the node script with its parameters as
    private command-line parameters (roslaunch would restart a node of the same name).
    """
    log = open(out / "odometry_node.log", "w", encoding="utf-8")  # noqa: SIM115 - closed with the process
    remaps = ["pose:=odometry/pose", "fix:=odometry/fix"]
    if ros == "2":
        command = [sys.executable, "-m", "seqvpr.ros.ros2_node", "--ros-args", "-r", f"__node:={ODOMETRY_NODE}",
                   "--params-file", str(_params_file(out, ODOMETRY_NODE, odometry=True)),
                   "-p", f"map_dir:={world.map_dir}", "-p", f"model:={world.model}"]
        for remap in remaps:
            command += ["-r", remap]
    else:
        command = [sys.executable, str(REPO / "scripts" / "seqvpr-ros1"), f"__name:={ODOMETRY_NODE}",
                   f"_map_dir:={world.map_dir}", f"_model:={world.model}", f"_queue_size:={QUEUE_SIZE}",
                   f"_odometry_topic:={ODOMETRY_TOPIC}", f"_localizer/query_spacing_m:={ODOMETRY_SPACING_M}",
                   *remaps]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _player(ros: str, world: World, first: int, count: int, rate_hz: float, log: Path, env: dict,
            go: Path | None = None, odometry: bool = False) -> subprocess.Popen:
    command = [sys.executable, str(HERE / "traverse_player.py"), "--ros", ros, "--traverse", str(world.query),
               "--first", str(first), "--count", str(count), "--rate-hz", str(rate_hz), "--log", str(log)]
    if go is not None:
        command += ["--go", str(go)]
    if odometry:
        command += ["--odometry-topic", ODOMETRY_TOPIC, "--odometry-per-frame", str(ODOMETRY_PER_FRAME),
                    "--subscribers", "2"]
    return subprocess.Popen(command, env=env)


def _wait_for_stale(recorder: Recorder, since: float, timeout_s: float) -> None:
    """Waits for a STALE ("no image for ...") diagnostics message sent after ``since``.

    Returns quietly on timeout: the test that asks for STALE then fails with its own message.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with recorder.lock:
            stale = any(item["wall"] > since and item["level"] == 3 and "no image for" in item["message"]
                        for item in recorder.diagnostics)
        if stale:
            return
        time.sleep(0.1)


def _wait_until_drained(recorder: Recorder, since: float, timeout_s: float, which: str = "diagnostics") -> None:
    """Waits for a diagnostics message, sent after ``since``, whose counters show an empty queue
    (``which``: ``diagnostics`` for the node, ``odometry_diagnostics`` for the odometry node)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with recorder.lock:
            messages = getattr(recorder, which)
            latest = messages[-1] if messages else None
        if latest is not None and latest["wall"] > since:
            counts = {key: int(latest["values"][key])
                      for key in ("received", "processed", "dropped", "failed", "queued")}
            handled = counts["processed"] + counts["dropped"] + counts["failed"]
            if counts["queued"] == 0 and counts["received"] == handled:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the queue of the node ({which}) did not drain within {timeout_s} s")


def _lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _wait(process: subprocess.Popen, timeout_s: float, what: str) -> int:
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise RuntimeError(f"{what} did not finish within {timeout_s} s") from None


def _interrupt(process: subprocess.Popen, timeout_s: float) -> int | str:
    """SIGINT (a node's clean shutdown), then its exit status, or a kill after ``timeout_s``."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return f"killed after {timeout_s:g} s"


def run(ros: str, world: World, out: Path) -> dict:
    env = ros_environment(out)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["ROS_PACKAGE_PATH"] = str(REPO)
    os.environ.update(env)
    node, helpers = _start_node(ros, world, env, out)
    odometry_node = _start_odometry_node(ros, world, env, out)
    odometry_status = None
    recorder = Recorder()
    close = _subscribe_ros2(recorder) if ros == "2" else _subscribe_ros1(recorder)
    phases: dict[str, float] = {}
    fast_player = None
    try:
        slow_log, fast_log, go = out / "player_slow.log", out / "player_fast.log", out / "go_fast"
        first, last = world.phases["stress"]
        fast_player = _player(ros, world, first, last - first, FAST_HZ, fast_log, env, go)
        phases["slow_start"] = time.time()
        player = _player(ros, world, 0, ROUTE, SLOW_HZ, slow_log, env, odometry=True)
        deadline = time.monotonic() + 120
        while len(_lines(slow_log)) < KILL_AFTER:
            for process, log_name in ((node, "node.log"), (odometry_node, "odometry_node.log")):
                if process.poll() is not None:
                    player.kill()
                    raise RuntimeError(f"{log_name}: the node exited with {process.poll()}: "
                                       f"{(out / log_name).read_text()[-3000:]}")
            if time.monotonic() > deadline or player.poll() is not None:
                raise RuntimeError(f"the first player stopped early (exit {player.poll()}); see {out}/node.log")
            time.sleep(0.01)
        player.send_signal(signal.SIGKILL)
        player.wait()
        phases["killed"] = time.time()
        # The restart waits for the node to report STALE: how long a fresh player takes to
        # start varies with the machine's load, and a quick one came back before the
        # diagnostics, once a second, could see two seconds without an image.
        _wait_for_stale(recorder, phases["killed"], 30)
        alive_after_kill = node.poll() is None
        restart = KILL_AFTER + RESTART_GAP
        end = world.phases["foreign"][1]
        _wait(_player(ros, world, restart, end - restart, SLOW_HZ, slow_log, env, odometry=True), 120,
              "the restarted player")
        # Every 10 Hz frame is handled and its pose out before the burst starts (a loaded
        # machine can still be encoding the last keyframe a few seconds after the player ends).
        _wait_until_drained(recorder, time.time(), 90)
        _wait_until_drained(recorder, time.time(), 90, "odometry_diagnostics")
        odometry_status = _interrupt(odometry_node, 30)
        time.sleep(1.0)
        phases["fast_start"] = time.time()
        go.touch()
        _wait(fast_player, 120, "the 100 Hz player")
        phases["fast_end"] = time.time()
        _wait_until_drained(recorder, phases["fast_end"], 90)
        alive_at_end = node.poll() is None
    finally:
        if fast_player is not None and fast_player.poll() is None:
            fast_player.kill()
        if odometry_node.poll() is None:
            odometry_node.kill()
        close()
        node_status = _interrupt(node, 30)
        for helper in helpers:
            _interrupt(helper, 15)
    report = recorder.report()
    report.update(phases=phases, alive_after_kill=alive_after_kill, alive_at_end=alive_at_end,
                  node_status=node_status, slow_log=_lines(slow_log), fast_log=_lines(fast_log),
                  node_log=(out / "node.log").read_text(encoding="utf-8", errors="replace")[-20000:])
    report["odometry"].update(
        node_status=odometry_status, spacing_m=ODOMETRY_SPACING_M, topic=ODOMETRY_TOPIC,
        node_log=(out / "odometry_node.log").read_text(encoding="utf-8", errors="replace")[-20000:])
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ros", choices=("1", "2"), required=True)
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    require_private_network()
    world = World(args.world, args.world / "map", args.world / "model" / "encoder.pt", args.world / "query")
    report = run(args.ros, world, args.out)
    (args.out / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
