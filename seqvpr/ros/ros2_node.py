"""ROS 2 localization node (rclpy): camera images in, pose, fix and diagnostics out.

Run it with its parameters file (no ``ros2`` CLI needed)::

    seqvpr-ros2 --ros-args --params-file config/localization_node.yaml -p map_dir:=/maps/route
    # or: python -m seqvpr.ros.ros2_node --ros-args ...

Subscribes ``image`` (sensor_msgs/Image) or ``image/compressed``
(sensor_msgs/CompressedImage), with the sensor-data QoS (best effort, keep last), and,
when the parameter ``odometry_topic`` is set, that topic (nav_msgs/Odometry, best effort,
keep last 50: it accepts reliable and best-effort publishers); publishes ``pose``
(geometry_msgs/PoseWithCovarianceStamped), ``fix`` (sensor_msgs/NavSatFix) and
``/diagnostics`` (diagnostic_msgs/DiagnosticArray).
Parameters: ``config/localization_node.yaml`` and :class:`~seqvpr.ros.params.NodeConfig`.
"""

from __future__ import annotations

import logging
import sys

from seqvpr.errors import SeqvprError
from seqvpr.ros.params import NODE_NAME, node_config_from_parameters

__all__ = ["main"]

ODOMETRY_INSTALL_HINT = "install the ros-nav-msgs wheel (pip install -e '.[ros2]') or source a ROS 2 distribution"


def main(args: list[str] | None = None) -> int:
    """Runs the node until shutdown (Ctrl-C, SIGTERM); returns the exit status.

    Args:
        args: command line including ROS arguments (``--ros-args ...``); default sys.argv.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    from seqvpr.localization import StreamingLocalizer
    from seqvpr.ros.conversions import MessageTypes, load_odometry_type
    from seqvpr.ros.node_core import LocalizationCore, warm_up

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rclpy.init(args=args)
    node = Node(NODE_NAME, allow_undeclared_parameters=True, automatically_declare_parameters_from_overrides=True)
    name = node.get_fully_qualified_name()
    try:
        parameters = {key: parameter.value for key, parameter in node.get_parameters_by_prefix("").items()}
        config = node_config_from_parameters(parameters, f"node {name}")
        odometry_type = load_odometry_type(ODOMETRY_INSTALL_HINT) if config.odometry_topic else None
        localizer = StreamingLocalizer.from_map(config.map_dir, config=config.localizer, model=config.model)
    except SeqvprError as error:
        node.get_logger().fatal(str(error))
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    node.get_logger().info(f"warmed up in {warm_up(localizer):.1f} s")
    types = MessageTypes.load()
    pose_publisher = node.create_publisher(types.PoseWithCovarianceStamped, config.pose_topic, 10)
    fix_publisher = node.create_publisher(types.NavSatFix, config.fix_topic, 10)
    diagnostics_publisher = node.create_publisher(types.DiagnosticArray, "/diagnostics", 10)
    odometry_topic = node.resolve_topic_name(config.odometry_topic) if config.odometry_topic else ""
    core = LocalizationCore(config, localizer, types, pose_publisher.publish, fix_publisher.publish, odometry_topic)
    image_type = CompressedImage if config.image_transport == "compressed" else Image
    node.create_subscription(image_type, config.subscribed_topic, core.receive, qos_profile_sensor_data)
    if odometry_type is not None:
        odometry_qos = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
        node.create_subscription(odometry_type, config.odometry_topic, core.receive_odometry, odometry_qos)
    node.create_timer(
        config.diagnostics_period_s,
        lambda: diagnostics_publisher.publish(core.diagnostics(node.get_clock().now().to_msg(), name)),
    )
    core.start()
    node.get_logger().info(
        f"localizing {node.resolve_topic_name(config.subscribed_topic)} against map {config.map_dir}; "
        f"publishing {node.resolve_topic_name(config.pose_topic)} and {node.resolve_topic_name(config.fix_topic)}; "
        + (f"keyframes every {config.localizer.query_spacing_m} m of odometry from {odometry_topic}" if odometry_topic
           else f"keyframes every {config.localizer.query_period_s} s (no odometry)")
    )
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        core.stop()
        node.get_logger().info(f"stopping; frames: {core.counters()}")
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
