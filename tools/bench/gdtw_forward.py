"""Forward GDTW timings against in-run baselines (the paper's §5 solver against seqvpr's kernels).

Each row times seqvpr's GDTW (fast convex-hull DP) beside two baselines measured in the
same run on the same inputs: the same solver with the brute-force O(M^2) DP kernel, and
classic DTW. The last row also reports the peak memory the call adds beyond its inputs.

Usage: python tools/bench/gdtw_forward.py [--repeats 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, median_time_ms, peak_extra_memory_mb  # noqa: E402

from seqvpr.align import GDTWConfig, Signal, dtw, gdtw  # noqa: E402


def problem(batch, reference_length, query_length, dim, seed=0):
    """Unit-norm descriptors (like NetVLAD's) at 1 Hz; the query is a noisy stretch."""
    generator = torch.Generator().manual_seed(seed)
    reference_values = torch.randn(batch, reference_length, dim, generator=generator)
    reference_values = torch.nn.functional.normalize(reference_values.cumsum(1), dim=-1)
    offset = max(0, (reference_length - query_length) // 3)
    index = torch.linspace(offset, offset + min(query_length, reference_length - offset) - 1, query_length).long()
    query_values = reference_values[:, index] + 0.1 * torch.randn(batch, query_length, dim, generator=generator)
    reference_times = torch.arange(reference_length, dtype=torch.float32).expand(batch, -1)
    query_times = torch.arange(query_length, dtype=torch.float32).expand(batch, -1) * 1.05
    return Signal(reference_times, reference_values), Signal(query_times, query_values)


CASES = [
    # name, batch, N_ref, n_query, D, M, subsequence, target ms
    ("VPR 10 into 25, D=128, batch 8", 8, 25, 10, 128, 50, True, 2),
    ("VPR 10 into 25, D=32768, batch 8", 8, 25, 10, 32768, 50, True, 30),
    ("audio 256 vs 282, M=512, D=128", 1, 282, 256, 128, 512, True, 10),
    ("full n=m=800, D=128", 1, 800, 800, 128, None, False, 60),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="fewer repeats of the slow baselines")
    parser.add_argument("--memory-child", choices=("gdtw", "dtw"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    slow_repeats = 1 if args.quick else 3

    print(f"machine: {machine_line()}")
    print("| problem | seqvpr GDTW (ms) | target (ms) | brute O(M^2) kernel (ms) | speed-up vs brute | "
          "classic DTW (ms) | GDTW / DTW |")
    print("|---|---|---|---|---|---|---|")
    for name, batch, n_ref, n_query, dim, size, subsequence, target in CASES:
        reference, query = problem(batch, n_ref, n_query, dim)
        config = GDTWConfig(subsequence=subsequence, grid_size=size, lam=0.1)
        brute_config = GDTWConfig(subsequence=subsequence, grid_size=size, lam=0.1, kernel="brute")
        fast = median_time_ms(lambda: gdtw(reference, query, config), args.repeats)
        slow_repeats_here = slow_repeats if (size or n_ref + 1) * n_query < 100_000 else 1
        brute = median_time_ms(lambda: gdtw(reference, query, brute_config), slow_repeats_here, warmup=1)
        classic = median_time_ms(lambda: dtw(reference, query, subsequence=subsequence), args.repeats)
        same = torch.allclose(gdtw(reference, query, config).cost, gdtw(reference, query, brute_config).cost,
                              rtol=1e-5)
        print(f"| {name} | {fast:.2f} | {target} | {brute:.1f} | {brute / fast:.0f}x | {classic:.2f} | "
              f"{fast / classic:.1f}x |" + ("" if same else " COST MISMATCH"))

    memory = {method: json.loads(subprocess.run(
        [sys.executable, __file__, "--memory-child", method], capture_output=True, text=True, check=True
    ).stdout) for method in ("gdtw", "dtw")}
    print()
    print(f"full n=m=800, D=128, float32: inputs {memory['gdtw']['input_mb']:.2f} MB; peak resident memory "
          f"added by gdtw {memory['gdtw']['extra_mb']:.1f} MB (target <= 100 MB); "
          f"by classic DTW {memory['dtw']['extra_mb']:.1f} MB (each measured in a fresh process)")


def memory_child(method: str) -> None:
    """Peak memory of one full 800 x 800 alignment in this (fresh) process, as JSON."""
    small_reference, small_query = problem(1, 30, 30, 8)
    gdtw(small_reference, small_query)  # load the compiled kernels first
    dtw(small_reference, small_query)
    reference, query = problem(1, 800, 800, 128)
    input_mb = sum(t.numel() * t.element_size() for t in (reference.values, query.values)) / 2**20
    if method == "gdtw":
        extra = peak_extra_memory_mb(lambda: gdtw(reference, query, GDTWConfig(subsequence=False)))
    else:
        extra = peak_extra_memory_mb(lambda: dtw(reference, query))
    print(json.dumps({"input_mb": input_mb, "extra_mb": extra}))


if __name__ == "__main__":
    main()
