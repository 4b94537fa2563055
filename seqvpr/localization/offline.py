"""``seqvpr localize``: a traverse folder or a bag replayed through the streaming localizer.

The same :class:`~seqvpr.localization.StreamingLocalizer` a robot runs, fed from disk;
outputs as :func:`seqvpr.localization.replay.write_replay` describes, plus the resolved
``localization.yaml`` and, for bags, optionally a copy of the bag with the estimates.

Odometry (for keyframes every ``query_spacing_m`` metres, aligned on distance) comes from a
bag's ``Odometry``/``PoseStamped`` topic (``odometry_topic``), or, for a traverse, from its
own poses (``odometry_from_poses``: ground-truth-derived, what an ideal wheel odometry would
report). Either needs ``query_spacing_m`` in the localizer's settings: without it the
localizer keyframes on time and would ignore the odometry, so that is an error rather than
a silently unused option.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from seqvpr.config import save_config
from seqvpr.errors import SeqvprError
from seqvpr.localization.replay import Frame, replay, summarize, write_replay
from seqvpr.localization.streaming import StreamingLocalizer

__all__ = ["is_traverse", "check_source", "localize_offline"]

LOGGER = logging.getLogger(__name__)


def is_traverse(source: Path) -> bool:
    """Whether ``source`` is a prepared traverse folder (else it is read as a bag)."""
    from seqvpr.data.traverse import TRAVERSE_CSV

    return (source / TRAVERSE_CSV).is_file()


def localize_offline(
    localizer: StreamingLocalizer,
    source: str | Path,
    out: str | Path,
    *,
    descriptors: str | Path | None = None,
    image_topic: str = "/camera/image_raw",
    truth_topic: str | None = None,
    truth_traverse: str | Path | None = None,
    write_bag: str | Path | None = None,
    odometry_topic: str | None = None,
    odometry_from_poses: bool = False,
    odometry_scale: float = 1.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Localize every frame of ``source`` against the map and write the results to ``out``.

    Args:
        localizer: a fresh localizer (:meth:`StreamingLocalizer.from_map`); with an
            encoder unless ``descriptors`` are given.
        source: a prepared traverse folder, or a bag (ROS 1 ``.bag``, ROS 2 folder).
        out: output folder (must exist).
        descriptors: for a traverse source, its descriptors file (``seqvpr extract``)
            made by the map's encoder, instead of encoding the images.
        image_topic: for a bag, the camera topic.
        truth_topic: for a bag, a NavSatFix/Odometry/PoseStamped topic with the truth.
        truth_traverse: for a bag, a traverse folder whose poses are the truth instead.
        write_bag: for a bag, write a copy with the estimates to this path.
        odometry_topic: for a bag, an ``Odometry``/``PoseStamped`` topic whose (x, y),
            interpolated at each image stamp, is passed to ``update`` as odometry. Frames
            outside the topic's time span get none.
        odometry_from_poses: for a traverse, pass the distance travelled along its poses
            as odometry (derived from the ground truth).
        odometry_scale: multiplies the odometry (positions or distance), e.g. 1.02 to
            simulate a wheel odometry reading 2 % long; 1 leaves it as recorded.
        progress: show a progress bar.

    Returns:
        The summary (as in ``summary.json``), with ``odometry``: None, or its ``source``,
        ``scale``, ``query_spacing_m`` and ``frames_with_odometry``.
    """
    from seqvpr.data.traverse import read_traverse
    from seqvpr.localization.bags import bag_frames, write_estimates_bag
    from seqvpr.localization.replay import traverse_frames

    source, out = Path(source), Path(out)
    check_source(source, localizer, descriptors=descriptors, image_topic=image_topic, truth_topic=truth_topic,
                 truth_traverse=truth_traverse, write_bag=write_bag, odometry_topic=odometry_topic,
                 odometry_from_poses=odometry_from_poses, odometry_scale=odometry_scale)
    map_dir = localizer.map.root
    traverse_source = is_traverse(source)
    odometry = None
    if traverse_source:
        traverse = read_traverse(source)
        values = None if descriptors is None else _traverse_descriptors(Path(descriptors), traverse, localizer)
        frames: list[Frame] | Any = traverse_frames(traverse, values,
                                                    odometry_scale if odometry_from_poses else None)
        total = len(traverse)
        title = f"{traverse.name} against {Path(map_dir).name}"
        if odometry_from_poses:
            odometry = {"source": "traverse poses (ground truth)", "frames_with_odometry": total}
    else:
        frames = bag_frames(source, image_topic, localizer.map.zone, truth_topic, odometry_topic)
        if truth_traverse is not None:
            frames = _with_traverse_truth(frames, read_traverse(truth_traverse, check_images=False))
        total = len(frames)
        title = f"{source.name} against {Path(map_dir).name}"
        if odometry_topic is not None:
            frames = _scaled_odometry(frames, odometry_scale)
            odometry = {"source": f"topic {odometry_topic}",
                        "frames_with_odometry": sum(frame.odometry is not None for frame in frames)}
            if odometry["frames_with_odometry"] < total:
                LOGGER.warning("%s: %d of %d frames lie outside the time span of %s and get no odometry",
                               source, total - odometry["frames_with_odometry"], total, odometry_topic)
    result = replay(localizer, frames, progress=progress, total=total)
    summary = summarize(result)
    summary["source"], summary["map"] = str(source), str(map_dir)
    if odometry is not None:
        odometry.update(scale=odometry_scale, query_spacing_m=localizer.config.query_spacing_m)
    summary["odometry"] = odometry
    write_replay(out, result, summary, title=title)
    save_config(localizer.config, out / "localization.yaml")
    if write_bag is not None:
        write_estimates_bag(source, write_bag, result.estimates)
    return summary


