"""The evaluation loop: tasks x one model -> per-sample records, metrics and a results file per task.

For each task: list its samples, build one request per sample, answer what the
response cache already holds, send the rest to the model in batches (per-sample
CPU preparation in worker threads, a failing sample isolated from its batch),
commit each batch to the cache, then compute metrics and write
``samples.jsonl`` and ``results.json`` as soon as the task is done.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.audit import format_shortcut_audit
from harness.cache import ResponseCache, merge_rank_files
from harness.distributed import rank_world
from harness.fingerprint import hash_obj, rehashing
from harness.hf_data import is_hf_source, serve_from_hub
from harness.interfaces import Metric, MetricContext, ModelAdapter, ModelLoadError, Task
from harness.metrics_runner import compute_metrics, make_metric_calls
from harness.names import check_name
from harness.plugin_manager import HarnessPlugins
from harness.progress import progress_bar
from harness.records import GenerationParams, Prediction, Request, Sample, SampleRecord, printable
from harness.results import TaskRun, model_dir_name, provenance, usage_totals, write_task_results
from harness.run_lock import RunLock
from harness.streaming import RequestStream, describe_error, normalise_prediction
from harness.threads import ThreadPlan, apply_threads, plan_threads

#: images hashed (and their memo looked up) per step of the hashing progress bar
HASH_CHUNK = 2000


class RunError(ValueError):
    """A run that cannot start (unknown model, model that fails to construct, bad arguments)."""


@dataclass
class RunConfig:
    """Everything ``harness run`` was asked to do (recorded verbatim in results)."""

    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    tasks: str = "aigi-mini"
    limit: int | None = None
    #: samples per model call, or "auto" / "auto:N": the largest that fits, halved from N (512) on out-of-memory
    batch_size: int | str = 32
    device: str = "auto"
    output_dir: Path = Path("results")
    strict: bool = False
    seed: int = 0
    split: str | None = None
    mode: str | None = None
    data_root: str | None = None
    num_workers: int = 4
    use_cache: bool = True
    progress: bool = True
    bootstrap: int = 1000
    seen: list[str] | None = None
    audit: bool = True
    verdict_judge: str | None = None
    task_args: dict[str, Any] = field(default_factory=dict)
    #: metrics added to every task's own (e.g. ``acc_oracle_univfd``, off by default)
    extra_metrics: list[str] = field(default_factory=list)
    #: hash every image file's content again (the memo trusts path + size + mtime)
    rehash: bool = False
    #: decoding settings for generate requests, over each task's own (``--gen-kwargs``)
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    #: the response cache's file (default: ``output_dir/.cache/responses.sqlite``)
    cache_path: Path | None = None
    #: ask again the failures the cache kept because asking again would repeat them (unusable answers)
    retry_failed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = dict(self.__dict__)
        data["output_dir"] = str(self.output_dir)
        data["cache_path"] = str(self.cache_path) if self.cache_path else None
        return data


@dataclass
class TaskOutcome:
    """What happened to one task in a run."""

    task: str
    status: str  # "done", "skipped" or "failed"
    reason: str = ""
    results_path: Path | None = None
    main_metric: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 0
    n_failed: int = 0
    n_cached: int = 0
    seconds: float = 0.0
    audit: float | None = None


@dataclass
class WorkItem:
    """One sample's way through a run: its request, its response-cache key (``None`` when the file cannot be
    read) and, once known, its record."""

    index: int
    request: Request
    key: str | None = None
    record: SampleRecord | None = None


@dataclass
class _StartedTask:
    """A task whose requests are under way: what finishing it needs."""

    name: str
    task: Task
    mode: str
    split: str
    samples: list[Sample]
    n_available: int
    task_fp: dict[str, Any]
    metrics: list[Metric]
    evaluation: Callable[[], list[SampleRecord] | None]
    calibration: Callable[[], list[SampleRecord] | None] | None
    start: float


def limited(samples: list[Sample], limit: int | None, seed: int = 0) -> list[Sample]:
    """``--limit N``: a seeded subset of N samples, stratified by label (each label keeps its share, rounded, at
    least one while N allows), in task order. A limit meant for a quick look must not be the first N of a
    task, which on most benchmarks are all real (AUC undefined)."""
    if limit is None or limit >= len(samples):
        return list(samples)
    rng = random.Random(seed)
    by_label: dict[Any, list[int]] = {}
    for index, sample in enumerate(samples):
        by_label.setdefault(sample.label, []).append(index)
    groups = sorted(by_label.items(), key=lambda kv: str(kv[0]))
    quota = {
        label: min(len(idx), max(1 if limit >= len(groups) else 0, round(limit * len(idx) / len(samples))))
        for label, idx in groups
    }
    while sum(quota.values()) > limit:  # rounding overshoot: trim the largest share
        largest = max(quota, key=lambda k: quota[k])
        quota[largest] -= 1
    while sum(quota.values()) < limit:  # undershoot: top up where samples remain
        label = max((k for k, idx in groups if quota[k] < len(idx)), key=lambda k: len(by_label[k]) - quota[k])
        quota[label] += 1
    chosen = sorted(i for label, idx in groups for i in rng.sample(idx, quota[label]))
    return [samples[i] for i in chosen]


def task_output_name(task: Task, mode: str, registered: str | None = None) -> str:
    """The results folder of a task under the model's folder: the name it was registered (and asked for) under,
    so two registrations of one class never share a folder, with the mode appended for tasks that have several
    (``fakeclass-score``, ``fakeclass-generate``), so runs of different modes into one ``--output-dir`` never
    overwrite each other. A name that could leave the folder (``..``, ``/``) is refused."""
    name = check_name("task", registered or task.name)
    return f"{name}-{mode}" if len(task.modes) > 1 else name


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if already imported) torch."""
    import sys

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def choose_mode(task: Task, model: ModelAdapter, requested: str | None) -> str:
    """The first of the task's modes that the model serves (or the requested one, checked)."""
    served = set(model.request_kinds)
    if requested:
        if requested not in task.modes:
            raise ValueError(f"task {task.name!r} has no mode {requested!r} (modes: {', '.join(task.modes)})")
        if requested not in served:
            raise ValueError(f"model serves {sorted(served)}, not {requested!r}")
        return requested
    for mode in task.modes:
        if mode in served:
            return mode
    raise ValueError(f"task {task.name!r} needs one of {list(task.modes)}; the model serves {sorted(served)}")


