"""ROS 1 and ROS 2 nodes around the streaming localizer: the only ROS-importing package.

- :mod:`seqvpr.ros.conversions`: stamps, images and estimates to and from messages,
  written once for both ROS versions;
- :mod:`seqvpr.ros.queue`: the drop-oldest queue and worker between callback and localizer;
- :mod:`seqvpr.ros.odometry`: recent odometry positions, interpolated at each image's stamp;
- :mod:`seqvpr.ros.params`: the node's parameters, checked;
- :mod:`seqvpr.ros.ros2_node` (``seqvpr-ros2``) and :mod:`seqvpr.ros.ros1_node`
  (``seqvpr-ros1``): the nodes;
- :mod:`seqvpr.ros.ros1_path`: ROS 1 imports beside the ROS 2 wheels.

Importing this package imports no ROS module; each node imports its ROS version in
``main``.
"""
