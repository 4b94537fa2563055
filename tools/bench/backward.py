"""DecDTW: cost of the backward pass relative to the forward solve.

Times, in interleaved rounds (so machine load hits every variant alike; each timed call is
preceded by one untimed call of the same variant, as in a training loop), for each config,
as wall-clock and as process CPU time (on a shared machine the CPU time is the steadier):

- ``gdtw``: the GDTW solver's forward alone (``seqvpr.align.gdtw``);
- ``decdtw fwd``: the DecDTW layer's forward (solver + active set + Newton polish), no grad;
- ``decdtw fwd+bwd``: the layer's forward and backward, gradients for the reference and
  query values and lambda.

Configs: VPR (10-frame queries into 25-frame references, batch 8, NetVLAD D = 32768,
float32, M = 50, subsequence) and audio (256 score frames into 282 performance frames,
one pair, D = 128, M = 512, subsequence).

    python tools/bench/backward.py [--rounds 15] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from seqvpr.align import GDTWConfig, Signal, decdtw, gdtw


def _pair(batch: int, ref_length: int, query_length: int, dim: int, period_s: float, seed: int, device: str):
    gen = torch.Generator().manual_seed(seed)
    ref_times = torch.cumsum(torch.empty(batch, ref_length).uniform_(0.8, 1.2, generator=gen), 1) * period_s
    start = ref_times[:, 3:4]
    query_times = start + torch.cumsum(torch.empty(batch, query_length).uniform_(0.8, 1.0, generator=gen), 1) * period_s
    ref_values = torch.nn.functional.normalize(torch.randn(batch, ref_length, dim, generator=gen), dim=-1)
    # Queries resemble the reference around their true place, plus noise.
    index = torch.searchsorted(ref_times.contiguous(), query_times.contiguous()).clamp(max=ref_length - 1)
    query_values = ref_values.gather(1, index[..., None].expand(-1, -1, dim)) + 0.5 * torch.randn(
        batch, query_length, dim, generator=gen
    ) / dim**0.5
    query_values = torch.nn.functional.normalize(query_values, dim=-1)
    return [x.to(device) for x in (ref_times, ref_values, query_times, query_values)]


def _time(function, sync) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(name: str, tensors, config: GDTWConfig, rounds: int, sync) -> dict[str, dict[str, float]]:
    ref_times, ref_values, query_times, query_values = tensors
    reference, query = Signal(ref_times, ref_values), Signal(query_times, query_values)
    lam = torch.tensor(float(config.lam), dtype=torch.float64, device=ref_values.device)

    def solve():
        gdtw(reference, query, config)

    def forward():
        with torch.no_grad():
            decdtw(reference, query, config)

    # Signals that require grad are built once, like those the solver gets.
    ref, qry, rate = (x.detach().clone().requires_grad_() for x in (ref_values, query_values, lam))
    trainable = Signal(ref_times, ref), Signal(query_times, qry)
    trainable_config = replace(config, lam=rate)

    def forward_backward():
        decdtw(*trainable, trainable_config).sum().backward()
        for tensor in (ref, qry, rate):  # consumed, as by an optimiser step
            tensor.grad = None

    variants = {"gdtw": solve, "decdtw fwd": forward, "decdtw fwd+bwd": forward_backward}
    for function in variants.values():  # warm up (numba compilation, allocator)
        function()
    samples = {key: [] for key in variants}
    for _ in range(rounds):
        for key, function in variants.items():
            function()  # settle the allocator on this variant's pattern, then time one call
            samples[key].append(_time(function, sync))
    medians = {}
    for clock, column in (("wall", 0), ("cpu", 1)):
        m = {key: statistics.median(x[column] for x in values) for key, values in samples.items()}
        medians[clock] = m
        print(
            f"| {name} | {clock} | {m['gdtw'] * 1e3:.1f} | {m['decdtw fwd'] * 1e3:.1f} | "
            f"{m['decdtw fwd+bwd'] * 1e3:.1f} | {m['decdtw fwd+bwd'] / m['gdtw']:.2f} | "
            f"{m['decdtw fwd+bwd'] / m['decdtw fwd']:.2f} |"
        )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} interleaved rounds; wall-clock and process CPU time")
    print("| config | clock | gdtw fwd (ms) | DecDTW fwd (ms) | DecDTW fwd+bwd (ms) | fwd+bwd / gdtw | fwd+bwd / DecDTW fwd |")
    print("|---|---|---|---|---|---|---|")
    vpr = _pair(8, 25, 10, 32768, 1.0, 0, args.device)
    bench("VPR 10 into 25, B=8, D=32768, M=50", vpr, GDTWConfig(subsequence=True, lam=0.1, grid_size=50), args.rounds, sync)
    audio = _pair(1, 282, 256, 128, 1024 / 22050, 1, args.device)
    bench("audio 256 into 282, B=1, D=128, M=512", audio, GDTWConfig(subsequence=True, lam=0.1, grid_size=512),
          max(3, args.rounds // 3), sync)


if __name__ == "__main__":
    main()
