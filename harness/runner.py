"""The run: tasks x one model -> per-sample records, metrics and a results file per task, in three stages.

1. **Plan** (:mod:`harness.planning`): list a task's samples, one request and cache key per sample, the
   answers the response cache holds, what is left to ask.
2. **Execute** (:mod:`harness.executors`): one executor per run (batched, sharded under torchrun, or streamed
   for request-bound models) asks the model, each answer committed to the cache as it comes; then the LLM
   judges' calls (:func:`harness.metrics_runner.make_metric_calls`). Every call of the run happens here.
3. **Report** (:mod:`harness.reporting`): metrics, intervals, usage, audit and the results files; calls nothing.

:class:`Evaluator` orchestrates them: the model is built once, every task is planned and executed (all
started first when streaming, so the tasks share the stream's slots), then reported as it finishes.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cache import ResponseCache, merge_rank_files
from harness.cli_args import merged_kv, parse_kv
from harness.distributed import rank_world
from harness.executors import ModelSession, Records, choose_executor
from harness.file_memo import forget_recent_stats
from harness.fingerprint import hash_obj, rehashing
from harness.gc_policy import fewer_collections
from harness.hf_data import is_hf_source, serve_from_hub
from harness.interfaces import Metric, MetricContext, ModelAdapter, ReportsCalls, Task
from harness.metrics_runner import make_metric_calls
from harness.names import check_name
from harness.perturbations import Level, parse_sweep, perturb_task
from harness.planning import RunError, check_gen_kwargs, plan_split, say_samples
from harness.plugin_manager import HarnessPlugins
from harness.records import Sample
from harness.reporting import AnsweredTask, ModelIdentity, TaskInHand, report_task
from harness.results import model_dir_name
from harness.results_model import Results
from harness.run_lock import hold_cache
from harness.verdicts import judge_unknown_verdicts
from harness.work import RecordMaker

__all__ = ["Evaluator", "RunConfig", "RunError", "TaskOutcome", "build_model", "build_task", "limited"]


@dataclass
class RunConfig:
    """Everything ``harness run`` was asked to do (recorded verbatim in results)."""

    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    tasks: str = "aigi-mini"
    #: a count, or a fraction of each task below 1
    limit: int | float | None = None
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
    #: the name boards show for this run's model (``--label``; default: the model's name)
    label: str | None = None
    #: a robustness sweep (``--perturb``, :mod:`harness.perturbations`): each level its own task run
    perturb: str | None = None

    @classmethod
    def from_namespace(cls, args: Any) -> RunConfig:
        """The configuration ``harness run``'s parsed arguments ask for (flag names to fields, K=V strings parsed)."""
        return cls(
            model=args.model,
            model_args=merged_kv(args.model_args, "--model-args"),
            tasks=args.tasks,
            limit=args.limit,
            batch_size=args.batch_size,
            device=args.device,
            output_dir=args.output_dir,
            strict=args.strict,
            seed=args.seed,
            split=args.split,
            mode=args.mode,
            data_root=args.data_root,
            num_workers=args.num_workers or default_workers(),
            use_cache=not args.no_cache,
            progress=not args.quiet,
            bootstrap=args.bootstrap,
            seen=[g for g in args.seen.split(",") if g] if args.seen is not None else None,
            audit=not args.no_audit,
            verdict_judge=args.verdict_judge,
            task_args=parse_kv(args.task_args),
            extra_metrics=[m for m in args.extra_metrics.split(",") if m],
            rehash=args.rehash,
            retry_failed=args.retry_failed,
            label=args.label,
            gen_kwargs=parse_kv(args.gen_kwargs),
            cache_path=args.use_cache,
            perturb=args.perturb,
        )

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
    #: "done", "skipped", "failed", or "shard" (a torchrun rank other than 0 answered its share; rank 0 reports)
    status: str
    reason: str = ""
    results_path: Path | None = None
    main_metric: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 0
    n_failed: int = 0
    n_cached: int = 0
    seconds: float = 0.0
    audit: float | None = None
    #: the share of the majority label: what the audit's accuracy is at when the files carry no leak
    audit_majority: float | None = None
    #: what the task's results file holds, in memory (done and failed tasks)
    results: Results | None = None


@dataclass
class _StartedTask(TaskInHand):
    """A task whose requests are under way: what finishing it needs."""

    evaluation: Records
    calibration: Records | None
    start: float