def build_model(plugins: HarnessPlugins, name: str, args: dict[str, Any]) -> tuple[ModelAdapter, str]:
    """Construct the adapter registered as ``name``; returns it and its canonical name."""
    manifest = plugins.get("model", name)
    cls = manifest.load()
    try:
        model = cls(**{**manifest.options, **args})
    except TypeError as exc:
        raise RunError(f"model {manifest.name!r} rejected its arguments {args}: {exc}") from exc
    return model, manifest.name


def build_task(
    plugins: HarnessPlugins, name: str, data_root: str | None, task_args: dict[str, Any] | None = None
) -> Task:
    """Construct the task registered as ``name`` with its manifest options and the user's ``--task-args``;
    ``data_root="hf:SOURCE"`` makes it read a ``datasets`` dataset (:mod:`harness.hf_data`)."""
    manifest = plugins.get("task", name)
    cls = manifest.load()
    kwargs = {**manifest.options, **(task_args or {})}
    from_hub = is_hf_source(data_root) and not getattr(cls, "reads_hf_source", False)
    if data_root and not from_hub:
        kwargs["data_root"] = data_root
    task = cls(**kwargs)
    if from_hub:  # any task reads a `datasets` dataset: only where its samples come from changes
        assert data_root is not None
        serve_from_hub(task, data_root[len("hf:") :])
    return task


def build_metrics(plugins: HarnessPlugins, names: Sequence[str]) -> list[Metric]:
    """Instantiate the named metrics."""
    metrics = []
    for name in names:
        manifest = plugins.get("metric", name)
        metrics.append(manifest.load()(**manifest.options))
    return metrics


