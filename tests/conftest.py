"""Shared test fixtures: devices, dtypes, the CUDA marker and a float64 gradient check.

- ``@pytest.mark.requires_cuda``: the one marker for tests that need a CUDA device; they
  are skipped (not failed) where there is none. ``requires_cuda`` below is the same marker.
- ``device``: every test that takes it runs on the CPU and, marked ``requires_cuda``, on CUDA.
- ``dtype``: every test that takes it runs in float32 and float64.
- ``gradcheck``: ``gradcheck(function, *inputs, **options)`` runs
  :func:`torch.autograd.gradcheck` on float64 inputs (it refuses others: finite
  differences in float32 are too coarse to check anything).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

requires_cuda = pytest.mark.requires_cuda


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_cuda: needs a CUDA device; skipped where there is none")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA not available")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=requires_cuda)])
def device(request: pytest.FixtureRequest) -> torch.device:
    """The CPU, and a CUDA device where there is one."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


def _gradcheck(function: Callable[..., torch.Tensor], *inputs: torch.Tensor, **options) -> bool:
    for index, value in enumerate(inputs):
        if isinstance(value, torch.Tensor) and value.requires_grad and value.dtype != torch.float64:
            raise TypeError(f"gradcheck input {index} is {value.dtype}; finite differences need float64")
    settings = {"eps": 1e-6, "atol": 1e-6, "rtol": 1e-4, **options}
    return torch.autograd.gradcheck(function, inputs, **settings)


@pytest.fixture
def gradcheck() -> Callable[..., bool]:
    """:func:`torch.autograd.gradcheck` on float64 inputs (eps 1e-6, atol 1e-6, rtol 1e-4 unless given)."""
    return _gradcheck


@pytest.fixture
def chunk_writes(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[int]]:
    """``chunk_writes(stop_after=None)`` patches ``seqvpr.extraction``'s chunk writer and returns
    the list of chunk starts it writes; with ``stop_after=N`` the run is interrupted
    (KeyboardInterrupt) instead of writing chunk N + 1."""
    import seqvpr.extraction as extraction

    original = extraction._write_chunk

    def patch(stop_after: int | None = None) -> list[int]:
        written: list[int] = []

        def write(partial, start, *rest):
            if stop_after is not None and len(written) == stop_after:
                raise KeyboardInterrupt
            written.append(start)
            original(partial, start, *rest)

        monkeypatch.setattr(extraction, "_write_chunk", write)
        return written

    return patch
