"""Multi-process data-parallel training with torch.distributed, launched by ``torchrun``.

``torchrun --nproc-per-node N -m neuralinv train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
:func:`context` then joins the process group (gloo on CPU, nccl on CUDA). Without those
variables training runs as one process and every helper here is a no-op. Each rank samples its
own training matrices (its seed is offset by its rank); DistributedDataParallel averages the
gradients, so all ranks hold the same weights; rank 0 alone writes files and reports progress.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import InputError


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


@contextmanager
def context(device: str) -> Iterator[Context]:
    """Join the torchrun process group if launched by torchrun (and leave it afterwards)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield Context(0, 1, _device(device, None))
        return
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = _device(device, local_rank)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    try:
        yield Context(dist.get_rank(), dist.get_world_size(), dev)
    finally:
        if owns_group:
            dist.destroy_process_group()


def _device(name: str, local_rank: int | None) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("device 'cuda' requested but CUDA is not available")
        if local_rank is not None and dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers: equal digests mean identical weights."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


__all__ = ["Context", "context", "weights_digest"]