def limited(samples: list[Sample], limit: int | float | None, seed: int = 0) -> list[Sample]:
    """``--limit N``: a seeded subset of N samples (or of a fraction of them, for a ``limit`` below 1, as lm-eval's
    ``--limit 0.1``), stratified by label (each label keeps its share, rounded, at least one while N allows), in
    task order. A limit meant for a quick look must not be the first N of a task, which on most benchmarks are
    all real (AUC undefined)."""
    if limit is not None and limit < 1:
        limit = max(1, round(limit * len(samples)))
    if limit is None or limit >= len(samples):
        return list(samples)
    limit = int(limit)
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
    if isinstance(cls, type) and issubclass(cls, ModelAdapter):
        cls.check_options(args, manifest.name)  # a misspelt option is an error, not a recorded no-op
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
    from_hub = is_hf_source(data_root) and not cls.reads_hf_source
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
    """Runs one model over several tasks: plan, execute, report (see the module)."""

    def __init__(self, config: RunConfig, plugins: HarnessPlugins, command: list[str] | None = None):
        self.config = config
        self.plugins = plugins
        self.command = command or []
        check_gen_kwargs(config.gen_kwargs)
        self.model, self.model_name = build_model(plugins, config.model, config.model_args)
        with rehashing(config.rehash):  # --rehash: the checkpoint's files too, not only the images
            self.model_fp = self.model.fingerprint()
        self.model_fp_hash = hash_obj(self.model_fp)
        rank, world = rank_world()
        self.cache = ResponseCache(
            (config.cache_path or config.output_dir / ".cache" / "responses.sqlite") if config.use_cache else None,
            rehash=config.rehash,
            rank=rank if world > 1 else None,  # under torchrun: a file per rank, merged by rank 0
        )
        self.session = ModelSession(self.model, self.model_name, config)
        self.executor = choose_executor(self.session, self.cache, config)
        shown = self.model.display_name()
        folder = f"{self.model_name}-{shown}" if shown and shown != self.model_name else self.model_name
        self.model_dir = config.output_dir / model_dir_name(folder, self.model_fp_hash)
        self.identity = ModelIdentity(self.model_name, self.model, self.model_fp, self.model_fp_hash, self.model_dir)

    # -- public ------------------------------------------------------------------------------
    def run(self) -> list[TaskOutcome]:
        """Evaluate every selected task; tasks without data are skipped with a reason.

        Under ``torchrun`` (``WORLD_SIZE`` > 1) samples are sharded by rank and rank 0 writes
        the results (:mod:`harness.distributed`). The garbage collector runs at a run's pace meanwhile
        (:mod:`harness.gc_policy`).
        """
        with fewer_collections():
            return self._run()

    def _run(self) -> list[TaskOutcome]:
        if rank_world()[1] > 1:
            from harness.distributed import init

            init()
        manifests = self.plugins.registry.select_tasks(self.config.tasks)
        levels: list[Level | None] = list(parse_sweep(self.config.perturb)) if self.config.perturb else [None]
        runs = [(manifest.name, level) for manifest in manifests for level in levels]
        outcomes = []
        finished = False
        lock = hold_cache(self.cache, self.command)
        try:
            self.model.check()  # weights and environment, before any data is built or listed
            if self.executor.overlaps_tasks:
                # request-bound model: every task's requests go into one stream up front, so the slots a task's
                # last answers leave free are filled by the next task's first requests
                started = [self._start_task(name, level) for name, level in runs]
                outcomes = [self._finish_task(s) if isinstance(s, _StartedTask) else s for s in started]
            else:
                for name, level in runs:
                    begun = self._start_task(name, level)
                    outcomes.append(self._finish_task(begun) if isinstance(begun, _StartedTask) else begun)
            finished = True
        finally:
            self.executor.close(finished)
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

    # -- plan and execute --------------------------------------------------------------------
    def _start_task(self, registered: str, level: Level | None = None) -> _StartedTask | TaskOutcome:
        """Build and list the task (perturbed at ``level``, then named ``<task>+<level>``), plan its splits and set
        their requests going (answered at once when batched, submitted to the stream when streaming); an outcome
        straight away when it is skipped or cannot start."""
        task_name = f"{registered}+{level.slug}" if level else registered
        try:
            task = build_task(self.plugins, registered, self.config.data_root, self.config.task_args)
            task = perturb_task(task, level) if level else task
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
        forget_recent_stats()  # only this task's listing may stand in for a stat when its files are hashed
        try:
            samples = list(task.samples(split))
        except Exception as exc:  # noqa: BLE001
            return TaskOutcome(task_name, "failed", f"could not list samples: {type(exc).__name__}: {exc}")
        n_available = len(samples)
        samples = limited(samples, self.config.limit, self.config.seed)
        say_samples(self.config, task_name, split, len(samples), n_available)
        task_fp = task_fingerprint(task, split, mode)
        own = list(task.metrics_for(mode))
        metrics_list = build_metrics(self.plugins, own + [m for m in self.config.extra_metrics if m not in own])
        maker = RecordMaker(task, mode, self.config.use_cache)
        evaluation = self._start_split(task, samples, maker, task_fp, task_name)
        calibration = self._start_calibration(task, split, maker, metrics_list, task_name)  # every rank joins
        return _StartedTask(
            task_name, task, mode, split, samples, n_available, task_fp, metrics_list, evaluation, calibration, start
        )

    def _start_split(
        self, task: Task, samples: list[Sample], maker: RecordMaker, fingerprint: dict[str, Any], label: str
    ) -> Records:
        """Plan one split and hand it to the run's executor."""
        plan = plan_split(
            task,
            samples,
            maker,
            model=self.model,
            model_fp_hash=self.model_fp_hash,
            task_fp_hash=hash_obj(fingerprint),
            cache=self.cache,
            config=self.config,
            label=label,
        )
        return self.executor.start(plan, maker)

    def _start_calibration(
        self, task: Task, split: str, maker: RecordMaker, metrics: Sequence[Metric], task_name: str
    ) -> Records | None:
        """The task's validation split, set going like the evaluated split when a metric needs it to choose a
        threshold (cached like any run); ``None`` when no metric does."""
        cal_split = task.calibration_split
        if not cal_split or cal_split == split or not any(m.needs_calibration for m in metrics):
            return None
        available = list(task.samples(cal_split))
        samples = limited(available, self.config.limit, self.config.seed)  # --limit bounds every split
        why = "to choose the threshold of acc_val_threshold"
        say_samples(self.config, task_name, cal_split, len(samples), len(available), why)
        fingerprint = task_fingerprint(task, cal_split, maker.mode)
        return self._start_split(task, samples, maker, fingerprint, f"{task_name}/{cal_split}")

    def _finish_task(self, started: _StartedTask) -> TaskOutcome:
        """Wait for a started task's answers, make its judges' calls, then report it."""
        records = started.evaluation()
        calibration_all = started.calibration() if started.calibration else None
        if records is None:  # a rank other than 0 under torchrun: its shards are done
            n = len(started.samples)
            return TaskOutcome(started.name, "shard", f"rank {rank_world()[0]} answered its shard", n_samples=n)
        calibration = (
            None
            if calibration_all is None
            else [r for r in calibration_all if r.error is None and r.score is not None and r.label is not None]
        )
        judges: dict[str, dict[str, Any]] = {}
        if self.config.verdict_judge and started.mode == "generate":
            judges["verdict_fallback"] = judge_unknown_verdicts(self.plugins, self.config, records)
        context = MetricContext(
            calibration=calibration,
            cache_dir=self.config.output_dir / ".cache",
            seed=self.config.seed,
            plugins=self.plugins,
            retry_failed=self.config.retry_failed,
            intervals=self.cache.intervals if self.config.use_cache else None,
            values=self.cache.metric_values if self.config.use_cache else None,
        )
        make_metric_calls(started.metrics, records, context)  # the judges' calls, once, with the model's
        for metric in started.metrics:  # the judge metrics' calls, counted like the model's
            used = metric.judge_usage() if isinstance(metric, ReportsCalls) else None
            if used:
                judges[metric.name] = used
        answered = AnsweredTask(
            **started.in_hand(),
            records=records,
            context=context,
            calibration_records=calibration_all or [],  # every request of the validation split counts
            calibration_used=len(calibration) if calibration is not None else None,
            seen=seen_generators(self.config, self.model),
            judge_usage=judges,
            model_calls=self.session.new_calls(),  # the model's probes, in the first task after them
            started=started.start,
        )
        folder = task_output_name(started.task, started.mode, started.name)
        report = report_task(
            answered, self.identity, self.config, self.plugins, self.command, self.session.run_facts(), folder
        )
        return TaskOutcome(
            started.name,
            report.status,
            report.reason,
            results_path=report.path,
            results=report.results,
            main_metric=started.task.main_metric,
            metrics=report.metrics,
            n_samples=report.n_samples,
            n_failed=report.n_failed,
            n_cached=report.n_cached,
            seconds=report.seconds,
            audit=report.audit,
            audit_majority=report.audit_majority,
        )


def seen_generators(config: RunConfig, model: ModelAdapter) -> list[str] | None:
    """``--seen`` if given, else the generators the model's checkpoint declares it was trained on."""
    if config.seen is not None:
        return list(config.seen)
    seen = (model.trained_on() or {}).get("seen_generators")
    return list(seen) if seen is not None else None


def task_fingerprint(task: Task, split: str, mode: str) -> dict[str, Any]:
    """The task's fingerprint with the split and mode (part of every cache key)."""
    fingerprint = task.fingerprint()
    fingerprint["split"], fingerprint["mode"] = split, mode
    return fingerprint


def default_workers() -> int:
    """Worker threads for per-sample preparation: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))
