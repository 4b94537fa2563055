"""ROS bags without ROS: read camera frames and ground truth, write traverses and estimates.

All through the ``rosbags`` package (``pip install seqvpr[ros]``), which reads and writes
ROS 1 ``.bag`` files and ROS 2 bags (sqlite3 or MCAP storage) in pure Python.

- :func:`export_traverse`: a prepared traverse as a bag: ``sensor_msgs/Image`` (or
  ``CompressedImage``) on the image topic and ``sensor_msgs/NavSatFix`` at every image stamp;
  optionally ``nav_msgs/Odometry`` too (the positions relative to the first frame, times a
  scale that simulates a wheel odometry reading long or short).
- :func:`bag_topics`, :func:`bag_frames`: frames of an image topic (``Image`` in ``rgb8``,
  ``bgr8``, ``mono8`` or ``bayer_{rggb,bggr,gbrg,grbg}8``; ``CompressedImage`` in JPEG or
  PNG) with ground truth interpolated from a ``NavSatFix``, ``nav_msgs/Odometry`` or
  ``geometry_msgs/PoseStamped`` topic (Odometry and PoseStamped positions are read as UTM
  easting = x, northing = y in the map's zone), and odometry positions (x, y) in the
  odometry's own frame interpolated from an ``Odometry`` or ``PoseStamped`` topic.
- :func:`write_estimates_bag`: a copy of a bag with the estimates added as
  ``PoseWithCovarianceStamped`` (x = easting, y = northing) and ``NavSatFix``.

Stamps are the message header stamps (seconds); a zero header stamp falls back to the
bag's receive time. Pixel data that do not match the header, or a compressed image that
does not decode, become empty arrays, which the localizer counts as corrupt images.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from seqvpr.data.geo import UtmZone, latlon_to_utm, utm_to_latlon
from seqvpr.errors import SeqvprError

__all__ = ["FORMATS", "IMAGE_ENCODINGS", "ODOMETRY_TYPES", "export_traverse", "bag_topics", "check_topics",
           "bag_frames", "decode_image", "write_estimates_bag"]

FORMATS = ("ros1", "ros2-sqlite3", "mcap")
IMAGE_ENCODINGS = ("rgb8", "bgr8", "mono8", "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8")
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
NAVSATFIX = "sensor_msgs/msg/NavSatFix"
ODOMETRY = "nav_msgs/msg/Odometry"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_COV = "geometry_msgs/msg/PoseWithCovarianceStamped"
TRUTH_TYPES = (NAVSATFIX, ODOMETRY, POSE_STAMPED)
ODOMETRY_TYPES = (ODOMETRY, POSE_STAMPED)


def _rosbags():
    try:
        import rosbags  # noqa: F401
    except ImportError as error:  # pragma: no cover - the CI install has rosbags
        raise SeqvprError("reading and writing bags needs rosbags: `pip install seqvpr[ros]`") from error
    from rosbags.typesys import Stores, get_typestore

    return Stores, get_typestore


class _BagWriter:
    """One writer interface over ROS 1 and ROS 2 (sqlite3, MCAP) bags, with message builders."""

    def __init__(self, path: Path, fmt: str) -> None:
        Stores, get_typestore = _rosbags()
        if fmt not in FORMATS:
            raise SeqvprError(f"bag format must be one of {FORMATS}, got {fmt!r}")
        self.fmt = fmt
        self.ros1 = fmt == "ros1"
        self.typestore = get_typestore(Stores.ROS1_NOETIC if self.ros1 else Stores.ROS2_HUMBLE)
        if self.ros1:
            from rosbags.rosbag1 import Writer

            self.writer = Writer(path)
        else:
            from rosbags.rosbag2 import StoragePlugin, Writer

            plugin = StoragePlugin.MCAP if fmt == "mcap" else StoragePlugin.SQLITE3
            self.writer = Writer(path, version=9, storage_plugin=plugin)
        self.connections: dict[str, Any] = {}
        self.sequence = 0

    def __enter__(self) -> _BagWriter:
        self.writer.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.writer.close()

    def connection(self, topic: str, msgtype: str, source: Any = None) -> Any:
        if topic not in self.connections:
            if source is not None and self.ros1:
                self.connections[topic] = self.writer.add_connection(
                    topic, msgtype, msgdef=source.msgdef.data if hasattr(source.msgdef, "data") else source.msgdef,
                    md5sum=source.digest)
            elif source is not None and not self.ros1 and hasattr(source.ext, "serialization_format"):
                self.connections[topic] = self.writer.add_connection(
                    topic, msgtype, typestore=self.typestore, serialization_format=source.ext.serialization_format,
                    offered_qos_profiles=source.ext.offered_qos_profiles)
            else:
                self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
        return self.connections[topic]

    def write(self, topic: str, msgtype: str, message: Any, stamp_s: float) -> None:
        data = (self.typestore.serialize_ros1(message, msgtype) if self.ros1
                else self.typestore.serialize_cdr(message, msgtype))
        self.writer.write(self.connection(topic, msgtype), int(round(stamp_s * 1e9)), data)

    def header(self, stamp_s: float, frame_id: str) -> Any:
        types = self.typestore.types
        seconds = math.floor(stamp_s)
        nanoseconds = int(round((stamp_s - seconds) * 1e9))
        if nanoseconds >= 1_000_000_000:
            seconds, nanoseconds = seconds + 1, nanoseconds - 1_000_000_000
        stamp = types["builtin_interfaces/msg/Time"](sec=int(seconds), nanosec=nanoseconds)
        if self.ros1:
            self.sequence += 1
            return types["std_msgs/msg/Header"](seq=self.sequence, stamp=stamp, frame_id=frame_id)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def odometry(self, stamp_s: float, frame_id: str, child_frame_id: str, x: float, y: float,
                 yaw_rad: float) -> Any:
        """A ``nav_msgs/Odometry`` at (x, y) heading ``yaw_rad``; twist and covariances zero (unknown)."""
        types = self.typestore.types
        point = types["geometry_msgs/msg/Point"](x=x, y=y, z=0.0)
        orientation = types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw_rad / 2),
                                                             w=math.cos(yaw_rad / 2))
        pose = types["geometry_msgs/msg/PoseWithCovariance"](
            pose=types["geometry_msgs/msg/Pose"](position=point, orientation=orientation), covariance=np.zeros(36))
        still = types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
        twist = types["geometry_msgs/msg/TwistWithCovariance"](
            twist=types["geometry_msgs/msg/Twist"](linear=still, angular=still), covariance=np.zeros(36))
        return types[ODOMETRY](header=self.header(stamp_s, frame_id), child_frame_id=child_frame_id, pose=pose,
                               twist=twist)

    def navsatfix(self, stamp_s: float, frame_id: str, latitude: float, longitude: float,
                  covariance_en: np.ndarray | None = None) -> Any:
        types = self.typestore.types
        status = types["sensor_msgs/msg/NavSatStatus"](status=0, service=1)
        covariance = np.zeros(9)
        kind = 0
        if covariance_en is not None:
            covariance[[0, 1, 3, 4]] = np.asarray(covariance_en).reshape(-1)
            covariance[8] = 1e6
            kind = 3
        return types[NAVSATFIX](header=self.header(stamp_s, frame_id), status=status, latitude=latitude,
                                longitude=longitude, altitude=0.0, position_covariance=covariance,
                                position_covariance_type=kind)


def export_traverse(
    traverse_dir: str | Path,
    out: str | Path,
    fmt: str,
    *,
    image_topic: str = "/camera/image_raw",
    fix_topic: str = "/gps/fix",
    frame_id: str = "camera",
    encoding: str = "rgb8",
    odometry_topic: str | None = None,
    odometry_scale: float = 1.0,
) -> Path:
    """Write a prepared traverse as a bag: its images and a NavSatFix at every image stamp.

    Args:
        traverse_dir: a prepared traverse folder (``traverse.csv``).
        out: the bag: a ``.bag`` file (``ros1``) or a ROS 2 bag folder (``ros2-sqlite3``,
            ``mcap``); must not exist.
        fmt: one of ``FORMATS``.
        image_topic, fix_topic, frame_id: topic names and the images' frame.
        encoding: ``Image`` encoding (one of ``IMAGE_ENCODINGS``) or ``jpeg`` / ``png`` for
            ``CompressedImage``.
        odometry_topic: also write a ``nav_msgs/Odometry`` at every image stamp on this
            topic (frame ``odom``, child ``base_link``): position = (UTM position - first
            frame's) x ``odometry_scale``, so the odom axes are grid east and north;
            orientation = the traverse's heading; twist and covariances zero (unknown).
        odometry_scale: multiplies the odometry positions (1.02 reads 2 % long, as a wheel
            odometry with a scale error would); > 0.
    """
    from seqvpr.data.images import bayer_mosaic, read_rgb
    from seqvpr.data.traverse import read_traverse

    if encoding not in (*IMAGE_ENCODINGS, "jpeg", "png"):
        raise SeqvprError(f"image encoding must be one of {(*IMAGE_ENCODINGS, 'jpeg', 'png')}, got {encoding!r}")
    if not (math.isfinite(odometry_scale) and odometry_scale > 0):
        raise SeqvprError(f"odometry scale must be a finite number > 0, got {odometry_scale!r}")
    out = Path(out)
    if out.exists():
        raise SeqvprError(f"bag {out} exists; remove it or choose another path")
    traverse = read_traverse(traverse_dir)
    latitudes, longitudes = utm_to_latlon(traverse.positions, traverse.zone)
    temporary = out.with_name(f".{out.name}.partial")
    _remove(temporary)
    with _BagWriter(temporary, fmt) as bag:
        types = bag.typestore.types
        for i in range(len(traverse)):
            stamp = float(traverse.times_s[i])
            rgb = read_rgb(traverse.image_path(i))
            header = bag.header(stamp, frame_id)
            if encoding in ("jpeg", "png"):
                import cv2

                ok, data = cv2.imencode(f".{'jpg' if encoding == 'jpeg' else 'png'}", rgb[..., ::-1])
                message = types[COMPRESSED](header=header, format=f"rgb8; {encoding} compressed bgr8",
                                            data=np.frombuffer(data.tobytes(), np.uint8))
                bag.write(image_topic, COMPRESSED, message, stamp)
            else:
                pixels = _encode_pixels(rgb, encoding, bayer_mosaic)
                height, width = pixels.shape[:2]
                message = types[IMAGE](header=header, height=height, width=width, encoding=encoding,
                                       is_bigendian=0, step=pixels.strides[0], data=pixels.reshape(-1))
                bag.write(image_topic, IMAGE, message, stamp)
            bag.write(fix_topic, NAVSATFIX, bag.navsatfix(stamp, "gps", float(latitudes[i]), float(longitudes[i])),
                      stamp)
            if odometry_topic is not None:
                x, y = odometry_scale * (traverse.positions[i] - traverse.positions[0])
                bag.write(odometry_topic, ODOMETRY, bag.odometry(stamp, "odom", "base_link", float(x), float(y),
                                                                 float(traverse.headings_rad[i])), stamp)
    temporary.rename(out)
    return out


def _encode_pixels(rgb: np.ndarray, encoding: str, bayer_mosaic: Any) -> np.ndarray:
    if encoding == "rgb8":
        return np.ascontiguousarray(rgb)
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[..., ::-1])
    if encoding == "mono8":
        return np.ascontiguousarray(rgb.mean(axis=2).round().astype(np.uint8))
    even = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]
    return np.ascontiguousarray(bayer_mosaic(even, encoding[len("bayer_"):-1]))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _reader(path: Path):
    _rosbags()
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not path.exists():
        raise SeqvprError(f"bag {path} does not exist")
    try:
        return AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
    except Exception as error:  # rosbags raises its own error types per format
        raise SeqvprError(f"{path}: not a readable ROS 1 or ROS 2 bag ({error})") from error


def bag_topics(path: str | Path) -> dict[str, str]:
    """Topic -> message type of every topic in the bag."""
    path = Path(path)
    with _open(path) as reader:
        return {connection.topic: connection.msgtype for connection in reader.connections}


@contextmanager
def _open(path: Path) -> Iterator[Any]:
    reader = _reader(path)
    try:
        reader.open()
    except Exception as error:  # rosbags raises its own error types per format
        raise SeqvprError(f"{path}: not a readable ROS 1 or ROS 2 bag ({error})") from error
    try:
        yield reader
    finally:
        reader.close()


def _stamp(message: Any, receive_ns: int) -> float:
    stamp = message.header.stamp
    seconds = stamp.sec + stamp.nanosec * 1e-9
    return seconds if seconds > 0 else receive_ns * 1e-9


def _require_topic(topics: dict[str, str], topic: str, allowed: Sequence[str], path: Path, role: str) -> str:
    if topic not in topics:
        raise SeqvprError(f"{path}: no topic {topic!r} for {role}; the bag has {sorted(topics) or 'no topics'}")
    if topics[topic] not in allowed:
        raise SeqvprError(f"{path}: topic {topic} has type {topics[topic]}; {role} must be one of {list(allowed)}")
    return topics[topic]


def check_topics(path: str | Path, image_topic: str, truth_topic: str | None = None,
                 odometry_topic: str | None = None) -> None:
    """Raise the :class:`SeqvprError` :func:`bag_frames` raises for a missing topic or a wrong type.

    Reads only the bag's topic list, no messages: a check before anything is written.
    """
    _require_topics(bag_topics(path), Path(path), image_topic, truth_topic, odometry_topic)


def _require_topics(topics: dict[str, str], path: Path, image_topic: str, truth_topic: str | None,
                    odometry_topic: str | None) -> tuple[str, str | None, str | None]:
    """Message types of the image, truth and odometry topics (None for a topic not asked for)."""
    image_type = _require_topic(topics, image_topic, (IMAGE, COMPRESSED), path, "images")
    truth_type = None if truth_topic is None else _require_topic(topics, truth_topic, TRUTH_TYPES, path,
                                                                 "ground truth")
    odometry_type = None if odometry_topic is None else _require_topic(topics, odometry_topic, ODOMETRY_TYPES,
                                                                       path, "odometry")
    return image_type, truth_type, odometry_type


def bag_frames(path: str | Path, image_topic: str, zone: UtmZone, truth_topic: str | None = None,
               odometry_topic: str | None = None) -> list:
    """Frames of ``image_topic`` with ground truth from ``truth_topic`` and odometry from ``odometry_topic``.

    Both are interpolated linearly at the image stamps. A frame outside the time span of
    the truth topic gets no truth; one outside the span of the odometry topic gets no
    odometry (None: the localizer then keyframes on time until odometry arrives, and makes
    no keyframe while it is missing after odometry was seen, see
    :meth:`seqvpr.localization.StreamingLocalizer.update`).

    Args:
        path: the bag (ROS 1 file, ROS 2 folder).
        image_topic: an ``Image`` or ``CompressedImage`` topic.
        zone: UTM zone to express the truth in (the map's).
        truth_topic: a ``NavSatFix``, ``Odometry`` or ``PoseStamped`` topic, or None.
        odometry_topic: an ``Odometry`` (``pose.pose.position``) or ``PoseStamped``
            (``pose.position``) topic, or None; each frame's ``odometry`` is then its
            interpolated (x, y) in metres, in the odometry's own frame.

    Returns:
        A list of :class:`seqvpr.localization.replay.Frame` in bag order.

    Raises:
        SeqvprError: missing or empty topics, unsupported message types or image encodings.
    """
    from seqvpr.localization.replay import Frame

    path = Path(path)
    with _open(path) as reader:
        topics = {connection.topic: connection.msgtype for connection in reader.connections}
        image_type, truth_type, odometry_type = _require_topics(topics, path, image_topic, truth_topic,
                                                                odometry_topic)
        tracks = {}
        if truth_type is not None:
            tracks["truth"] = _Track(truth_topic, truth_type)
        if odometry_type is not None:
            tracks["odometry"] = _Track(odometry_topic, odometry_type)
        wanted = [c for c in reader.connections if c.topic in {image_topic, truth_topic, odometry_topic}]
        images: list[tuple[float, np.ndarray]] = []
        for connection, receive_ns, raw in reader.messages(connections=wanted):
            message = reader.deserialize(raw, connection.msgtype)
            stamp = _stamp(message, receive_ns)
            if connection.topic == image_topic:
                images.append((stamp, decode_image(message, image_type)))
            for track in tracks.values():
                if connection.topic == track.topic:
                    track.add(stamp, _position(message, track.msgtype, zone))
    if not images:
        raise SeqvprError(f"{path}: topic {image_topic} has no messages")
    for track in tracks.values():
        if not track.times:
            raise SeqvprError(f"{path}: topic {track.topic} has no usable messages")
    stamps = [stamp for stamp, _ in images]
    truths = tracks["truth"].at(stamps) if "truth" in tracks else [None] * len(stamps)
    odometry = tracks["odometry"].at(stamps) if "odometry" in tracks else [None] * len(stamps)
    return [Frame(stamp, image=image, truth=truth, odometry=reading)
            for (stamp, image), truth, reading in zip(images, truths, odometry)]


class _Track:
    """Positions of one topic, for interpolation at the image stamps."""

    def __init__(self, topic: str, msgtype: str) -> None:
        self.topic, self.msgtype = topic, msgtype
        self.times: list[float] = []
        self.positions: list[np.ndarray] = []

    def add(self, stamp: float, position: np.ndarray | None) -> None:
        if position is not None:
            self.times.append(stamp)
            self.positions.append(position)

    def at(self, stamps: list[float]) -> list:
        return _interpolate(self.times, self.positions, stamps)


def _position(message: Any, msgtype: str, zone: UtmZone) -> np.ndarray | None:
    """(x, y) of a message: UTM in ``zone`` for a NavSatFix, else the pose's; None if unusable."""
    if msgtype == NAVSATFIX:
        if message.status.status < 0 or not (math.isfinite(message.latitude) and math.isfinite(message.longitude)):
            return None
        positions, _ = latlon_to_utm(np.array([message.latitude]), np.array([message.longitude]), zone)
        return positions[0]
    pose = message.pose.pose if msgtype == ODOMETRY else message.pose
    position = np.array([pose.position.x, pose.position.y])
    return position if np.all(np.isfinite(position)) else None


def _interpolate(times: list[float], positions: list[np.ndarray], stamps: list[float]) -> list:
    if not times:
        return [None] * len(stamps)
    order = np.argsort(times, kind="stable")
    times_array, positions_array = np.asarray(times)[order], np.asarray(positions)[order]
    result = []
    for stamp in stamps:
        if times_array[0] <= stamp <= times_array[-1]:
            result.append((float(np.interp(stamp, times_array, positions_array[:, 0])),
                           float(np.interp(stamp, times_array, positions_array[:, 1]))))
        else:
            result.append(None)
    return result


def decode_image(message: Any, msgtype: str) -> np.ndarray:
    """An ``Image`` or ``CompressedImage`` message as an HxWx3 uint8 RGB array.

    Returns an empty (0, 0, 3) array when the data are damaged (wrong size, undecodable).

    Raises:
        SeqvprError: an encoding or compression seqvpr does not read.
    """
    corrupt = np.zeros((0, 0, 3), np.uint8)
    data = np.asarray(message.data, dtype=np.uint8)
    if msgtype == COMPRESSED:
        kind = message.format.lower()
        if "jpeg" not in kind and "jpg" not in kind and "png" not in kind:
            raise SeqvprError(f"CompressedImage format {message.format!r} is not supported (JPEG or PNG)")
        import cv2

        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        return corrupt if decoded is None else np.ascontiguousarray(decoded[..., ::-1])
    encoding = message.encoding.lower()
    if encoding not in IMAGE_ENCODINGS:
        raise SeqvprError(f"Image encoding {message.encoding!r} is not supported; expected one of {IMAGE_ENCODINGS}")
    channels = 3 if encoding in ("rgb8", "bgr8") else 1
    height, width, step = int(message.height), int(message.width), int(message.step)
    if height < 2 or width < 2 or step < width * channels or data.size < height * step:
        return corrupt
    pixels = data[: height * step].reshape(height, step)[:, : width * channels]
    if encoding == "rgb8":
        return pixels.reshape(height, width, 3).copy()
    if encoding == "bgr8":
        return np.ascontiguousarray(pixels.reshape(height, width, 3)[..., ::-1])
    if encoding == "mono8":
        return np.repeat(pixels[..., None], 3, axis=2)
    from seqvpr.data.images import demosaic

    return demosaic(np.ascontiguousarray(pixels), encoding[len("bayer_"):-1])


def write_estimates_bag(
    source: str | Path,
    out: str | Path,
    estimates: Sequence[Any],
    *,
    pose_topic: str = "/seqvpr/pose",
    fix_topic: str = "/seqvpr/fix",
    frame_id: str = "utm",
) -> Path:
    """Copy a bag and add every fix as ``PoseWithCovarianceStamped`` and ``NavSatFix``.

    Args:
        source: the bag that was localized.
        out: the new bag (same format as ``source``); must not exist.
        estimates: :class:`seqvpr.localization.Estimate` list; those with a fix are written.
        pose_topic, fix_topic: topics of the added messages.
        frame_id: frame of the poses (x = UTM easting, y = UTM northing).
    """
    source, out = Path(source), Path(out)
    if out.exists():
        raise SeqvprError(f"bag {out} exists; remove it or choose another path")
    if source.is_file() and source.suffix == ".bag":
        fmt = "ros1"
    else:
        fmt = "mcap" if any(source.glob("*.mcap")) else "ros2-sqlite3"
    temporary = out.with_name(f".{out.name}.partial")
    _remove(temporary)
    with _open(source) as reader, _BagWriter(temporary, fmt) as bag:
        for connection, receive_ns, raw in reader.messages():
            bag.writer.write(bag.connection(connection.topic, connection.msgtype, connection), receive_ns, raw)
        types = bag.typestore.types
        for estimate in estimates:
            if not estimate.has_fix:
                continue
            half = estimate.heading_rad / 2
            covariance = np.diag([0.0, 0.0, 1e6, 1e6, 1e6, 1e6])
            covariance[:2, :2] = estimate.covariance
            point = types["geometry_msgs/msg/Point"](x=estimate.easting, y=estimate.northing, z=0.0)
            orientation = types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(half), w=math.cos(half))
            pose = types["geometry_msgs/msg/PoseWithCovariance"](
                pose=types["geometry_msgs/msg/Pose"](position=point, orientation=orientation),
                covariance=covariance.reshape(-1))
            message = types[POSE_COV](header=bag.header(estimate.stamp_s, frame_id), pose=pose)
            bag.write(pose_topic, POSE_COV, message, estimate.stamp_s)
            bag.write(fix_topic, NAVSATFIX, bag.navsatfix(estimate.stamp_s, frame_id, estimate.latitude,
                                                          estimate.longitude, estimate.covariance), estimate.stamp_s)
    temporary.rename(out)
    return out
