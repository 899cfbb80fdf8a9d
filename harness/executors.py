"""Execute: a split's pending work items -> records, every answer committed to the response cache as it comes.

One executor is chosen per run (:func:`choose_executor`), each a small class behind one interface
(:class:`Executor`): ``start(plan, maker)`` sets a split's requests going and returns what gives its records
(``None`` on ranks other than 0 under torchrun).

- :class:`BatchedExecutor` (local models): batches of ``--batch-size`` (or the largest that fits, ``auto``),
  the next batch prepared in worker threads while the model runs on this one; a batch that raises is asked
  again item by item so only the bad item fails.
- :class:`ShardedExecutor` (under ``torchrun``): batched over this rank's share; rank 0 then gathers the other
  ranks' failures and reads their answers from the shared cache.
- :class:`StreamingExecutor` (request-bound models: APIs, vLLM): one :class:`~harness.streaming.RequestStream`
  for the whole run, up to the model's ``in_flight_limit()`` requests in flight across batches and tasks.

Every model call of a run happens in an executor (the LLM judge's, in :func:`harness.metrics_runner.
make_metric_calls`, right after); planning before and reporting after call nothing.
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from harness.cache import ResponseCache, merge_rank_files
from harness.distributed import rank_world
from harness.interfaces import ModelAdapter, ModelLoadError
from harness.planning import SplitPlan
from harness.progress import progress_bar
from harness.records import Prediction, Request, SampleRecord
from harness.streaming import RequestStream, describe_error
from harness.threads import ThreadPlan, apply_threads, plan_threads
from harness.work import RecordMaker, WorkItem

#: what ``start`` returns: a function that waits for the split's answers and gives its records
Records = Callable[[], "list[SampleRecord] | None"]


class ModelSession:
    """The run's model: loaded once, when the first request is due (a rerun answered from the cache loads
    nothing), with the CPU threads chosen for it and, for ``--batch-size auto``, the batch size that fits."""

    def __init__(self, model: ModelAdapter, name: str, config: Any) -> None:
        self.model, self.name, self.config = model, name, config
        self.ready = False
        self.thread_plan: ThreadPlan | None = None
        #: ``--batch-size auto``: where the search starts, then the largest that fitted (``None``: a fixed size)
        self.auto_batch = auto_batch_start(config.batch_size)
        self._calls_counted: dict[str, dict[str, Any]] = {}  # run_usage() already given to a task's usage

    def new_calls(self) -> dict[str, dict[str, Any]]:
        """The model's calls that belong to no sample (``run_usage()``: probes), made since the last time."""
        now = self.model.run_usage()
        fresh = {}
        for name, usage in now.items():
            before = self._calls_counted.get(name, {})
            delta = {k: v - before.get(k, 0) for k, v in usage.items() if isinstance(v, (int, float))}
            if delta.get("requests"):
                fresh[name] = delta
        self._calls_counted = {k: dict(v) for k, v in now.items()}
        return fresh

    def run_facts(self) -> dict[str, Any]:
        """What the provenance records of how the run went: the CPU thread plan, the batch size auto found."""
        facts: dict[str, Any] = {}
        if self.thread_plan is not None:
            facts["threads"] = self.thread_plan.as_dict()
        if self.auto_batch is not None:
            facts["batch_size_found"] = self.auto_batch  # --batch-size auto: the largest that fitted
        return facts

    def ensure_loaded(self) -> None:
        """``setup`` the model once; a failure is one :class:`ModelLoadError` naming the model."""
        if self.ready:
            return
        try:
            self.model.setup(self.config.device)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - one clear message instead of a library traceback
            raise ModelLoadError(f"model {self.name!r} could not be loaded: {type(exc).__name__}: {exc}") from exc
        self.ready = True
        # preparation threads and torch's intra-op threads share the cores (harness/threads.py)
        self.thread_plan = plan_threads(
            str(getattr(self.model, "device", self.config.device)),
            self.config.num_workers,
            elsewhere=not self.model.computes_here(),
        )
        apply_threads(self.thread_plan)


