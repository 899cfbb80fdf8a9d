"""Plan: a split's samples -> work items with cache keys, the answers the cache already holds, and what to ask.

No model is called here. :func:`plan_split` builds one request per sample (``--gen-kwargs`` over the task's
decoding), hashes each image (memoised; an unreadable file becomes its sample's error), reads every answer the
response cache holds (a failure it kept stays a failure unless ``--retry-failed``), and leaves the rest
pending: this process's share under ``torchrun`` (the others' are ``others``), costliest first when the model
gives costs. What it finds is said before the first model call.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.cache import ResponseCache
from harness.distributed import rank_world
from harness.interfaces import ModelAdapter, Task
from harness.progress import progress_bar
from harness.records import GenerationParams, Request, Sample, SampleRecord
from harness.work import RecordMaker, WorkItem

#: images hashed (and their memo looked up) per step of the hashing progress bar
HASH_CHUNK = 2000


class RunError(ValueError):
    """A run that cannot start or go on (unknown model or decoding setting, bad arguments, a data-parallel run
    without the cache it merges through)."""


@dataclass
class SplitPlan:
    """A split's work: every item in task order, those this process asks, those another rank asks."""

    label: str
    items: list[WorkItem]
    pending: list[WorkItem] = field(default_factory=list)
    others: list[WorkItem] = field(default_factory=list)
    kept_failures: int = 0

    @property
    def n_done(self) -> int:
        """Items answered already (from the cache) or failed before any call."""
        return len(self.items) - len(self.pending) - len(self.others)

    def records(self) -> list[SampleRecord]:
        """The records of the items that have one, in task order."""
        return [item.record for item in self.items if item.record is not None]


def check_gen_kwargs(gen_kwargs: dict[str, Any]) -> None:
    """``--gen-kwargs`` names only decoding settings the harness knows."""
    allowed = {f.name for f in dataclasses.fields(GenerationParams)}
    unknown = sorted(set(gen_kwargs) - allowed)
    if unknown:
        raise RunError(f"--gen-kwargs: unknown {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")


def with_gen_kwargs(request: Request, gen_kwargs: dict[str, Any]) -> Request:
    """A generate request with ``--gen-kwargs`` over the task's decoding settings (they enter the cache key)."""
    if request.kind != "generate" or not gen_kwargs:
        return request
    base = request.generation or GenerationParams()
    return dataclasses.replace(request, generation=dataclasses.replace(base, **gen_kwargs))


def plan_split(
    task: Task,
    samples: Sequence[Sample],
    maker: RecordMaker,
    *,
    model: ModelAdapter,
    model_fp_hash: str,
    task_fp_hash: str,
    cache: ResponseCache,
    config: Any,
    label: str,
) -> SplitPlan:
    """The plan of one split (see the module): keyed items, cached answers read, the rest pending."""
    rank, world = rank_world()
    if world > 1 and not config.use_cache:
        raise RunError("data-parallel runs merge through the response cache: drop --no-cache")
    items = keyed_items(task, samples, maker, model_fp_hash, task_fp_hash, cache, config, label)
    cached = cache.get_many(item.key for item in items if item.key) if config.use_cache else {}
    if config.retry_failed:  # --retry-failed: the kept failures are asked again
        cached = {key: payload for key, payload in cached.items() if payload.get("error") is None}
    plan = SplitPlan(label, items)
    for item in items:
        if item.key is None:
            continue
        if item.key in cached:
            item.record = maker.from_cache(item, cached[item.key], cached=True)
            plan.kept_failures += item.record.error is not None
        elif item.index % world == rank:
            plan.pending.append(item)
        else:
            plan.others.append(item)  # another rank's sample
    plan.pending = costliest_first(model, plan.pending)
    if config.progress:
        say_plan(plan, model)
    return plan


def keyed_items(
    task: Task,
    samples: Sequence[Sample],
    maker: RecordMaker,
    model_fp_hash: str,
    task_fp_hash: str,
    cache: ResponseCache,
    config: Any,
    label: str,
) -> list[WorkItem]:
    """A work item per sample with its response-cache key; an unreadable file is its sample's error. Keys need
    each image's content hash: minutes on a large benchmark the first time, so it has its own progress bar."""
    mode = maker.mode
    items = [
        WorkItem(i, with_gen_kwargs(task.request(sample, mode), config.gen_kwargs)) for i, sample in enumerate(samples)
    ]
    hashing = progress_bar(
        total=len(items),
        desc=f"{label}: hashing images",
        unit="file",
        enabled=config.progress,
        dynamic_ncols=True,
        leave=False,
        mininterval=0.5,
    )
    for start in range(0, len(items), HASH_CHUNK):  # batched: one memo query per chunk, not per file
        chunk = items[start : start + HASH_CHUNK]
        for item, sample_hash in zip(chunk, cache.sample_hashes([it.request.sample for it in chunk]), strict=False):
            if isinstance(sample_hash, OSError):
                reason = sample_hash.strerror or sample_hash
                item.record = maker.failure(
                    item.request, f"{item.request.sample.describe()}: cannot read file ({reason})"
                )
                continue
            item.key = cache.request_key(model_fp_hash, task_fp_hash, item.request, sample_hash)
        hashing.update(len(chunk))
    hashing.close()
    cache.flush()
    return items


def costliest_first(model: ModelAdapter, pending: list[WorkItem]) -> list[WorkItem]:
    """Pending items by the model's cost, costliest first (stable); task order if it gives none. Records keep task
    order whatever the processing order."""
    costs = {item.index: model.cost(item.request) for item in pending}
    if all(c is None for c in costs.values()):
        return pending
    return sorted(pending, key=lambda item: -(costs[item.index] or 0.0))


def say_plan(plan: SplitPlan, model: ModelAdapter) -> None:
    """Before the first model call: the failures the cache kept, and what will be asked now (with the model's
    estimate of tokens or cost)."""
    if plan.kept_failures:
        print(
            f"{plan.label}: {plan.kept_failures} failures kept in the cache from an earlier run (the endpoint "
            "answered, the answer could not be used); --retry-failed asks them again",
            file=sys.stderr,
            flush=True,
        )
    if plan.pending:
        estimate = model.estimate([item.request for item in plan.pending])
        print(
            f"{plan.label}: {len(plan.pending)} to answer now, {plan.n_done} from the cache"
            + (f"; {estimate}" if estimate else ""),
            file=sys.stderr,
            flush=True,
        )


def say_samples(config: Any, task_name: str, split: str, n: int, available: int, why: str = "") -> None:
    """Say, before the first model call, how many samples of which split this run will send."""
    if not config.progress:
        return
    limit = f" (--limit {config.limit}: label-stratified, seed {config.seed})" if n < available else ""
    print(f"{task_name}: {n} of {available} {split} samples{limit}" + (f" {why}" if why else ""), file=sys.stderr,
          flush=True)  # fmt: skip
