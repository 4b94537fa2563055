"""The processes of a training run: one, or a DDP group started by ``torchrun``.

Under ``torchrun`` the environment names the rank, the world size and the rendezvous; gloo
serves CPU processes and NCCL CUDA ones. :class:`Distributed` wraps the few collectives the
training loop needs (and is a no-op for one process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Distributed", "setup_distributed", "teardown_distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) run.

    Attributes:
        rank: global rank, 0..world_size - 1.
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        device: the torch device this process computes on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all processes."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._collective_device)
        torch.distributed.all_reduce(tensor)
        return float(tensor) / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any."""
        if not self.active:
            return flag
        tensor = torch.tensor([float(flag)], device=self._collective_device)
        torch.distributed.all_reduce(tensor)
        return bool(tensor > 0)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (a picklable object from our own code)."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, values: list[int]) -> list[int]:
        """The concatenation of every process's list, in rank order."""
        if not self.active:
            return list(values)
        boxes: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(boxes, list(values))
        return [item for box in boxes for item in box]

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def setup_distributed(device: str = "cpu") -> Distributed:
    """Joins the process group that ``torchrun`` describes, or runs alone.

    With ``WORLD_SIZE`` > 1 in the environment the process group is initialised (gloo on
    the CPU, NCCL on CUDA, rendezvous from ``MASTER_ADDR``/``MASTER_PORT``) and each
    process uses GPU ``LOCAL_RANK``. Call :func:`teardown_distributed` at the end.

    Args:
        device: ``cpu`` or ``cuda`` (``cuda:N`` for a single process).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(device=torch.device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on_cuda = torch.device(device).type == "cuda"
    if on_cuda:
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if on_cuda else "gloo")
    place = torch.device("cuda", local_rank) if on_cuda else torch.device("cpu")
    return Distributed(rank, world_size, local_rank, place)


def teardown_distributed(distributed: Distributed) -> None:
    """Leaves the process group (no-op for one process)."""
    if distributed.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
