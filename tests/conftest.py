"""Shared test fixtures."""

import pytest
import torch


def cuda_available() -> bool:
    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="CUDA not available")
