"""The process group for multi-GPU / multi-process fine-tuning.

``torchrun --nproc_per_node=N -m vlmkit.train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
and ``MASTER_ADDR``/``MASTER_PORT``; :func:`setup` then joins the group (NCCL on CUDA, gloo on
CPU) and picks ``cuda:LOCAL_RANK``. Without those variables everything is single-process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..utils import VlmkitError, resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when setup() created the group (and cleanup() destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the process group described by the environment (or the one already initialised)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        owns = False
    elif world > 1:
        rank = int(os.environ.get("RANK", "0"))
        owns = True
    else:
        return DistInfo(0, 1, resolve_device(device), False)
    dev = resolve_device(device)
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count())))
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if owns:
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise VlmkitError(f"WORLD_SIZE={world} but {var} is not set; launch with torchrun")
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, dev, owns)


def cleanup(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average logged scalars over ranks (keys in the same order on every rank)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist())}
