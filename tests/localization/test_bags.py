"""Bags through rosbags: export every format and encoding, read them back, clear errors, estimates copied in."""

from __future__ import annotations

import numpy as np
import pytest

from seqvpr.data.images import read_rgb
from seqvpr.data.traverse import read_traverse, write_traverse
from seqvpr.errors import SeqvprError
from seqvpr.localization import Estimate, Status
from seqvpr.localization.bags import _BagWriter, bag_frames, bag_topics, export_traverse, write_estimates_bag


@pytest.fixture(scope="module")
def short_traverse(world, tmp_path_factory):
    """The first 24 frames of a query traverse, as a traverse folder of its own."""
    source = world.queries[0]
    folder = tmp_path_factory.mktemp("short") / source.name
    folder.mkdir()
    (folder / "images").symlink_to(source.root / "images")
    keep = np.zeros(len(source), dtype=bool)
    keep[:24] = True
    write_traverse(source.subset(keep), folder)
    return read_traverse(folder)


def _suffix(fmt):
    return ".bag" if fmt == "ros1" else ""


@pytest.mark.parametrize(("fmt", "encoding", "tolerance"), [
    ("ros1", "rgb8", 0), ("ros2-sqlite3", "bgr8", 0), ("mcap", "png", 0), ("mcap", "jpeg", 12),
    ("ros1", "mono8", None), ("ros2-sqlite3", "bayer_rggb8", 12), ("ros1", "bayer_gbrg8", 12),
])
def test_export_and_read_back(short_traverse, tmp_path, fmt, encoding, tolerance):
    path = export_traverse(short_traverse.root, tmp_path / f"bag{_suffix(fmt)}", fmt, encoding=encoding)
    assert bag_topics(path) == {
        "/camera/image_raw": "sensor_msgs/msg/CompressedImage" if encoding in ("png", "jpeg")
        else "sensor_msgs/msg/Image",
        "/gps/fix": "sensor_msgs/msg/NavSatFix",
    }
    frames = bag_frames(path, "/camera/image_raw", short_traverse.zone, "/gps/fix")
    assert len(frames) == len(short_traverse)
    np.testing.assert_allclose([f.stamp_s for f in frames], short_traverse.times_s, atol=1e-6)
    truth = np.array([f.truth for f in frames])
    np.testing.assert_allclose(truth, short_traverse.positions, atol=0.01)
    original = read_rgb(short_traverse.image_path(3))
    image = frames[3].image
    assert image.shape == original.shape and image.dtype == np.uint8
    if encoding == "mono8":
        grey = original.mean(axis=2).round()
        assert np.abs(image[..., 0].astype(float) - grey).max() <= 0.5
        assert np.array_equal(image[..., 0], image[..., 2])
    else:
        assert np.abs(image.astype(float) - original).mean() <= tolerance + 1e-9


def test_topic_and_encoding_errors_are_clear(short_traverse, tmp_path):
    path = export_traverse(short_traverse.root, tmp_path / "a.bag", "ros1")
    with pytest.raises(SeqvprError, match=r"no topic '/camera/left' for images; the bag has \['/camera/image_raw'"):
        bag_frames(path, "/camera/left", short_traverse.zone)
    with pytest.raises(SeqvprError, match="topic /gps/fix has type sensor_msgs/msg/NavSatFix; images must be"):
        bag_frames(path, "/gps/fix", short_traverse.zone)
    with pytest.raises(SeqvprError, match="does not exist"):
        bag_frames(tmp_path / "none.bag", "/x", short_traverse.zone)
    (tmp_path / "junk.bag").write_bytes(b"not a bag at all")
    with pytest.raises(SeqvprError, match="not a readable ROS 1 or ROS 2 bag"):
        bag_topics(tmp_path / "junk.bag")
    with pytest.raises(SeqvprError, match="exists"):
        export_traverse(short_traverse.root, path, "ros1")
    with pytest.raises(SeqvprError, match="format must be one of"):
        export_traverse(short_traverse.root, tmp_path / "b", "ros3")


def _bag_with(tmp_path, name, messages):
    """A ROS 2 bag with the given (topic, msgtype, builder(bag) -> message) entries at t = 1 s."""
    path = tmp_path / name
    with _BagWriter(path, "ros2-sqlite3") as bag:
        for topic, msgtype, build in messages:
            if build is None:
                bag.connection(topic, msgtype)
            else:
                bag.write(topic, msgtype, build(bag), 1.0)
    return path