class Executor(ABC):
    """Turns a split's pending items into records (see the module)."""

    #: whether every task is started before the first is finished (a stream shared by the run's tasks)
    overlaps_tasks = False

    def __init__(self, session: ModelSession, cache: ResponseCache, config: Any) -> None:
        self.session, self.cache, self.config = session, cache, config

    @classmethod
    @abstractmethod
    def applies(cls, model: ModelAdapter, world: int) -> bool:
        """Whether this executor runs ``model`` in a run of ``world`` processes."""

    @property
    def model(self) -> ModelAdapter:
        """The run's model."""
        return self.session.model

    def start(self, plan: SplitPlan, maker: RecordMaker) -> Records:
        """Set the split's requests going (loading the model first when any is due); returns what gives its
        records in task order."""
        if plan.pending:
            self.session.ensure_loaded()  # before the progress bar: a model that cannot load says so cleanly
        return self._start(plan, maker)

    @abstractmethod
    def _start(self, plan: SplitPlan, maker: RecordMaker) -> Records:
        """The executor's own way of answering the pending items."""

    def close(self, finished: bool) -> None:  # noqa: B027 - optional: most executors hold nothing open
        """End of the run (``finished``: every task completed; else interrupted or failed)."""

    def bar(self, label: str, total: int, done: int) -> Any:
        """A task's progress bar; it stays on screen when the task is finished."""
        return progress_bar(
            total=total, initial=done, desc=label, unit="img", enabled=self.config.progress, dynamic_ncols=True,
            leave=True,
        )  # fmt: skip

    def commit(self, maker: RecordMaker, answered: Sequence[tuple[WorkItem, Prediction, float]]) -> None:
        """Records for answered items, and what the cache keeps of them committed in one transaction."""
        kept = []
        for item, prediction, seconds in answered:
            item.record = maker.record(item.request, prediction, item.key or "", seconds)
            if maker.keeps(prediction) and item.key:
                kept.append((item.key, maker.payload(prediction, seconds)))
        if kept:
            self.cache.put_many(kept)


