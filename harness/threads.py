"""CPU thread counts for a run: preparation worker threads and torch's intra-op threads, chosen together.

The runner prepares samples (decode, resize, crop, normalise) in ``--num-workers`` threads while the model runs.
Left alone, torch gives every op in every one of those threads an intra-op pool as wide as the machine, so the
worker threads and the model all fan out over every core. Measured on the 2-core development machine
(``benchmarks/cpu_threads.py``, numbers in ``benchmarks/results/cpu-threads.json`` and ``benchmarks/README.md``):
CNNSpot's transforms of a 1024x768 image in 2 worker threads ran at 310 img/s (PIL input) and 281 (uint8 tensor)
with one intra-op thread each, against 284 and 259 with torch's default; CNNSpot (ResNet-50) on the CPU ran end
to end at 10.5 img/s with every core to torch against 6.5 with one. Hence the policy:

- the model runs on a GPU, in a worker process, or behind a server (an API model): torch keeps **one** intra-op
  thread in this process; the CPU's work here is per-sample preparation, parallel across the worker threads;
- the model runs on the CPU in this process: torch keeps **every core** (the forward pass dominates; the
  preparation threads are short and release the GIL while decoding).

``HARNESS_TORCH_THREADS=N`` sets the count instead, ``HARNESS_TORCH_THREADS=keep`` (or an ``OMP_NUM_THREADS``
in the environment) leaves torch's own. The choice is recorded in each results file's provenance.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ThreadPlan:
    """The thread counts of a run and why."""

    cores: int
    workers: int
    torch_threads: int | None  # None: left as torch has it
    why: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (results provenance)."""
        return asdict(self)


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def plan_threads(device: str, workers: int, elsewhere: bool = False, cores: int | None = None) -> ThreadPlan:
    """The thread counts for a model on ``device`` with ``workers`` preparation threads (see the module doc);
    ``elsewhere``: the model computes outside this process (a worker process, a server)."""
    cores = cores or available_cores()
    workers = max(1, int(workers))
    chosen = os.environ.get("HARNESS_TORCH_THREADS", "").strip().lower()
    if chosen == "keep" or (not chosen and os.environ.get("OMP_NUM_THREADS")):
        return ThreadPlan(cores, workers, None, "left as torch has it (HARNESS_TORCH_THREADS=keep or OMP_NUM_THREADS)")
    if chosen:
        return ThreadPlan(cores, workers, max(1, int(chosen)), "HARNESS_TORCH_THREADS")
    if elsewhere:
        return ThreadPlan(cores, workers, 1, "the model computes in another process: torch here only prepares samples")
    if not str(device).startswith("cpu"):
        return ThreadPlan(cores, workers, 1, f"model on {device}: preparation parallel across workers, 1 thread each")
    return ThreadPlan(cores, workers, cores, "model on the CPU: every core to its forward pass")


def apply_threads(plan: ThreadPlan) -> None:
    """Set torch's intra-op thread count (only when torch is imported: an API run never imports it)."""
    if plan.torch_threads is None or "torch" not in sys.modules:
        return
    torch = sys.modules["torch"]
    if torch.get_num_threads() != plan.torch_threads:
        torch.set_num_threads(plan.torch_threads)