def _image(encoding, height=4, width=4, data=None, stamp_s=1.0):
    def build(bag):
        pixels = np.zeros(height * width * 2, np.uint8) if data is None else data
        return bag.typestore.types["sensor_msgs/msg/Image"](
            header=bag.header(stamp_s, "c"), height=height, width=width, encoding=encoding, is_bigendian=0,
            step=width * 2, data=pixels)
    return build


def test_unsupported_encodings_empty_topics_and_corrupt_images(tmp_path, short_traverse):
    zone = short_traverse.zone
    path = _bag_with(tmp_path, "depth", [("/cam", "sensor_msgs/msg/Image", _image("16UC1"))])
    with pytest.raises(SeqvprError, match="Image encoding '16UC1' is not supported"):
        bag_frames(path, "/cam", zone)
    path = _bag_with(tmp_path, "empty", [("/cam", "sensor_msgs/msg/Image", None)])
    with pytest.raises(SeqvprError, match="topic /cam has no messages"):
        bag_frames(path, "/cam", zone)

    def compressed(kind, data):
        return lambda bag: bag.typestore.types["sensor_msgs/msg/CompressedImage"](
            header=bag.header(1.0, "c"), format=kind, data=np.frombuffer(data, np.uint8))

    path = _bag_with(tmp_path, "tiff", [("/cam", "sensor_msgs/msg/CompressedImage", compressed("tiff", b"xx"))])
    with pytest.raises(SeqvprError, match="CompressedImage format 'tiff' is not supported"):
        bag_frames(path, "/cam", zone)
    # Damaged data are not errors: they come back empty and the localizer counts them.
    path = _bag_with(tmp_path, "bad",
                     [("/cam", "sensor_msgs/msg/CompressedImage", compressed("jpeg", b"\xff\xd8junk"))])
    assert bag_frames(path, "/cam", zone)[0].image.shape == (0, 0, 3)
    path = _bag_with(tmp_path, "short",
                     [("/cam", "sensor_msgs/msg/Image", _image("rgb8", data=np.zeros(5, np.uint8)))])
    assert bag_frames(path, "/cam", zone)[0].image.shape == (0, 0, 3)


def test_estimates_are_added_to_a_copy_of_the_bag(short_traverse, tmp_path):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    for fmt in ("ros1", "mcap"):
        source = export_traverse(short_traverse.root, tmp_path / f"in{fmt}{_suffix(fmt)}", fmt)
        covariance = np.array([[4.0, 1.0], [1.0, 2.0]])
        estimates = [Estimate(float(short_traverse.times_s[i]), Status.TRACKING, easting=620000.0 + i,
                              northing=5735000.0, utm_zone=30, utm_letter="U", heading_rad=0.5, latitude=51.75,
                              longitude=-1.25, covariance=covariance, confidence=0.9, is_keyframe=True)
                     for i in range(0, 24, 4)] + [Estimate(1.0, Status.LOST)]
        out = write_estimates_bag(source, tmp_path / f"out{fmt}{_suffix(fmt)}", estimates)
        topics = bag_topics(out)
        assert topics["/seqvpr/pose"] == "geometry_msgs/msg/PoseWithCovarianceStamped"
        assert topics["/seqvpr/fix"] == "sensor_msgs/msg/NavSatFix" and "/camera/image_raw" in topics
        with AnyReader([out], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
            poses = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                     if c.topic == "/seqvpr/pose"]
            images = sum(1 for c, _, _ in reader.messages() if c.topic == "/camera/image_raw")
        assert images == 24 and len(poses) == 6
        assert [p.pose.pose.position.x for p in poses] == [620000.0 + i for i in range(0, 24, 4)]
        np.testing.assert_allclose(np.asarray(poses[0].pose.covariance).reshape(6, 6)[:2, :2], covariance)
        assert poses[0].pose.pose.orientation.z == pytest.approx(np.sin(0.25))


