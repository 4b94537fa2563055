"""Builds the audio-to-score data set described in :mod:`seqvpr.audio.dataset`."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np

from seqvpr.audio.dataset import SPLITS, AudioDataConfig, work_slug
from seqvpr.audio.features import compute_features
from seqvpr.config import config_to_dict, save_config
from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path, claim_output_dir

__all__ = ["build_audio_data", "corpus_works"]

logger = logging.getLogger(__name__)


def corpus_works(composers: tuple[str, ...], max_file_kb: int) -> list[str]:
    """Corpus paths (relative, e.g. ``bach/bwv66.6.mxl``) of the composers' works, sorted;
    a work stored in several formats is listed once (MusicXML preferred, then kern)."""
    import music21

    root = Path(music21.__file__).parent / "corpus"
    preference = {".mxl": 0, ".xml": 1, ".musicxml": 1, ".krn": 2, ".abc": 3}
    chosen: dict[str, Path] = {}
    for path in music21.corpus.getCorePaths():
        relative = path.relative_to(root)
        if relative.parts[0] not in composers or path.suffix not in preference:
            continue
        if path.stat().st_size > max_file_kb * 1024:
            continue
        key = str(relative.with_suffix(""))
        if key not in chosen or preference[path.suffix] < preference[chosen[key].suffix]:
            chosen[key] = relative
    missing = sorted(set(composers) - {Path(key).parts[0] for key in chosen})
    if missing:
        raise SeqvprError(f"no usable music21 corpus works for composer folder(s) {missing}")
    return sorted(str(path) for path in chosen.values())


def _write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile

    with atomic_path(path) as tmp:
        soundfile.write(tmp, audio, sample_rate, format="FLAC", subtype="PCM_16")


def _write_midi(path: Path, midi) -> None:
    buffer = io.BytesIO()
    midi.write(buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)


def _read_audio(path: Path) -> np.ndarray:
    import soundfile

    audio, _ = soundfile.read(path, dtype="float32")
    return audio


def _select_works(config: AudioDataConfig):
    """(work, score MIDI) pairs: the first ``works`` usable works in seeded order."""
    from seqvpr.audio.score import corpus_score, score_end, trim_score

    candidates = corpus_works(config.composers, config.max_file_kb)
    order = np.random.default_rng(config.seed).permutation(len(candidates))
    selected = []
    for index in order:
        work = candidates[index]
        try:
            midi = trim_score(corpus_score(work), config.max_score_s)
        except SeqvprError as error:
            logger.info("skipping %s: %s", work, error)
            continue
        if score_end(midi) < config.min_score_s:
            continue
        selected.append((work, midi))
        if len(selected) == config.works:
            return selected
    raise SeqvprError(f"only {len(selected)} of the {config.works} requested works are usable from "
                      f"composers {list(config.composers)} (min_score_s {config.min_score_s}); "
                      f"lower works or add composers")


def _render(config: AudioDataConfig, out: Path, work_index: int, work: str, score, split: str) -> tuple[list, list]:
    """Writes one work's score audio and its performances; returns manifest rows."""
    from seqvpr.audio.performance import perform, with_program
    from seqvpr.audio.synthesis import add_room, synthesize
    from seqvpr.audio.score import score_end
    from seqvpr.audio.tempo import random_tempo_map

    rate = config.sample_rate
    slug = work_slug(work)
    work_dir = out / "works" / slug
    if not (work_dir / "score.flac").is_file():
        plain = with_program(score, config.score_program, velocity=80)
        _write_midi(work_dir / "score.mid", plain)
        _write_audio(work_dir / "score.flac", synthesize(plain, rate, config.score_soundfont), rate)
    onsets = np.unique([note.start for instrument in score.instruments for note in instrument.notes])
    performances = []
    for take in range(config.performances_per_work):
        name = f"{slug}-p{take}"
        rng = np.random.default_rng([config.seed, work_index, take])
        tempo_map = random_tempo_map(score_end(score), rng, config.tempo, onsets)
        program = int(rng.choice(config.performance_programs))
        rt60, wet, snr = (rng.uniform(*config.rt60_s), rng.uniform(*config.wet), rng.uniform(*config.snr_db))
        performance = perform(score, tempo_map, rng, program, config.performance)
        directory = out / "performances" / name
        if not (directory / "performance.flac").is_file():
            audio = synthesize(performance, rate, config.performance_soundfont)
            audio = add_room(audio, rate, rng, rt60, wet, snr)
            _write_midi(directory / "performance.mid", performance)
            _write_csv(directory / "truth.csv", ["score_s", "performance_s"],
                       [[f"{s:.6f}", f"{p:.6f}"] for s, p in zip(tempo_map.score_s, tempo_map.performance_s)])
            _write_audio(directory / "performance.flac", audio, rate)
        duration = len(_read_audio(directory / "performance.flac")) / rate
        performances.append([name, slug, split, program, f"{rt60:.3f}", f"{wet:.3f}", f"{snr:.2f}",
                             f"{duration:.3f}"])
    return performances, [slug, split, f"{score_end(score):.3f}",
                          sum(len(instrument.notes) for instrument in score.instruments)]


