"""ROS 2: the seqvpr localization node.

    ros2 launch launch/localization.launch.py map_dir:=/maps/route model:=/maps/encoder.pt image:=/camera/image_raw

Parameters come from ``config/localization_node.yaml`` (argument ``params_file``);
``map_dir`` and ``model`` are set here. The node is the ``seqvpr-ros2`` console script
that ``pip install seqvpr[ros2]`` puts on PATH.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PARAMS_FILE = Path(__file__).resolve().parent.parent / "config" / "localization_node.yaml"


def generate_launch_description() -> LaunchDescription:
    image = LaunchConfiguration("image")
    return LaunchDescription([
        DeclareLaunchArgument("map_dir", description="map folder written by `seqvpr map build` (required)"),
        DeclareLaunchArgument("model", description="encoder checkpoint the map was built with (required)"),
        DeclareLaunchArgument("image", default_value="image",
                              description="camera topic (sensor_msgs/Image; its /compressed for compressed)"),
        DeclareLaunchArgument("odom", default_value="odom",
                              description="odometry topic (nav_msgs/Odometry), read when the parameter "
                                          "odometry_topic is odom"),
        DeclareLaunchArgument("params_file", default_value=str(PARAMS_FILE),
                              description="node parameters (ROS 2 params file)"),
        Node(
            executable="seqvpr-ros2",
            name="seqvpr_localization",  # the params file's top-level key
            output="screen",
            parameters=[
                LaunchConfiguration("params_file"),
                {"map_dir": LaunchConfiguration("map_dir"), "model": LaunchConfiguration("model")},
            ],
            remappings=[("image", image), ("image/compressed", [image, "/compressed"]),
                        ("odom", LaunchConfiguration("odom"))],
        ),
    ])