@pytest.mark.parametrize("fmt", ["ros1", "mcap"])
def test_export_with_odometry_and_read_back(short_traverse, tmp_path, fmt):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = export_traverse(short_traverse.root, tmp_path / f"bag{_suffix(fmt)}", fmt, odometry_topic="/odom",
                           odometry_scale=1.5)
    assert bag_topics(path)["/odom"] == "nav_msgs/msg/Odometry"
    frames = bag_frames(path, "/camera/image_raw", short_traverse.zone, "/gps/fix", odometry_topic="/odom")
    expected = 1.5 * (short_traverse.positions - short_traverse.positions[0])
    np.testing.assert_allclose(np.array([f.odometry for f in frames]), expected, atol=1e-9)
    np.testing.assert_allclose(np.array([f.truth for f in frames]), short_traverse.positions, atol=0.01)
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        odometry = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages() if c.topic == "/odom"]
    assert len(odometry) == 24 and odometry[0].header.frame_id == "odom" and odometry[0].child_frame_id == "base_link"
    yaw = [2 * np.arctan2(m.pose.pose.orientation.z, m.pose.pose.orientation.w) for m in odometry]
    np.testing.assert_allclose(np.angle(np.exp(1j * (np.array(yaw) - short_traverse.headings_rad))), 0, atol=1e-9)
    with pytest.raises(SeqvprError, match="odometry scale must be a finite number > 0, got -1"):
        export_traverse(short_traverse.root, tmp_path / "c", fmt, odometry_topic="/odom", odometry_scale=-1.0)


def test_odometry_is_interpolated_and_absent_outside_its_span(short_traverse, tmp_path):
    """PoseStamped odometry at every other frame from frame 4 to 16: interpolated between, None outside."""
    path = tmp_path / "sparse"
    times = short_traverse.times_s
    with _BagWriter(path, "ros2-sqlite3") as bag:
        types = bag.typestore.types
        for i in range(len(short_traverse)):
            bag.write("/cam", "sensor_msgs/msg/Image", _image("rgb8", stamp_s=float(times[i]))(bag), float(times[i]))
            if 4 <= i <= 16 and i % 2 == 0:
                pose = types["geometry_msgs/msg/Pose"](
                    position=types["geometry_msgs/msg/Point"](x=10.0 * i, y=-3.0 * i * i, z=0.0),
                    orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
                message = types["geometry_msgs/msg/PoseStamped"](header=bag.header(float(times[i]), "odom"),
                                                                 pose=pose)
                bag.write("/pose", "geometry_msgs/msg/PoseStamped", message, float(times[i]))
    frames = bag_frames(path, "/cam", short_traverse.zone, odometry_topic="/pose")
    assert [f.stamp_s for f in frames] == pytest.approx(times.tolist(), abs=1e-6)
    assert all(frames[i].odometry is None for i in (*range(4), *range(17, 24)))
    for i in range(4, 17):
        if i % 2 == 0:
            assert frames[i].odometry == pytest.approx((10.0 * i, -3.0 * i * i), abs=1e-6)
        else:  # linear between the neighbours, at the frame's own stamp
            share = (times[i] - times[i - 1]) / (times[i + 1] - times[i - 1])
            x = 10.0 * (i - 1) + share * 20.0
            y = -3.0 * (i - 1) ** 2 + share * -3.0 * ((i + 1) ** 2 - (i - 1) ** 2)
            assert frames[i].odometry == pytest.approx((x, y), abs=1e-6)
    assert all(f.truth is None for f in frames)


def test_odometry_topic_errors_are_clear(short_traverse, tmp_path):
    path = export_traverse(short_traverse.root, tmp_path / "a.bag", "ros1")
    with pytest.raises(SeqvprError, match=rf"{path}: no topic '/odom' for odometry; the bag has \['/camera/image_raw'"):
        bag_frames(path, "/camera/image_raw", short_traverse.zone, odometry_topic="/odom")
    wrong_type = (rf"{path}: topic /gps/fix has type sensor_msgs/msg/NavSatFix; odometry must be one of "
                  r"\['nav_msgs/msg/Odometry', 'geometry_msgs/msg/PoseStamped'\]")
    with pytest.raises(SeqvprError, match=wrong_type):
        bag_frames(path, "/camera/image_raw", short_traverse.zone, odometry_topic="/gps/fix")
    path = _bag_with(tmp_path, "silent", [("/cam", "sensor_msgs/msg/Image", _image("rgb8")),
                                          ("/odom", "nav_msgs/msg/Odometry", None)])
    with pytest.raises(SeqvprError, match="topic /odom has no usable messages"):
        bag_frames(path, "/cam", short_traverse.zone, odometry_topic="/odom")