def check_source(
    source: Path,
    localizer: StreamingLocalizer,
    *,
    descriptors: str | Path | None = None,
    image_topic: str = "/camera/image_raw",
    truth_topic: str | None = None,
    truth_traverse: str | Path | None = None,
    write_bag: str | Path | None = None,
    odometry_topic: str | None = None,
    odometry_from_poses: bool = False,
    odometry_scale: float = 1.0,
) -> None:
    """Raise :class:`SeqvprError` for what :func:`localize_offline` cannot run.

    Option combinations, odometry without ``query_spacing_m``, and for a bag, missing topics
    or topics of the wrong type (read from its topic list, so that nothing is written first).
    """
    if not source.exists():
        raise SeqvprError(f"localize: source {source} does not exist")
    if localizer.encoder is None and descriptors is None:
        raise SeqvprError("localize: give --model (the map's encoder) or --descriptors")
    if is_traverse(source):
        if write_bag is not None or truth_topic is not None or truth_traverse is not None:
            raise SeqvprError("localize: --write-bag, --truth-topic and --truth-traverse apply to bag sources")
        if odometry_topic is not None:
            raise SeqvprError(f"localize: --odometry-topic applies to bag sources; {source} is a traverse folder "
                              "(--odometry-from-poses gives a traverse odometry from its poses)")
    else:
        if descriptors is not None:
            raise SeqvprError("localize: --descriptors applies to a traverse source, not to a bag")
        if odometry_from_poses:
            raise SeqvprError(f"localize: --odometry-from-poses applies to traverse sources; {source} is a bag "
                              "(give --odometry-topic)")
    with_odometry = odometry_topic is not None or odometry_from_poses
    if with_odometry and localizer.config.query_spacing_m is None:
        raise SeqvprError("localize: odometry is used only when keyframes follow it; set query_spacing_m "
                          "(metres between keyframes, e.g. `query_spacing_m: 8`) in the --config file, "
                          "or drop --odometry-topic / --odometry-from-poses to keyframe on time")
    if not (isinstance(odometry_scale, int | float) and math.isfinite(odometry_scale) and odometry_scale > 0):
        raise SeqvprError(f"localize: --odometry-scale must be a finite number > 0, got {odometry_scale!r}")
    if odometry_scale != 1.0 and not with_odometry:
        raise SeqvprError("localize: --odometry-scale needs --odometry-topic or --odometry-from-poses")
    if not is_traverse(source):
        from seqvpr.localization.bags import check_topics

        check_topics(source, image_topic, truth_topic, odometry_topic)
    if write_bag is not None and Path(write_bag).exists():
        raise SeqvprError(f"localize: --write-bag {write_bag} exists; remove it or choose another path")


def _traverse_descriptors(path: Path, traverse: Any, localizer: StreamingLocalizer) -> np.ndarray:
    from seqvpr.extraction import read_descriptor_file

    if not path.is_file():
        raise SeqvprError(f"localize: no such descriptors file {path}")
    data = read_descriptor_file(path)
    fingerprint = data.metadata.get("encoder_fingerprint")
    if fingerprint != localizer.map.fingerprint:
        raise SeqvprError(f"{path}: made by encoder {fingerprint}, the map by {localizer.map.fingerprint}")
    known = dict(zip(data.image_names.tolist(), range(len(data.image_names))))
    missing = [name for name in traverse.image_paths if str(name) not in known]
    if missing:
        raise SeqvprError(f"{path}: lacks descriptors of {len(missing)} image(s) of {traverse.name}, e.g. {missing[0]}")
    return np.asarray(data.values, dtype=np.float32)[[known[str(name)] for name in traverse.image_paths]]


def _scaled_odometry(frames: list[Frame], scale: float) -> list[Frame]:
    if scale == 1.0:
        return frames
    return [frame if frame.odometry is None else
            Frame(frame.stamp_s, frame.image, frame.descriptor, frame.truth,
                  tuple(scale * value for value in frame.odometry))
            for frame in frames]


def _with_traverse_truth(frames: list[Frame], traverse: Any) -> list[Frame]:
    times, positions = traverse.times_s, traverse.positions
    result = []
    for frame in frames:
        truth = None
        if times[0] <= frame.stamp_s <= times[-1]:
            truth = (float(np.interp(frame.stamp_s, times, positions[:, 0])),
                     float(np.interp(frame.stamp_s, times, positions[:, 1])))
        result.append(Frame(frame.stamp_s, frame.image, frame.descriptor, truth, frame.odometry))
    return result
