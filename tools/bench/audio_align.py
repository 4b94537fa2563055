"""Whole-piece audio-to-score alignment: `seqvpr audio align`'s library call against synctoolbox.

Builds one long performance with exact ground truth (a music21 corpus score cut or
repeated to --minutes, played with a random expressive tempo map through FluidR3, with
reverb and noise), writes the score as MIDI and the performance as FLAC, then times, in
the same process:

- seqvpr: ``align_piece`` end to end (score synthesis, features, coarse DTW, windowed GDTW);
  the first call (cold: librosa's lazy imports and numba compilation) and the median of
  --repeats warm calls;
- synctoolbox: MrMsDTW on chroma + DLNCO (features included) from the same two recordings
  (the score synthesised the same way), once.

and prints both wall times, their ratio, and TimeErr / TimeDev of each against the truth.

    python tools/bench/audio_align.py --minutes 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import machine_line


def _long_score(minutes: float):
    from seqvpr.audio.score import corpus_score, score_end

    score = corpus_score("bach/bwv846.mxl")  # WTC I prelude and fugue in C major
    length = score_end(score)
    target = 60.0 * minutes
    copies = int(np.ceil(target / length))
    for instrument in score.instruments:
        notes = list(instrument.notes)
        for copy in range(1, copies):
            for note in notes:
                instrument.notes.append(type(note)(note.velocity, note.pitch, note.start + copy * length,
                                                   note.end + copy * length))
    from seqvpr.audio.score import trim_score

    return trim_score(score, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="piece length (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="warm seqvpr runs (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--no-peer", action="store_true", help="skip synctoolbox")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import soundfile

    from seqvpr.audio.metrics import time_errors
    from seqvpr.audio.performance import perform, with_program
    from seqvpr.audio.piece import align_piece
    from seqvpr.audio.score import score_end
    from seqvpr.audio.synthesis import FLUIDR3, add_room, synthesize
    from seqvpr.audio.tempo import random_tempo_map

    rng = np.random.default_rng(0)
    score = _long_score(args.minutes)
    onsets = np.unique([n.start for i in score.instruments for n in i.notes])
    truth = random_tempo_map(score_end(score), rng, onsets_s=onsets)
    rate = 22050
    performance = add_room(synthesize(perform(score, truth, rng), rate, FLUIDR3), rate, rng, 0.5, 0.25, 25.0)
    folder = Path(tempfile.mkdtemp(prefix="seqvpr-bench-audio-"))
    with_program(score, 0, velocity=80).write(str(folder / "score.mid"))
    soundfile.write(folder / "performance.flac", performance, rate)
    print(machine_line())
    print(f"piece: {score_end(score) / 60:.2f} min of score, {len(performance) / rate / 60:.2f} min of performance")

    start = time.perf_counter()
    result = align_piece(folder / "score.mid", folder / "performance.flac")
    cold = time.perf_counter() - start
    warm = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = align_piece(folder / "score.mid", folder / "performance.flac")
        warm.append(time.perf_counter() - start)
    ours = time_errors(result.alignment, truth)
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in result.seconds.items())
    print(f"seqvpr audio align: cold {cold:.2f} s, warm median {statistics.median(warm):.2f} s ({stages}); "
          f"TimeErr {1000 * ours.time_err_s:.1f} ms, TimeDev {1000 * ours.time_dev_s:.1f} ms")
    if args.no_peer:
        return
    from seqvpr.audio.peer import synctoolbox_align

    score_audio = synthesize(with_program(score, 0, velocity=80, merge=True), rate)
    start = time.perf_counter()
    peer = synctoolbox_align(score_audio, performance, rate)
    peer_s = time.perf_counter() - start
    theirs = time_errors(peer, truth)
    print(f"synctoolbox MrMsDTW (chroma + DLNCO): {peer_s:.2f} s (score synthesis not included); "
          f"TimeErr {1000 * theirs.time_err_s:.1f} ms, TimeDev {1000 * theirs.time_dev_s:.1f} ms")
    print(f"ratio synctoolbox / seqvpr warm: {peer_s / statistics.median(warm):.1f}x")


if __name__ == "__main__":
    main()