class BatchedExecutor(Executor):
    """Batches, the next prepared in worker threads while the model runs on this one (see the module)."""

    @classmethod
    def applies(cls, model: ModelAdapter, world: int) -> bool:
        """Any model in one process."""
        return world == 1

    def _start(self, plan: SplitPlan, maker: RecordMaker) -> Records:
        self.answer(plan, maker)
        records = plan.records()
        return lambda: records

    def answer(self, plan: SplitPlan, maker: RecordMaker) -> None:
        """Answer this process's pending items batch by batch, committing each batch to the cache."""
        pending = plan.pending
        rank, world = rank_world()
        label = f"{plan.label} [{self.session.name}]" + (f" rank {rank}/{world}" if world > 1 else "")
        bar = self.bar(label, len(pending) + plan.n_done if world > 1 else len(plan.items), plan.n_done)
        try:
            size = self.session.auto_batch or max(1, int(self.config.batch_size))
            position = 0
            with ThreadPoolExecutor(max_workers=max(1, self.config.num_workers)) as pool:

                def prepare(start: int) -> list[_Sliced | _Inline] | None:
                    part = pending[start : start + size]
                    return self._start_preparing([it.request for it in part], pool) if part else None

                upcoming = prepare(0)
                while position < len(pending):
                    batch = pending[position : position + size]
                    preparing = upcoming
                    upcoming = prepare(position + size)  # the next batch decodes while the model runs on this one
                    assert preparing is not None  # one preparation per batch, started a turn ahead
                    try:
                        answers = self._answer_batch([it.request for it in batch], maker.mode, preparing)
                    except _OutOfMemory:
                        # --batch-size auto: half of what did not fit, and try again
                        size = self.session.auto_batch = max(1, len(batch) // 2)
                        _free_accelerator_memory()
                        upcoming = prepare(position)
                        continue
                    self.commit(maker, [(item, p, s) for item, (p, s) in zip(batch, answers, strict=False)])
                    bar.update(len(batch))
                    position += len(batch)
        finally:
            bar.close()

    def _start_preparing(self, requests: list[Request], pool: ThreadPoolExecutor) -> list[_Sliced | _Inline]:
        """Submit the batch's ``prepare`` calls to the worker threads, one task per worker slice (a future per
        sample cost more than the preparation itself for cheap models, issue #31); with one worker, prepare
        inline when the batch's turn comes."""

        def prepare(request: Request) -> tuple[Any, str | None]:
            try:
                return self.model.prepare(request), None
            except Exception as exc:  # noqa: BLE001 - the error stays with its sample
                return None, describe_error(exc, request)

        workers = self.config.num_workers
        if len(requests) > 1 and workers > 1:
            size = -(-len(requests) // workers)
            slices = [requests[i : i + size] for i in range(0, len(requests), size)]
            futures = [pool.submit(lambda part: [prepare(r) for r in part], part) for part in slices]
            return [
                _Sliced(future, offset)
                for future, part in zip(futures, slices, strict=False)
                for offset in range(len(part))
            ]
        return [_Inline(prepare, r) for r in requests]

    def _answer_batch(
        self, requests: list[Request], mode: str, preparing: list[_Sliced | _Inline]
    ) -> list[tuple[Prediction, float]]:
        """Wait for the prepared inputs (errors stay per sample), then run the model on the good ones.

        A sample's ``seconds`` is its share of the batch's turn: from the end of the previous batch (what
        preparation had not finished by then, plus the model call), so they sum to the run's wall time."""
        start = time.perf_counter()
        outcomes = [future.result() for future in preparing]
        good = [i for i, (_, error) in enumerate(outcomes) if error is None]
        outputs = self._call_model([outcomes[i][0] for i in good], mode, [requests[i] for i in good])
        per_item = (time.perf_counter() - start) / max(1, len(requests))
        results: list[tuple[Prediction, float]] = [(Prediction(error=error), per_item) for _, error in outcomes]
        for i, prediction in zip(good, outputs, strict=False):
            results[i] = (prediction, per_item)
        return results

    def _call_model(self, inputs: list[Any], mode: str, requests: list[Request]) -> list[Prediction]:
        """One batched call; if it raises, retry item by item so only the bad item fails."""
        if not inputs:
            return []
        try:
            return self._invoke(inputs, mode)
        except Exception as exc:  # noqa: BLE001
            if self.session.auto_batch is not None and len(inputs) > 1 and _is_out_of_memory(exc):
                raise _OutOfMemory() from exc
            if len(inputs) == 1:
                return [Prediction(error=describe_error(exc, requests[0]))]
        predictions = []
        for item, request in zip(inputs, requests, strict=False):
            try:
                predictions.extend(self._invoke([item], mode))
            except Exception as exc:  # noqa: BLE001
                predictions.append(Prediction(error=describe_error(exc, request)))
        return predictions

    def _invoke(self, inputs: list[Any], mode: str) -> list[Prediction]:
        return self.model.answer(inputs, "score" if mode == "score" else "generate")


class ShardedExecutor(BatchedExecutor):
    """Under ``torchrun``: this rank's share batched, then the shards merged through the cache on rank 0."""

    @classmethod
    def applies(cls, model: ModelAdapter, world: int) -> bool:
        """Any model, several processes."""
        return world > 1

    def _start(self, plan: SplitPlan, maker: RecordMaker) -> Records:
        self.answer(plan, maker)
        records = self._merge(plan, maker)
        return lambda: records

    def _merge(self, plan: SplitPlan, maker: RecordMaker) -> list[SampleRecord] | None:
        """Gather the other ranks' failures on rank 0 and read their answers from the cache; ``None`` on the other
        ranks (their shard is in the shared cache)."""
        from harness.distributed import barrier, gather_to_rank0

        failures = [
            (it.index, it.record.error, it.record.seconds) for it in plan.pending if it.record and it.record.error
        ]
        gathered = gather_to_rank0(failures)  # every rank has committed its shard to its own cache file by now
        if gathered is not None and self.cache.path is not None:
            merge_rank_files(self.cache.path, rank_world()[1])  # rank 0 alone writes the shared file
        barrier()  # nobody reads the shared file while rank 0 writes it
        if gathered is None:
            return None
        failed = {i: (error, seconds) for part in gathered for i, error, seconds in part}
        answers = self.cache.get_many(it.key for it in plan.others if it.key)
        for item in plan.others:
            if item.index in failed:
                error, seconds = failed[item.index]
                item.record = maker.record(item.request, Prediction(error=error), item.key or "", seconds)
            elif item.key is not None and item.key in answers:
                item.record = maker.from_cache(item, answers[item.key], cached=False)
            else:
                missing = Prediction(error="no answer from the rank that owned this sample")
                item.record = maker.record(item.request, missing, item.key or "", 0.0)
        return plan.records()


class StreamingExecutor(Executor):
    """Request-bound models: one stream for the run, each answer committed as it arrives (see the module)."""

    overlaps_tasks = True

    def __init__(self, session: ModelSession, cache: ResponseCache, config: Any) -> None:
        super().__init__(session, cache, config)
        self.stream: RequestStream | None = None

    @classmethod
    def applies(cls, model: ModelAdapter, world: int) -> bool:
        """A request-bound model (``in_flight_limit() > 0``) in one process."""
        return model.in_flight_limit() > 0 and world == 1

    def _start(self, plan: SplitPlan, maker: RecordMaker) -> Records:
        if self.stream is None:
            self.stream = RequestStream(self.model, self.model.in_flight_limit())
        bar = self.bar(f"{plan.label} [{self.session.name}]", len(plan.items), plan.n_done)

        def done(item: WorkItem, prediction: Prediction, seconds: float) -> None:  # in the stream's threads
            if maker.keeps(prediction) and item.key:
                self.cache.put_many([(item.key, maker.payload(prediction, seconds))])
            bar.update(1)

        futures = [(item, self.stream.submit(item, maker.mode, done)) for item in plan.pending]

        def collect() -> list[SampleRecord]:
            try:
                for item, future in futures:
                    prediction, seconds = future.result()
                    item.record = maker.record(item.request, prediction, item.key or "", seconds)
            finally:
                bar.close()
            return plan.records()

        return collect

    def close(self, finished: bool) -> None:
        """Finish the stream: all done, or (Ctrl-C, an error) wait a bounded time for the requests in flight."""
        if self.stream is not None:
            self.stream.close(wait=finished)


#: the executors, most specific first: a run takes the first that applies (a new one is one class, one line here)
EXECUTORS: list[type[Executor]] = [StreamingExecutor, ShardedExecutor, BatchedExecutor]


def choose_executor(session: ModelSession, cache: ResponseCache, config: Any) -> Executor:
    """The run's executor: the first of :data:`EXECUTORS` that applies to the model and the process count."""
    world = rank_world()[1]
    for kind in EXECUTORS:
        if kind.applies(session.model, world):
            return kind(session, cache, config)
    raise RuntimeError(f"no executor runs {session.name!r} in {world} processes")


class _OutOfMemory(Exception):
    """A batch did not fit (``--batch-size auto``): the executor halves the batch size and asks again."""


def _is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device ran out of memory (torch's OutOfMemoryError, or a worker's message)."""
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def auto_batch_start(batch_size: int | str) -> int | None:
    """Where ``--batch-size auto`` starts (512, or N of ``auto:N``); ``None`` for a fixed batch size."""
    if isinstance(batch_size, str) and batch_size.startswith("auto"):
        return int(batch_size[5:]) if batch_size.startswith("auto:") else 512
    return None


class _Sliced:
    """One request's preparation inside a worker's slice of the batch."""

    def __init__(self, future: Future, offset: int) -> None:
        self.future, self.offset = future, offset

    def result(self) -> Any:
        """This request's prepared input (or error)."""
        return self.future.result()[self.offset]


class _Inline:
    """A preparation run on the main thread when its result is asked for (one worker: no overlap)."""

    def __init__(self, prepare: Any, request: Request) -> None:
        self.prepare, self.request = prepare, request

    def result(self) -> Any:
        """Prepare now."""
        return self.prepare(self.request)
