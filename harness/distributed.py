"""Data-parallel evaluation under ``torchrun`` / ``accelerate launch``: shard samples by rank, merge on rank 0.

Every rank lists the same samples and computes the same cache keys; sample ``i``
belongs to rank ``i % world_size``. Each rank answers its own unfinished samples
and commits them to its own cache file (no two processes write one SQLite file: that
breaks on the network filesystems multi-node runs share); failures, which are never
cached, are gathered on rank 0 with ``torch.distributed.gather_object`` (gloo). Rank 0
then merges the rank files into the shared cache, reads every answer from it and
writes the results. Because keys do not depend on the rank, a run can
be resumed with any number of processes, one included.
"""

from __future__ import annotations

import datetime
import os
from typing import Any


def rank_world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init(timeout_s: float = 7200.0) -> None:
    """Join the process group (gloo: object collectives work on any device)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_s))


def gather_to_rank0(local: Any) -> list[Any] | None:
    """Every rank's ``local`` on rank 0 (in rank order); ``None`` on the other ranks."""
    import torch.distributed as dist

    rank, world = rank_world()
    gathered: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(local, gathered, dst=0)
    return gathered


def barrier() -> None:
    """Wait until every rank is here."""
    import torch.distributed as dist

    dist.barrier()


def local_device() -> str | None:
    """``cuda:<LOCAL_RANK>`` under a launcher, else ``None``."""
    local = os.environ.get("LOCAL_RANK")
    return f"cuda:{local}" if local is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