def _slices(config: AudioDataConfig, out: Path, work_index: int, name: str, split: str,
            score_frames: int, performance_frames: int) -> list[list]:
    """Slice rows of one performance: score slices and their performance windows."""
    from seqvpr.audio.dataset import read_truth

    truth = read_truth(out / "performances" / name / "truth.csv")
    rate = config.feature_config.frame_rate
    rng = np.random.default_rng([config.seed, work_index, 1_000_003, int(name.rsplit("-p", 1)[1])])
    rows = []
    end_frame = min(score_frames, int(truth.end * rate) + 1)
    for index, start in enumerate(range(0, end_frame - config.slice_frames + 1, config.slice_frames)):
        first = truth(start / rate)
        last = truth((start + config.slice_frames - 1) / rate)
        span = int(np.ceil(last * rate)) - int(np.floor(first * rate)) + 1
        length = max(span + 2, int(np.ceil(config.window_scale * span)))
        lowest = max(0, int(np.ceil(last * rate)) - length + 1)
        highest = min(int(np.floor(first * rate)), performance_frames - length)
        if highest < lowest:
            continue
        window = int(rng.integers(lowest, highest + 1))
        rows.append([f"{name}-s{index}", name, split, start, config.slice_frames, window, length])
    return rows


def build_audio_data(config: AudioDataConfig, out: str | Path, overwrite: bool = False) -> Path:
    """Builds (or resumes) the data set in ``out``; returns ``out``.

    Raises:
        SeqvprError: too few usable works, or ``out`` holds another build.
        OutputConflictError: ``out`` was built with other options (without ``overwrite``).
    """
    from tqdm import tqdm

    out = Path(out)
    claim_output_dir(out, config_to_dict(config), overwrite=overwrite, command="seqvpr audio-data build")
    save_config(config, out / "config.yaml")
    selected = _select_works(config)
    sizes = config.split_sizes()
    splits = [split for split, size in zip(SPLITS, sizes) for _ in range(size)]
    work_rows, performance_rows, slice_rows = [], [], []
    for work_index, ((work, score), split) in enumerate(tqdm(list(zip(selected, splits)), desc="works",
                                                             unit="work")):
        performances, work_row = _render(config, out, work_index, work, score, split)
        work_rows.append([work, *work_row])
        performance_rows += performances
        score_audio = None
        for name, slug, *_ in performances:
            for kind in config.features:
                path = out / "features" / kind / f"{name}.npz"
                if path.is_file():
                    continue
                if score_audio is None:
                    score_audio = _read_audio(out / "works" / slug / "score.flac")
                score_features = compute_features(score_audio, config.sample_rate, kind, config.feature_config)
                audio = _read_audio(out / "performances" / name / "performance.flac")
                performance_features = compute_features(audio, config.sample_rate, kind, config.feature_config)
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as handle:
                        np.savez(handle, score_values=score_features.values,
                                 performance_values=performance_features.values)
            with np.load(out / "features" / config.features[0] / f"{name}.npz") as cached:
                frames = (len(cached["score_values"]), len(cached["performance_values"]))
            slice_rows += _slices(config, out, work_index, name, split, *frames)
    _write_csv(out / "works.csv", ["work", "slug", "split", "score_s", "notes"], work_rows)
    _write_csv(out / "performances.csv",
               ["performance", "work", "split", "program", "rt60_s", "wet", "snr_db", "duration_s"],
               performance_rows)
    _write_csv(out / "slices.csv", ["slice", "performance", "split", "score_start", "score_frames",
                                     "performance_start", "performance_frames"], slice_rows)
    counts = {split: sum(row[2] == split for row in slice_rows) for split in SPLITS}
    logger.info("audio data in %s: %d works, %d performances, slices %s", out, len(work_rows),
                len(performance_rows), counts)
    return out
