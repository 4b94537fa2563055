"""ROS 1 localization node (rospy): the ROS 2 node's topics and parameters, for ROS 1 robots.

Start it with ``roslaunch launch/localization.launch map_dir:=/maps/route`` (a roscore
must run, or roslaunch starts one). With the parameter ``odometry_topic`` it also
subscribes nav_msgs/Odometry there (Debian's ``python3-nav-msgs``; without it the node
stops at start with a message saying so). It reads its private parameters, which the launch
file loads from ``config/localization_node.yaml``; see :mod:`seqvpr.ros.ros2_node` for
topics and :class:`~seqvpr.ros.params.NodeConfig` for parameters. Debian's rospy is
imported beside the ROS 2 wheels through :mod:`seqvpr.ros.ros1_path`.
"""

from __future__ import annotations

import logging
import sys

from seqvpr.errors import SeqvprError
from seqvpr.ros.params import NODE_NAME, merge_ros1_parameters, node_config_from_parameters
from seqvpr.ros.ros1_path import enable_ros1_imports

__all__ = ["main"]

ODOMETRY_INSTALL_HINT = "Debian: apt-get install python3-nav-msgs (or source a ROS 1 setup.bash that has nav_msgs)"


def main(args: list[str] | None = None) -> int:
    """Runs the node until shutdown; returns the exit status.

    Args:
        args: command line including ROS remappings (``image:=/camera/image_raw``,
            ``__name:=...``); default sys.argv.
    """
    enable_ros1_imports()
    import rospy
    from sensor_msgs.msg import CompressedImage, Image

    from seqvpr.localization import StreamingLocalizer
    from seqvpr.ros.conversions import MessageTypes, load_odometry_type
    from seqvpr.ros.node_core import LocalizationCore, warm_up

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rospy.init_node(NODE_NAME, argv=sys.argv if args is None else args)
    name = rospy.get_name()
    try:
        config = node_config_from_parameters(merge_ros1_parameters(rospy.get_param("~", {})), f"node {name}")
        odometry_type = load_odometry_type(ODOMETRY_INSTALL_HINT) if config.odometry_topic else None
        localizer = StreamingLocalizer.from_map(config.map_dir, config=config.localizer, model=config.model)
    except SeqvprError as error:
        rospy.logfatal(str(error))
        rospy.signal_shutdown(str(error))
        return 2
    rospy.loginfo(f"warmed up in {warm_up(localizer):.1f} s")
    types = MessageTypes.load()
    pose_publisher = rospy.Publisher(config.pose_topic, types.PoseWithCovarianceStamped, queue_size=10)
    fix_publisher = rospy.Publisher(config.fix_topic, types.NavSatFix, queue_size=10)
    diagnostics_publisher = rospy.Publisher("/diagnostics", types.DiagnosticArray, queue_size=10)
    odometry_topic = rospy.resolve_name(config.odometry_topic) if config.odometry_topic else ""
    core = LocalizationCore(config, localizer, types, pose_publisher.publish, fix_publisher.publish, odometry_topic)
    image_type = CompressedImage if config.image_transport == "compressed" else Image
    # rospy's own queue only buffers for the (quick) callback; ours decides what to drop and counts it.
    rospy.Subscriber(config.subscribed_topic, image_type, core.receive, queue_size=10, buff_size=2**24,
                     tcp_nodelay=True)
    if odometry_type is not None:
        rospy.Subscriber(config.odometry_topic, odometry_type, core.receive_odometry, queue_size=50,
                         tcp_nodelay=True)
    rospy.Timer(
        rospy.Duration.from_sec(config.diagnostics_period_s),
        lambda _event: diagnostics_publisher.publish(core.diagnostics(rospy.Time.now(), name)),
    )
    core.start()
    rospy.loginfo(
        f"localizing {rospy.resolve_name(config.subscribed_topic)} against map {config.map_dir}; "
        f"publishing {rospy.resolve_name(config.pose_topic)} and {rospy.resolve_name(config.fix_topic)}; "
        + (f"keyframes every {config.localizer.query_spacing_m} m of odometry from {odometry_topic}" if odometry_topic
           else f"keyframes every {config.localizer.query_period_s} s (no odometry)")
    )
    try:
        rospy.spin()
    finally:
        core.stop()
        rospy.loginfo(f"stopping; frames: {core.counters()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
