"""``seqvpr audio-eval``: Table 1 of the paper on the test slices of an audio data set.

For each base feature (CQT, chroma, melspec) and each method, every test slice is aligned
and scored by TimeErr / TimeDev (exact integrals over the slice's score span); the table
reports their means in milliseconds, in the layout of the paper's Table 1:

- ``Base (D)`` / ``Base (G)``: base features aligned by subsequence DTW / GDTW;
- ``Soft-DTW``, ``Along GT``, ``DILATE``, ``DecDTW``: trained models (``seqvpr audio-train``
  ``best.pt``), aligned by DTW, except DecDTW by GDTW, as in the paper;
- ``seqvpr piece (G)``: this package's whole-piece aligner (coarse DTW + windowed GDTW) on
  the full recordings with base features, scored on the same slices;
- ``synctoolbox``: the peer, MrMsDTW on its own chroma + DLNCO features, whole recordings,
  scored on the same slices (the same value in every row: it does not use our features).

It also draws Fig. 4a-style piano rolls of the first test slices.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqvpr.audio.alignment import Alignment
from seqvpr.audio.dataset import read_table, read_truth
from seqvpr.audio.features import FEATURE_DIMS
from seqvpr.audio.methods import PAPER_LAMBDA, align_batch, score_batch
from seqvpr.audio.metrics import time_errors
from seqvpr.audio.slices import AudioSlices, collate_slices
from seqvpr.config import config_to_dict
from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path, claim_output_dir

__all__ = ["AudioEvalConfig", "SliceScore", "evaluate_audio", "table_markdown", "METHOD_ORDER"]

logger = logging.getLogger(__name__)

LOSS_LABELS = {"soft-dtw": "Soft-DTW", "along-gt": "Along GT", "dilate": "DILATE", "decdtw": "DecDTW"}
METHOD_ORDER = ("Base (D)", "Base (G)", "Soft-DTW", "Along GT", "DILATE", "DecDTW", "seqvpr piece (G)",
                "synctoolbox")
FEATURE_LABELS = {"cqt": "CQT", "chroma": "Chroma", "melspec": "Melspec"}


@dataclass(frozen=True)
class AudioEvalConfig:
    """Options of ``seqvpr audio-eval``.

    Attributes:
        features: base features to evaluate (rows of the table).
        piece: add the whole-piece aligner's column.
        peer: add the synctoolbox column.
        plots: piano-roll plots of this many test slices per feature.
        limit: evaluate the first this many test slices (None = all).
        batch_size: slices aligned per batch.
    """

    features: tuple[str, ...] = ("cqt", "chroma", "melspec")
    piece: bool = True
    peer: bool = True
    plots: int = 2
    limit: int | None = None
    batch_size: int = 16

    def __post_init__(self) -> None:
        unknown = sorted(set(self.features) - set(FEATURE_DIMS))
        if unknown or not self.features:
            raise ValueError(f"features must be among {sorted(FEATURE_DIMS)}, got {list(self.features)}")
        if self.plots < 0 or self.batch_size < 1 or (self.limit is not None and self.limit < 1):
            raise ValueError("plots must be >= 0, batch_size >= 1 and limit >= 1 or None")


@dataclass(frozen=True)
class SliceScore:
    """One method on one test slice."""

    feature: str
    method: str
    slice: str
    time_err_ms: float
    time_dev_ms: float


def _whole_piece(data: Path, kind: str, performances: Sequence[str], peer: bool, cache: Path) -> dict[str, Alignment]:
    """Whole-recording alignments per performance: our piece aligner, or synctoolbox.

    Each is stored in ``cache`` as a CSV of changepoints and read back from there when it
    exists (synctoolbox takes about a second per second of audio)."""
    from tqdm import tqdm

    from seqvpr.audio.dataset import AudioDataConfig
    from seqvpr.audio.piece import align_features
    from seqvpr.config import load_config

    config = load_config(data / "config.yaml", AudioDataConfig)
    works = {row["performance"]: row["work"] for row in read_table(data / "performances.csv")}
    alignments = {}
    folder = cache / ("synctoolbox" if peer else f"piece-{kind}")
    for name in tqdm(performances, desc="synctoolbox" if peer else f"piece {kind}", unit="piece"):
        path = folder / f"{name}.csv"
        if path.is_file():
            alignments[name] = read_truth(path)
            continue
        if peer:
            import soundfile

            from seqvpr.audio.peer import synctoolbox_align

            score, rate = soundfile.read(data / "works" / works[name] / "score.flac", dtype="float32")
            performance, _ = soundfile.read(data / "performances" / name / "performance.flac", dtype="float32")
            alignments[name] = synctoolbox_align(score, performance, rate)
        else:
            with np.load(data / "features" / kind / f"{name}.npz") as cached:
                score, performance = cached["score_values"], cached["performance_values"]
            rate = config.feature_config.frame_rate
            warp, _, _ = align_features(score, performance, rate, PAPER_LAMBDA[kind])
            alignments[name] = Alignment(np.arange(len(score)) / rate, warp)
        _write_csv(path, ["score_s", "performance_s"],
                   [[f"{a:.6f}", f"{b:.6f}"] for a, b in zip(alignments[name].score_s, alignments[name].performance_s)])
    return alignments


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")


def table_markdown(scores: Sequence[SliceScore]) -> str:
    """Mean TimeErr / TimeDev (ms) with features as rows and methods as columns (Table 1)."""
    methods = [method for method in METHOD_ORDER if any(score.method == method for score in scores)]
    features = list(dict.fromkeys(score.feature for score in scores))
    lines = ["| Feature Type | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    counts = {}
    for feature in features:
        cells = []
        for method in methods:
            chosen = [s for s in scores if s.feature == feature and s.method == method]
            counts[feature] = max(counts.get(feature, 0), len(chosen))
            cells.append(f"{np.mean([s.time_err_ms for s in chosen]):.0f} / {np.mean([s.time_dev_ms for s in chosen]):.0f}"
                         if chosen else "-")
        lines.append(f"| {FEATURE_LABELS[feature]} | " + " | ".join(cells) + " |")
    lines += ["", "TimeErr / TimeDev in ms, means over test slices ("
              + ", ".join(f"{FEATURE_LABELS[f]}: {n}" for f, n in counts.items()) + ")."]
    return "\n".join(lines)


def evaluate_audio(data: str | os.PathLike, out: str | os.PathLike, models: Sequence[str | os.PathLike] = (),
                   config: AudioEvalConfig = AudioEvalConfig(), overwrite: bool = False,
                   cache: str | os.PathLike | None = None) -> list[SliceScore]:
    """Evaluates base features, trained models and the peer on the test slices; writes ``out``.

    Writes ``out/table.md`` (Table 1 layout), ``out/table.csv`` (per feature and method),
    ``out/per_slice.csv`` and ``out/plots/*.png``.

    Args:
        data: a folder written by ``seqvpr audio-data build``.
        out: output folder (same options resume, see :func:`seqvpr.io.claim_output_dir`).
        models: ``best.pt`` files of ``seqvpr audio-train`` runs (each knows its features
            and loss); models of features not in ``config.features`` are ignored.
        config: options.
        overwrite: rebuild ``out`` if it holds an evaluation with other options.
        cache: folder of whole-piece alignments (read if there, written if not), shared
            between evaluations of one data set; default ``out/alignments``.

    Returns:
        Every :class:`SliceScore`.

    Raises:
        SeqvprError: a missing data folder or model, two models for one feature and loss.
    """
    import pretty_midi

    from seqvpr.audio.model import load_audio_model
    from seqvpr.audio.plots import plot_piano_roll

    data, out = Path(data), Path(out)
    loaded = [(Path(path), load_audio_model(path)) for path in models]
    seen: dict[tuple[str, str], Path] = {}
    for path, model in loaded:
        if (model.features, model.loss) in seen:
            raise SeqvprError(f"two {model.loss} models for {model.features}: {seen[model.features, model.loss]} "
                              f"and {path}")
        seen[model.features, model.loss] = path
    test = {kind: AudioSlices(data, "test", kind, config.limit) for kind in config.features}
    claim_output_dir(out, {"data": data, "models": [p for p, _ in loaded], "config": config_to_dict(config)},
                     overwrite=overwrite, command="seqvpr audio-eval")
    cache = Path(cache) if cache is not None else out / "alignments"
    slugs = {row["performance"]: row["work"] for row in read_table(data / "performances.csv")}
    scores: list[SliceScore] = []
    predictions: dict[tuple[str, str, str], Alignment] = {}
    peer = None
    for kind, dataset in test.items():
        if len(dataset) == 0:
            raise SeqvprError(f"{data}: the test split has no slices")
        methods = [("Base (D)", "dtw", PAPER_LAMBDA[kind], None), ("Base (G)", "gdtw", PAPER_LAMBDA[kind], None)]
        for _, model in loaded:
            if model.features == kind:
                method = "gdtw" if model.loss == "decdtw" else "dtw"
                methods.append((LOSS_LABELS[model.loss], method, model.lam, model.encoder))
        for start in range(0, len(dataset), config.batch_size):
            batch = collate_slices([dataset[i] for i in range(start, min(start + config.batch_size, len(dataset)))])
            for label, method, lam, encoder in methods:
                alignments = align_batch(batch, method, lam, encoder)
                for item, alignment, errors in zip(batch.slices, alignments, score_batch(batch, alignments)):
                    predictions[kind, label, item.name] = alignment
                    scores.append(SliceScore(kind, label, item.name, 1000 * errors.time_err_s, 1000 * errors.time_dev_s))
        performances = sorted({row["performance"] for row in dataset.rows})
        whole = []
        if config.piece:
            whole.append(("seqvpr piece (G)", _whole_piece(data, kind, performances, False, cache)))
        if config.peer:
            peer = peer or _whole_piece(data, kind, performances, True, cache)
            whole.append(("synctoolbox", peer))
        for label, alignments in whole:
            for index in range(len(dataset)):
                item = dataset[index]
                errors = time_errors(alignments[item.performance], item.truth)
                predictions[kind, label, item.name] = alignments[item.performance].restrict(item.truth.start,
                                                                                            item.truth.end)
                scores.append(SliceScore(kind, label, item.name, 1000 * errors.time_err_s, 1000 * errors.time_dev_s))
        for index in range(min(config.plots, len(dataset))):
            item = dataset[index]
            score = pretty_midi.PrettyMIDI(str(data / "works" / slugs[item.performance] / "score.mid"))
            for label in ("Base (G)", "DecDTW"):
                if (kind, label, item.name) not in predictions:
                    continue
                error = next(s for s in scores if (s.feature, s.method, s.slice) == (kind, label, item.name))
                name = f"{item.name}-{kind}-{label.split()[0].lower()}"
                plot_piano_roll(out / "plots" / f"{name}.png", score, predictions[kind, label, item.name], item.truth,
                                f"{item.name}  {FEATURE_LABELS[kind]} / {label} (TimeErr {error.time_err_ms:.0f} ms)")
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(table_markdown(scores) + "\n", encoding="utf-8")
    summary = []
    for kind in config.features:
        for method in METHOD_ORDER:
            chosen = [s for s in scores if s.feature == kind and s.method == method]
            if chosen:
                summary.append([kind, method, f"{np.mean([s.time_err_ms for s in chosen]):.2f}",
                                f"{np.mean([s.time_dev_ms for s in chosen]):.2f}", len(chosen)])
    _write_csv(out / "table.csv", ["feature", "method", "time_err_ms", "time_dev_ms", "slices"], summary)
    _write_csv(out / "per_slice.csv", ["feature", "method", "slice", "time_err_ms", "time_dev_ms"],
               [[s.feature, s.method, s.slice, f"{s.time_err_ms:.3f}", f"{s.time_dev_ms:.3f}"] for s in scores])
    return scores
