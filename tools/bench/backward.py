"""DecDTW: cost of the backward pass relative to the forward solve.

Times, in interleaved rounds (so machine load hits every variant alike; each timed call is
preceded by one untimed call of the same variant, as in a training loop), for each config,
as wall-clock and as process CPU time (on a shared machine the CPU time is the steadier):

- ``gdtw``: the GDTW solver's forward alone (``seqvpr.align.gdtw``);
- ``decdtw fwd``: the DecDTW layer's forward (solver + working-set iterations to the exact
  local optimum), no grad;
- ``decdtw fwd+bwd``: the layer's forward and backward, gradients for the reference and
  query values and lambda.

Configs: VPR (10-frame queries into 25-frame references, batch 8, NetVLAD D = 32768,
float32, M = 50, subsequence) and audio (256 score frames into 282 performance frames,
one pair, D = 128, M = 512, subsequence).

A second table times the only part of the backward pass that grows with D, the values'
gradients, three ways on the VPR config at a real solution: seqvpr's one-pass numba kernel
(the CPU path), its torch path (other devices), and the baseline it replaced: gather both
endpoints of every knot's segment and multiply by the dense (N x 2m) coefficient matrix.
Two rows give the memory floor: filling freshly allocated gradient buffers, and one read of
the descriptors.

    python tools/bench/backward.py [--rounds 15] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from seqvpr.align import GDTWConfig, Signal, decdtw, gdtw
from seqvpr.align._active_set import CONVERGED, local_optimum
from seqvpr.align._value_grads import value_gradients_cpu, value_gradients_torch


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


def bench(name: str, tensors, config: GDTWConfig, rounds: int, sync, iterations: list[str]) -> dict[str, dict[str, float]]:
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
    optimum = local_optimum(reference, gdtw(reference, query, config), None)
    iterations.append(f"{name}: working-set iterations per item {optimum.iterations.tolist()}, "
                      f"fell back to the DP answer: {int((optimum.status != CONVERGED).sum())} of {reference.batch_size}")
    return medians


def _dense_product(reference, knot_values, segment, scaled, alpha):
    """The baseline: gathered (R_k - Q_i, R_k+1 - R_k) pairs times a dense coefficient matrix."""
    batch, ref_size, dim = reference.shape
    size = segment.shape[1]
    flat = (segment + torch.arange(batch)[:, None] * ref_size).flatten()
    rows = reference.reshape(-1, dim)
    pair = rows.index_select(0, torch.stack([flat, flat + 1], 1).flatten()).reshape(-1, 2, dim)
    pair[:, 1].sub_(pair[:, 0])
    pair[:, 0].sub_(knot_values.reshape(-1, dim))
    offset_col = 2 * torch.arange(size).expand(batch, size)
    k0 = segment * (2 * size)
    k1 = k0 + 2 * size
    index = torch.cat([k0 + offset_col, k0 + offset_col + 1, k1 + offset_col, k1 + offset_col + 1], 1)
    coefficient = torch.cat([scaled, -scaled * (1.0 - 2.0 * alpha), -scaled, -2.0 * alpha * scaled], 1)
    matrix = torch.zeros(batch, ref_size * 2 * size, dtype=torch.float64).scatter_add_(1, index, coefficient)
    matrix = matrix.reshape(batch, ref_size, 2 * size).to(reference.dtype)
    grad_reference = torch.bmm(matrix, pair.reshape(batch, 2 * size, dim))
    grad_knots = (pair[:, 1] * scaled.to(reference.dtype).reshape(-1, 1)).reshape(batch, size, dim)
    return grad_reference, grad_knots


def bench_values(tensors, config: GDTWConfig, rounds: int) -> None:
    ref_times, ref_values, query_times, query_values = tensors
    reference, query = Signal(ref_times, ref_values), Signal(query_times, query_values)
    segment, fraction = reference.segments(gdtw(reference, query, config).warp)
    gen = torch.Generator().manual_seed(2)
    scaled = torch.randn(segment.shape, dtype=torch.float64, generator=gen)
    alpha = fraction.double()
    args = (ref_values, query_values, segment, scaled, alpha)
    variants = {
        "seqvpr numba pass": lambda: value_gradients_cpu(*args, True, True),
        "seqvpr torch path": lambda: value_gradients_torch(*args, True, True),
        "dense product (baseline)": lambda: _dense_product(*args),
        # What any implementation pays: allocate and fill the two gradients, read the inputs.
        "floor: fill fresh gradient buffers": lambda: (torch.zeros_like(ref_values), torch.zeros_like(query_values)),
        "floor: read the descriptors once": lambda: (ref_values.sum(), query_values.sum()),
    }
    expected = _dense_product(*args)
    for name, function in list(variants.items())[:3]:  # warm up, and check they agree
        for got, want in zip(function(), expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for function in list(variants.values())[3:]:
        function()
    samples = {key: [] for key in variants}
    for _ in range(rounds):
        for key, function in variants.items():
            # Torch's OpenMP workers spin for milliseconds after a parallel op and would slow
            # whichever variant runs next (numba runs its own threads): start each idle.
            time.sleep(0.02)
            function()
            samples[key].append(_time(function, lambda: None)[0])
    base = statistics.median(samples["dense product (baseline)"])
    touched = len(torch.unique(torch.cat([segment, segment + 1], 1)[0]))
    print(f"\nvalues' gradients, VPR config ({touched} of {ref_values.shape[1]} reference rows touched in item 0), "
          f"wall-clock median of {rounds}")
    print("| variant | ms | speed-up vs dense product |")
    print("|---|---|---|")
    for key, values in samples.items():
        median = statistics.median(values)
        print(f"| {key} | {median * 1e3:.2f} | {base / median:.1f}x |")


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
    iterations: list[str] = []
    bench("VPR 10 into 25, B=8, D=32768, M=50", vpr, GDTWConfig(subsequence=True, lam=0.1, grid_size=50), args.rounds,
          sync, iterations)
    audio = _pair(1, 282, 256, 128, 1024 / 22050, 1, args.device)
    bench("audio 256 into 282, B=1, D=128, M=512", audio, GDTWConfig(subsequence=True, lam=0.1, grid_size=512),
          max(3, args.rounds // 3), sync, iterations)
    print("\n".join(iterations))
    if args.device == "cpu":
        bench_values(vpr, GDTWConfig(subsequence=True, lam=0.1, grid_size=50), args.rounds)


if __name__ == "__main__":
    main()
