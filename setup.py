"""seqvpr: sequence-based visual place recognition with differentiable DTW (DecDTW)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="seqvpr",
    version="0.1.0",
    description=(
        "Sequence-based visual place recognition: NetVLAD descriptors aligned in "
        "continuous time with differentiable GDTW (DecDTW)."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["seqvpr", "seqvpr.*"]),
    package_data={"seqvpr": ["py.typed"]},
    # A ROS 2 (colcon, ament_python) workspace: the ament index marker, package.xml, the
    # launch files and the node parameters under share/seqvpr (docs/ros.md).
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/seqvpr"]),
        ("share/seqvpr", ["package.xml"]),
        ("share/seqvpr/launch", ["launch/localization.launch", "launch/localization.launch.py"]),
        ("share/seqvpr/config", ["config/localization_node.yaml"]),
    ],
    install_requires=[
        # torch is pinned by the Makefile to the release on local disk; any 2.x works.
        "torch>=2.1,<3",
        "torchvision>=0.16",
        "numpy>=1.24",
        "scipy>=1.10",
        "numba>=0.59",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "opencv-python-headless>=4.8",
        "utm>=0.7",
        "matplotlib>=3.7",
    ],
    extras_require={
        # faiss is an extra so that GPU users get faiss-gpu *instead of* faiss-cpu
        # (both install the same `faiss` module and must not be installed together).
        "cpu": ["faiss-cpu>=1.7.4"],
        "gpu": ["faiss-gpu>=1.7.4"],
        # synctoolbox is the peer method in the audio evaluation; it pins numba < 0.66.
        "audio": [
            "librosa>=0.10",
            "music21>=9.1",
            "pretty_midi>=0.2.10",
            "pyfluidsynth>=1.3",
            "soundfile>=0.12",
            "synctoolbox>=1.4",
        ],
        # Offline replay of ROS 1 and ROS 2 bags (no ROS install needed).
        "ros": ["rosbags>=0.9.20"],
        # The ROS 2 node: rclpy and the message packages as Python wheels. The ROS 1 node
        # uses Debian's rospy (tools/install_system_packages.sh).
        "ros2": [
            "ros-rclpy",
            "ros-std-msgs",
            "ros-sensor-msgs",
            "ros-geometry-msgs",
            "ros-nav-msgs",
            "ros-diagnostic-msgs",
            "ros-rmw-fastrtps-cpp",
        ],
        "dev": ["pytest>=7.4", "pytest-timeout>=2.2", "tslearn>=0.6"],
    },
    entry_points={
        "console_scripts": [
            "seqvpr=seqvpr.cli:main",
            "seqvpr-ros2=seqvpr.ros.ros2_node:main",
            "seqvpr-ros1=seqvpr.ros.ros1_node:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