class Evaluator:
    """Runs one model over several tasks with caching, batching and error isolation."""

    def __init__(self, config: RunConfig, plugins: HarnessPlugins, command: list[str] | None = None):
        self.config = config
        self.plugins = plugins
        self.command = command or []
        self.model, self.model_name = build_model(plugins, config.model, config.model_args)
        with rehashing(config.rehash):  # --rehash: the checkpoint's files too, not only the images
            self.model_fp = self.model.fingerprint()
        self.model_fp_hash = hash_obj(self.model_fp)
        self.model_ready = False
        self._stream: RequestStream | None = None  # one stream for the whole run, when streaming
        self._model_calls_counted: dict[str, dict[str, Any]] = {}  # run_usage() already put into a task's usage
        self.thread_plan: ThreadPlan | None = None  # chosen once the model is loaded
        rank, world = rank_world()
        self.cache = ResponseCache(
            (config.cache_path or config.output_dir / ".cache" / "responses.sqlite") if config.use_cache else None,
            rehash=config.rehash,
            rank=rank if world > 1 else None,  # under torchrun: a file per rank, merged by rank 0
        )
        self._check_gen_kwargs()
        self.auto_batch = auto_batch_start(config.batch_size)  # None: a fixed batch size
        shown = self.model.display_name()
        self.model_dir = config.output_dir / model_dir_name(
            f"{self.model_name}-{shown}" if shown and shown != self.model_name else self.model_name, self.model_fp_hash
        )

    # -- public ------------------------------------------------------------------------------
    def run(self) -> list[TaskOutcome]:
        """Evaluate every selected task; tasks without data are skipped with a reason.

        Under ``torchrun`` (``WORLD_SIZE`` > 1) samples are sharded by rank and rank 0 writes
        the results (:mod:`harness.distributed`).
        """
        if rank_world()[1] > 1:
            from harness.distributed import init

            init()
        manifests = self.plugins.registry.select_tasks(self.config.tasks)
        explicit = len(manifests) == 1 and self.config.tasks.strip() != "all"
        outcomes = []
        finished = False
        lock = self._lock()
        try:
            self.model.check()  # weights and environment, before any data is built or listed
            if self._streaming():
                # request-bound model: every task's requests go into one stream up front, so the slots a task's
                # last answers leave free are filled by the next task's first requests
                started = [self._start_task(manifest.name, explicit) for manifest in manifests]
                outcomes = [self._finish_task(s) if isinstance(s, _StartedTask) else s for s in started]
            else:
                for manifest in manifests:
                    begun = self._start_task(manifest.name, explicit)
                    outcomes.append(self._finish_task(begun) if isinstance(begun, _StartedTask) else begun)
            finished = True
        finally:
            if self._stream is not None:
                self._stream.close(wait=finished)
            self.cache.close()
            if finished and self.cache.rank is not None and self.cache.path is not None:
                from harness.distributed import barrier

                barrier()  # every rank's file is closed: rank 0 folds them in for good and removes them
                if self.cache.rank == 0:
                    merge_rank_files(self.cache.path, rank_world()[1], remove=True)
            self.model.close()
            if lock is not None:
                lock.release()
        return outcomes

    def _lock(self) -> RunLock | None:
        """Hold the response cache for this run (one run per cache: none pays for another's answers); under
        torchrun rank 0 holds it for all ranks."""
        if self.cache.path is None or self.cache.read_only or (self.cache.rank or 0) != 0:
            return None
        lock = RunLock(self.cache.path, self.command)
        try:
            lock.acquire()
        except BaseException:
            self.cache.close()
            raise
        return lock

    def _streaming(self) -> bool:
        """Whether this run streams requests (a request-bound model, one process) instead of batching them."""
        return self.model.in_flight_limit() > 0 and rank_world()[1] == 1

    # -- one task ----------------------------------------------------------------------------
    def _start_task(self, task_name: str, explicit: bool) -> _StartedTask | TaskOutcome:
        """Build and list the task and set its requests going (answered at once when batched, submitted to the
        stream when streaming); an outcome straight away when it is skipped or cannot start."""
        try:
            task = build_task(self.plugins, task_name, self.config.data_root, self.config.task_args)
            ok, reason = task.available()
        except Exception as exc:  # noqa: BLE001 - a broken task must not stop the others
            return TaskOutcome(task_name, "failed", f"{type(exc).__name__}: {exc}")
        if not ok:
            return TaskOutcome(task_name, "skipped", reason)
        try:
            mode = choose_mode(task, self.model, self.config.mode)
        except ValueError as exc:
            return TaskOutcome(task_name, "skipped", str(exc))
        start = time.perf_counter()
        seed_everything(self.config.seed)
        split = self.config.split or task.default_split
        try:
            samples = list(task.samples(split))
        except Exception as exc:  # noqa: BLE001
            return TaskOutcome(task_name, "failed", f"could not list samples: {type(exc).__name__}: {exc}")
        n_available = len(samples)
        samples = limited(samples, self.config.limit, self.config.seed)
        self._plan(task_name, split, len(samples), n_available)
        task_fp = self._task_fingerprint(task, split, mode)
        own = list(task.metrics_for(mode))
        metrics_list = build_metrics(self.plugins, own + [m for m in self.config.extra_metrics if m not in own])
        evaluation = self._begin(task, samples, mode, hash_obj(task_fp), task_name)
        calibration = self._begin_calibration(task, split, mode, metrics_list, task_name)  # every rank joins
        return _StartedTask(
            task_name, task, mode, split, samples, n_available, task_fp, metrics_list, evaluation, calibration, start
        )

    def _finish_task(self, started: _StartedTask) -> TaskOutcome:
        """Wait for a started task's answers, then compute its metrics and write its results."""
        task, task_name, mode, split, samples = started.task, started.name, started.mode, started.split, started.samples
        n_available, task_fp, metrics_list, start = started.n_available, started.task_fp, started.metrics, started.start
        records = started.evaluation()
        calibration_all = started.calibration() if started.calibration else None
        calibration = (
            None
            if calibration_all is None
            else [r for r in calibration_all if r.error is None and r.score is not None and r.label is not None]
        )
        if records is None:  # a rank other than 0 under torchrun: its shards are done
            return TaskOutcome(task_name, "shard", f"rank {rank_world()[0]} answered its shard", n_samples=len(samples))
        judges: dict[str, dict[str, Any]] = {}
        if self.config.verdict_judge and mode == "generate":
            judges["verdict_fallback"] = self._judge_unknown_verdicts(records)
        context = MetricContext(
            calibration=calibration,
            cache_dir=self.config.output_dir / ".cache",
            seed=self.config.seed,
            plugins=self.plugins,
            retry_failed=self.config.retry_failed,
            intervals=self.cache.intervals if self.config.use_cache else None,
        )
        make_metric_calls(metrics_list, records, context)  # the judges' calls, once, with the model's
        seen = self._seen_generators()
        metrics = compute_metrics(  # from here on nothing is called: metrics, bootstrap and writing only
            metrics_list,
            records,
            context=context,
            bootstrap=self.config.bootstrap,
            seen=seen,
            breakdowns=task.breakdown_keys,
            average_over=task.average_over,
            calls=False,
        )
        for metric in metrics_list:  # the judge metrics' calls, counted like the model's
            used = getattr(metric, "judge_usage", lambda: None)()
            if used:
                judges[metric.name] = used
        # every request counts: the validation split's, the model's probes (first task after them), the judges'
        usage = usage_totals(records, calibration_all or [], judges, self._new_model_calls())
        audit = format_shortcut_audit(samples, seed=self.config.seed) if self.config.audit else None
        seconds = time.perf_counter() - start
        prov = provenance(self.plugins, self.command, self.config.as_dict(), self.config.seed)
        if self.thread_plan is not None:
            prov["threads"] = self.thread_plan.as_dict()
        if self.auto_batch is not None:
            prov["batch_size_found"] = self.auto_batch  # --batch-size auto: the largest that fitted
        run = TaskRun(
            model_name=self.model_name,
            model=self.model,
            model_fp=self.model_fp,
            model_fp_hash=self.model_fp_hash,
            task=task,
            task_fp=task_fp,
            split=split,
            mode=mode,
            records=records,
            metrics=metrics,
            n_available=n_available,
            limit=self.config.limit,
            seconds=seconds,
            provenance=prov,
            audit=audit,
            seen=seen,
            n_calibration=len(calibration) if calibration is not None else None,
            data_notes=task.data_notes(),
            exports=task.export(records),
            usage=usage,
            task_name=task_name,
            metric_info={
                m.name: {"range": list(m.value_range), "higher_is_better": m.higher_is_better} for m in metrics_list
            },
        )
        path = write_task_results(self.model_dir / task_output_name(task, mode, task_name), run)
        counts = run.counts
        status, reason = "done", ""
        if records and counts.n_failed == counts.n_samples:
            first = next(r.error for r in records if r.error)
            status, reason = "failed", f"all {len(records)} samples failed; the first: {first}"
        return TaskOutcome(
            task_name,
            status,
            reason,
            results_path=path,
            main_metric=task.main_metric,
            metrics=metrics["all"],
            n_samples=counts.n_samples,
            n_failed=counts.n_failed,
            n_cached=counts.n_cached,
            seconds=seconds,
            audit=audit["cv_accuracy"] if audit else None,
        )

    def _new_model_calls(self) -> dict[str, dict[str, Any]]:
        """The model's calls that belong to no sample, made since the last task took its share."""
        seen = self._model_calls_counted
        now = self.model.run_usage()
        fresh = {}
        for name, usage in now.items():
            before = seen.get(name, {})
            delta = {k: v - before.get(k, 0) for k, v in usage.items() if isinstance(v, (int, float))}
            if delta.get("requests"):
                fresh[name] = delta
        self._model_calls_counted = {k: dict(v) for k, v in now.items()}
        return fresh

    def _judge_unknown_verdicts(self, records: list[SampleRecord]) -> dict[str, Any]:
        """LLM-judge fallback for answers the rule-based parser left unknown (and only those); returns the
        judge's usage."""
        from harness.judging import build_judge
        from harness.verdicts import judge_verdicts

        unknown = [r for r in records if r.error is None and r.text is not None and r.verdict is None]
        if not unknown:
            return {}
        judge = build_judge(self.plugins, self.config.verdict_judge)
        answers = judge_verdicts(
            judge, [(r.prompt, r.text or "") for r in unknown], self.config.output_dir / ".cache" / "judge.sqlite"
        )
        for record, (verdict, error) in zip(unknown, answers):
            record.extra["verdict_source"] = "judge" if verdict is not None else "unknown"
            if error:
                record.extra["verdict_judge_error"] = error
            record.verdict = verdict
        return dict(judge.usage)

    @staticmethod
    def _task_fingerprint(task: Task, split: str, mode: str) -> dict[str, Any]:
        fingerprint = task.fingerprint()
        fingerprint["split"], fingerprint["mode"] = split, mode
        return fingerprint

    def _begin_calibration(
        self, task: Task, split: str, mode: str, metrics: Sequence[Metric], task_name: str
    ) -> Callable[[], list[SampleRecord] | None] | None:
        """The task's validation split, set going like the evaluated split when a metric needs it to choose a
        threshold (cached like any run); ``None`` when no metric does."""
        cal_split = task.calibration_split
        if not cal_split or cal_split == split or not any(m.needs_calibration for m in metrics):
            return None
        available = list(task.samples(cal_split))
        samples = limited(available, self.config.limit, self.config.seed)  # --limit bounds every split
        self._plan(task_name, cal_split, len(samples), len(available), "to choose the threshold of acc_val_threshold")
        fingerprint = self._task_fingerprint(task, cal_split, mode)
        return self._begin(task, samples, mode, hash_obj(fingerprint), f"{task_name}/{cal_split}")

    def _plan(self, task_name: str, split: str, n: int, available: int, why: str = "") -> None:
        """Say, before the first model call, how many samples of which split this run will send."""
        if not self.config.progress:
            return
        limit = f" (--limit {self.config.limit}: label-stratified, seed {self.config.seed})" if n < available else ""
        print(
            f"{task_name}: {n} of {available} {split} samples{limit}" + (f" {why}" if why else ""),
            file=sys.stderr,
            flush=True,
        )

    def _seen_generators(self) -> list[str] | None:
        """``--seen`` if given, else the generators the model's checkpoint declares it was trained on."""
        if self.config.seen is not None:
            return list(self.config.seen)
        trained = self.model.trained_on() or {}
        seen = trained.get("seen_generators")
        return list(seen) if seen is not None else None

    def _begin(
        self, task: Task, samples: list[Sample], mode: str, task_fp_hash: str, task_name: str
    ) -> Callable[[], list[SampleRecord] | None]:
        """Set a split's requests going; returns what gives its records (in task order; ``None`` on ranks other
        than 0 under torchrun). Batched models answer here and now; a streaming run submits the requests to the
        run's stream and the records are collected when asked for."""
        items = self._keyed(task, samples, mode, task_fp_hash, task_name)
        rank, world = rank_world()
        if world > 1 and not self.config.use_cache:
            raise RunError("data-parallel runs merge through the response cache: drop --no-cache")
        cached = self.cache.get_many(item.key for item in items if item.key) if self.config.use_cache else {}
        if self.config.retry_failed:  # --retry-failed: the kept failures are asked again
            cached = {key: payload for key, payload in cached.items() if payload.get("error") is None}
        pending: list[WorkItem] = []
        others: list[WorkItem] = []
        kept_failures = 0
        for item in items:
            if item.key is None:
                continue
            if item.key in cached:
                item.record = self._from_cache(task, item, mode, cached[item.key], cached=True)
                kept_failures += item.record.error is not None
            elif item.index % world == rank:
                pending.append(item)
            else:
                others.append(item)  # another rank's sample
        pending = self._costliest_first(pending)
        n_done = len(items) - len(pending) - len(others)
        if kept_failures and self.config.progress:
            print(
                f"{task_name}: {kept_failures} failures kept in the cache from an earlier run (the endpoint answered, "
                "the answer could not be used); --retry-failed asks them again",
                file=sys.stderr,
                flush=True,
            )
        if pending and self.config.progress:
            estimate = self.model.estimate([item.request for item in pending])
            print(
                f"{task_name}: {len(pending)} to answer now, {n_done} from the cache"
                + (f"; {estimate}" if estimate else ""),
                file=sys.stderr,
                flush=True,
            )
        if pending:
            self._ensure_model()  # before the progress bar: a model that cannot load says so on a clean line
        if self._streaming():
            return self._submit(task, mode, items, pending, task_name)
        records = self._evaluate(task, mode, items, pending, others, task_name)
        return lambda: records

    def _check_gen_kwargs(self) -> None:
        allowed = {f.name for f in dataclasses.fields(GenerationParams)}
        unknown = sorted(set(self.config.gen_kwargs) - allowed)
        if unknown:
            raise RunError(f"--gen-kwargs: unknown {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")

    def _with_gen_kwargs(self, request: Request) -> Request:
        """A generate request with ``--gen-kwargs`` over the task's decoding settings (they enter the cache key)."""
        if request.kind != "generate" or not self.config.gen_kwargs:
            return request
        base = request.generation or GenerationParams()
        return dataclasses.replace(request, generation=dataclasses.replace(base, **self.config.gen_kwargs))

    def _keyed(
        self, task: Task, samples: list[Sample], mode: str, task_fp_hash: str, task_name: str = ""
    ) -> list[WorkItem]:
        """A work item per sample with its response-cache key; an unreadable file is its sample's error. Keys need
        each image's content hash: minutes on a large benchmark the first time, so it has its own progress bar."""
        items = [WorkItem(i, self._with_gen_kwargs(task.request(sample, mode))) for i, sample in enumerate(samples)]
        hashing = progress_bar(
            total=len(items),
            desc=f"{task_name}: hashing images",
            unit="file",
            enabled=self.config.progress,
            dynamic_ncols=True,
            leave=False,
            mininterval=0.5,
        )
        for start in range(0, len(items), HASH_CHUNK):  # batched: one memo query per chunk, not per file
            chunk = items[start : start + HASH_CHUNK]
            for item, sample_hash in zip(chunk, self.cache.sample_hashes([it.request.sample for it in chunk])):
                if isinstance(sample_hash, OSError):
                    reason = sample_hash.strerror or sample_hash
                    item.record = self._record(
                        task,
                        item.request,
                        mode,
                        Prediction(error=f"{item.request.sample.describe()}: cannot read file ({reason})"),
                        "",
                        0.0,
                    )
                    continue
                item.key = self.cache.request_key(self.model_fp_hash, task_fp_hash, item.request, sample_hash)
            hashing.update(len(chunk))
        hashing.close()
        self.cache.flush()
        return items

    def _submit(
        self, task: Task, mode: str, items: list[WorkItem], pending: list[WorkItem], task_name: str
    ) -> Callable[[], list[SampleRecord]]:
        """Streaming: each pending request goes to the run's stream, which keeps up to the model's
        ``in_flight_limit()`` requests in flight across batch and task boundaries and commits each answer to the
        cache as it arrives; the returned function waits for this split's answers and gives its records."""
        if self._stream is None:
            self._stream = RequestStream(self.model, self.model.in_flight_limit())
        bar = self._task_bar(f"{task_name} [{self.model_name}]", len(items), len(items) - len(pending))

        def done(item: WorkItem, prediction: Prediction, seconds: float) -> None:  # in the stream's threads
            if self._keeps(prediction) and item.key:
                self.cache.put_many([(item.key, self._payload(prediction, seconds))])
            bar.update(1)

        futures = [(item, self._stream.submit(item, mode, done)) for item in pending]

        def collect() -> list[SampleRecord]:
            try:
                for item, future in futures:
                    prediction, seconds = future.result()
                    item.record = self._record(task, item.request, mode, prediction, item.key or "", seconds)
            finally:
                bar.close()
            return [item.record for item in items if item.record is not None]

        return collect

    def _task_bar(self, desc: str, total: int, done: int) -> Any:
        """A task's progress bar; it stays on screen when the task is finished."""
        return progress_bar(
            total=total,
            initial=done,
            desc=desc,
            unit="img",
            enabled=self.config.progress,
            dynamic_ncols=True,
            leave=True,
        )

    def _keeps(self, prediction: Prediction) -> bool:
        """Whether the cache keeps this answer: every answer, and the failures that asking again would repeat."""
        return self.config.use_cache and (prediction.ok or prediction.deterministic)

    @staticmethod
    def _payload(prediction: Prediction, seconds: float) -> dict[str, Any]:
        """What the response cache keeps of an answer (or of a deterministic failure)."""
        payload = {"score": prediction.score, "text": prediction.text, "extra": prediction.extra, "seconds": seconds}
        if prediction.error is not None:
            payload["error"] = prediction.error
        return payload

    def _evaluate(
        self,
        task: Task,
        mode: str,
        items: list[WorkItem],
        pending: list[WorkItem],
        others: list[WorkItem],
        task_name: str,
    ) -> list[SampleRecord] | None:
        """Batched: answer the pending items batch by batch (the next batch prepared in worker threads while the
        model runs on this one), committing each batch to the cache; ``None`` on ranks other than 0."""
        rank, world = rank_world()
        n_done = len(items) - len(pending) - len(others)
        label = f"{task_name} [{self.model_name}]" + (f" rank {rank}/{world}" if world > 1 else "")
        bar = self._task_bar(label, len(pending) + n_done if world > 1 else len(items), n_done)
        try:
            size = self.auto_batch or max(1, int(self.config.batch_size))
            position = 0
            with ThreadPoolExecutor(max_workers=max(1, self.config.num_workers)) as pool:

                def prepare(start: int) -> list[_Sliced | _Inline] | None:
                    part = pending[start : start + size]
                    return self._start_preparing([it.request for it in part], pool) if part else None

                upcoming = prepare(0)
                while position < len(pending):
                    batch = pending[position : position + size]
                    preparing = upcoming
                    # the next batch decodes in the worker threads while the model runs on this one
                    upcoming = prepare(position + size)
                    assert preparing is not None  # one preparation per batch, started a turn ahead
                    try:
                        answers = self._answer_batch([it.request for it in batch], mode, preparing)
                    except _OutOfMemory:
                        # --batch-size auto: half of what did not fit, and try again
                        size = self.auto_batch = max(1, len(batch) // 2)
                        _free_accelerator_memory()
                        upcoming = prepare(position)
                        continue
                    to_cache: list[tuple[str, dict[str, Any]]] = []
                    for item, (prediction, seconds) in zip(batch, answers):
                        item.record = self._record(task, item.request, mode, prediction, item.key or "", seconds)
                        if self._keeps(prediction) and item.key:
                            to_cache.append((item.key, self._payload(prediction, seconds)))
                    if to_cache:
                        self.cache.put_many(to_cache)
                    bar.update(len(batch))
                    position += len(batch)
        finally:
            bar.close()
        if world > 1:
            return self._merge_shards(task, mode, items, pending, others)
        return [item.record for item in items if item.record is not None]

    def _from_cache(self, task: Task, item: WorkItem, mode: str, payload: dict[str, Any], cached: bool) -> SampleRecord:
        """The record of an answer read from the response cache."""
        error = payload.get("error")
        extra = dict(payload.get("extra") or {})
        if error is not None:
            extra["failure_cached"] = True  # a deterministic failure kept by an earlier run (--retry-failed)
        return self._record(
            task,
            item.request,
            mode,
            Prediction(
                score=payload.get("score"),
                text=payload.get("text"),
                error=error,
                extra=extra,
                deterministic=error is not None,
            ),
            item.key or "",
            payload.get("seconds", 0.0),
            cached=cached,
        )

    def _merge_shards(
        self, task: Task, mode: str, items: list[WorkItem], pending: list[WorkItem], others: list[WorkItem]
    ) -> list[SampleRecord] | None:
        """Gather the other ranks' failures on rank 0 and read their answers from the cache."""
        from harness.distributed import barrier, gather_to_rank0

        failures = [
            (it.index, it.record.error, it.record.seconds)
            for it in pending
            if it.record is not None and it.record.error
        ]
        gathered = gather_to_rank0(failures)  # every rank has committed its shard to its own cache file by now
        if gathered is not None and self.cache.path is not None:
            merge_rank_files(self.cache.path, rank_world()[1])  # rank 0 alone writes the shared file
        barrier()  # nobody reads the shared file while rank 0 writes it
        if gathered is None:
            return None  # not rank 0: this rank's shard is in the shared cache
        failed = {i: (error, seconds) for part in gathered for i, error, seconds in part}
        answers = self.cache.get_many(it.key for it in others if it.key)
        for item in others:
            if item.index in failed:
                error, seconds = failed[item.index]
                item.record = self._record(task, item.request, mode, Prediction(error=error), item.key or "", seconds)
            elif item.key is not None and item.key in answers:
                item.record = self._from_cache(task, item, mode, answers[item.key], cached=False)
            else:
                item.record = self._record(
                    task,
                    item.request,
                    mode,
                    Prediction(error="no answer from the rank that owned this sample"),
                    item.key or "",
                    0.0,
                )
        return [item.record for item in items if item.record is not None]

    def _costliest_first(self, pending: list[WorkItem]) -> list[WorkItem]:
        """Pending items by the model's cost, costliest first (stable); task order if it gives none.
        Records keep task order whatever the processing order."""
        costs = {item.index: self.model.cost(item.request) for item in pending}
        if all(c is None for c in costs.values()):
            return pending
        return sorted(pending, key=lambda item: -(costs[item.index] or 0.0))

    def _ensure_model(self) -> None:
        if not self.model_ready:
            try:
                self.model.setup(self.config.device)
            except ModelLoadError:
                raise
            except Exception as exc:  # noqa: BLE001 - one clear message instead of a library traceback
                raise ModelLoadError(
                    f"model {self.model_name!r} could not be loaded: {type(exc).__name__}: {exc}"
                ) from exc
            self.model_ready = True
            # preparation threads and torch's intra-op threads share the cores (harness/threads.py)
            self.thread_plan = plan_threads(
                str(getattr(self.model, "device", self.config.device)),
                self.config.num_workers,
                elsewhere=not self.model.computes_here(),
            )
            apply_threads(self.thread_plan)

    def _start_preparing(self, requests: list[Request], pool: ThreadPoolExecutor) -> list[_Sliced | _Inline]:
        """Submit each request's ``prepare`` to the worker threads; with one worker, prepare inline when the
        batch's turn comes."""

        def prepare(request: Request) -> tuple[Any, str | None]:
            try:
                return self.model.prepare(request), None
            except Exception as exc:  # noqa: BLE001 - the error stays with its sample
                return None, describe_error(exc, request)

        workers = self.config.num_workers
        if len(requests) > 1 and workers > 1:
            # one task per worker, each preparing a contiguous slice: a future per sample cost more than the
            # preparation itself for cheap models (issue #31), and the batch is still spread over every worker
            size = -(-len(requests) // workers)
            slices = [requests[i : i + size] for i in range(0, len(requests), size)]
            futures = [pool.submit(lambda part: [prepare(r) for r in part], part) for part in slices]
            return [_Sliced(future, offset) for future, part in zip(futures, slices) for offset in range(len(part))]
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
        for i, prediction in zip(good, outputs):
            results[i] = (prediction, per_item)
        return results

    def _call_model(self, inputs: list[Any], mode: str, requests: list[Request]) -> list[Prediction]:
        """One batched call; if it raises, retry item by item so only the bad item fails."""
        if not inputs:
            return []
        try:
            return self._predictions(self._invoke(inputs, mode), len(inputs))
        except Exception as exc:  # noqa: BLE001
            if self.auto_batch is not None and len(inputs) > 1 and _is_out_of_memory(exc):
                raise _OutOfMemory() from exc
            if len(inputs) == 1:
                return [Prediction(error=describe_error(exc, requests[0]))]
        predictions = []
        for item, request in zip(inputs, requests):
            try:
                predictions.extend(self._predictions(self._invoke([item], mode), 1))
            except Exception as exc:  # noqa: BLE001
                predictions.append(Prediction(error=describe_error(exc, request)))
        return predictions

    def _invoke(self, inputs: list[Any], mode: str) -> Sequence[Any]:
        return self.model.score_batch(inputs) if mode == "score" else self.model.generate_batch(inputs)

    @staticmethod
    def _predictions(outputs: Sequence[Any], expected: int) -> list[Prediction]:
        outputs = list(outputs)
        if len(outputs) != expected:
            raise RuntimeError(f"model returned {len(outputs)} outputs for {expected} inputs")
        return [normalise_prediction(out) for out in outputs]

    def _record(
        self,
        task: Task,
        request: Request,
        mode: str,
        prediction: Prediction,
        key: str,
        seconds: float,
        cached: bool = False,
    ) -> SampleRecord:
        sample = request.sample
        verdict, text, extra = None, prediction.text, prediction.extra
        if prediction.ok and prediction.text is not None and mode != "score":
            text = task.postprocess(sample, prediction.text)
            if text != prediction.text:
                extra = {**extra, "raw_text": prediction.text}
            verdict = task.parse_verdict(sample, text)
        return SampleRecord(
            sample_id=sample.id,
            subset=sample.subset,
            split=sample.split,
            label=sample.label,
            mode=mode,
            image=printable(sample.image) if isinstance(sample.image, str) else None,
            score=prediction.score,
            text=text,
            verdict=verdict,
            error=prediction.error,
            seconds=round(seconds, 6),
            cached=cached,
            key=key,
            prompt=request.prompt,
            metadata=sample.metadata,
            extra=dict(extra),
        )


class _OutOfMemory(Exception):
    """A batch did not fit (``--batch-size auto``): the runner halves the batch size and asks again."""


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


def default_workers() -> int:
    """Worker threads for per-sample preparation: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))
