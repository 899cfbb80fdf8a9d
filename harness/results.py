"""Results files: ``samples.jsonl`` and ``results.json`` per (model, task), with provenance.

Layout under ``--output-dir``::

    <output-dir>/
      .cache/responses.sqlite          response cache (resume; reruns are free)
      <model>-<fp8>/<task>/results_<time>.json   metrics, counts, config, provenance of the run at <time>
      <model>-<fp8>/<task>/samples_<time>.jsonl  one record per sample, in task order
      <model>-<fp8>/<task>/results.json          the latest run's results (a copy, ``"latest": true``)
      <model>-<fp8>/<task>/samples.jsonl         and its records

``<fp8>`` is the first 8 hex digits of the model fingerprint (name, args,
checkpoint hash), so two checkpoints of one adapter never overwrite each other; ``<model>`` names what was
evaluated (``openai-api-gpt-4o`` for a served model). A rerun adds a timestamped pair beside the earlier
ones (the response cache makes it free) and moves ``results.json`` to it: no run is lost.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.records import SampleRecord
from harness.results_model import RESULTS_SCHEMA, Counts, MetricInfo, MetricTable, ModelInfo, Results, TaskInfo
from harness.storage import atomic_copy, atomic_write, describe_os_error, publish_exclusive, remove_stale_temps

#: one encoder for every record line (``json.dumps`` with options builds a new one per call)
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
MAX_LISTED_FAILURES = 100
_PACKAGES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "pillow",
    "pluggy",
    "safetensors",
    "torch",
    "torchvision",
    "transformers",
    "accelerate",
    "tqdm",
)


def model_dir_name(model_name: str, fingerprint_hash: str) -> str:
    """Folder name for a model's results: ``<name>-<first 8 hex of its fingerprint>``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)
    return f"{safe}-{fingerprint_hash[:8]}"


def package_versions(names: Iterable[str] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that can move scores (read once per process: a process runs the
    versions it imported)."""
    return dict(_package_versions(tuple(names)))


@functools.cache
def _package_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def machine_info() -> dict[str, Any]:
    """The machine a measurement ran on: CPU count, processor, platform, Python, and the GPU if torch sees one."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def write_benchmark(path: str | Path | None, result: dict[str, Any]) -> None:
    """Write a benchmark's result JSON (with ``machine_info()``) when a path is given."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "machine": machine_info()}, indent=2) + "\n", encoding="utf-8")


@functools.cache
def git_hash() -> str | None:
    """The harness checkout's git commit (with ``-dirty`` when modified), if it is a checkout; asked once per
    process (two ``git`` processes, one scanning the tree, were a third of a small cached rerun's fixed cost)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(plugins: Any, command: Sequence[str], config: dict[str, Any], seed: int) -> dict[str, Any]:
    """Everything needed to reproduce a result: versions, git hash, command, config, seed, host."""
    from harness import __version__

    return {
        "harness_version": __version__,
        "git_hash": git_hash(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "plugins": plugins.versions(),
        "command": list(command),
        "config": config,
        "seed": seed,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "pid": os.getpid(),
    }


def usage_totals(
    records: Sequence[SampleRecord],
    calibration: Sequence[SampleRecord] = (),
    judges: dict[str, dict[str, Any]] | None = None,
    model_calls: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Summed requests, token usage and cost of every API call a run made: the evaluated split's and the
    calibration split's model requests (``all``: cached ones included, ``this_run``: made now), the model's
    calls that belong to no sample (``model_calls``, e.g. probes; this run) and the LLM judges' calls (this
    run), each also under ``by_source``. ``requests`` counts every attempt a server received, retries and
    failed requests included (a record's ``extra.attempts``)."""
    totals = _usage_of(records)
    sources: dict[str, Any] = {}
    if totals:
        sources["evaluated_split"] = dict(totals.get("this_run", _bucket()))  # a copy: the totals grow below
    cal = _usage_of(calibration)
    if cal:
        sources["calibration_split"] = dict(cal.get("this_run", _bucket()))
        for scope, bucket in cal.items():
            _add(totals.setdefault(scope, _bucket()), bucket)
    others = {f"model:{k}": v for k, v in (model_calls or {}).items()}
    others.update({f"judge:{k}": v for k, v in (judges or {}).items()})
    for name, usage in others.items():
        if usage and usage.get("requests"):
            sources[name] = dict(usage)
            for scope in ("all", "this_run"):
                _add(totals.setdefault(scope, _bucket()), usage)
    if sources:
        totals["by_source"] = sources
    return totals or None


def _bucket() -> dict[str, Any]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0}


def _add(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key in ("prompt_tokens", "completion_tokens", "requests"):
        into[key] = into.get(key, 0) + int(other.get(key, 0))
    if "cost_usd" in other:
        into["cost_usd"] = into.get("cost_usd", 0.0) + float(other["cost_usd"])


def _usage_of(records: Sequence[SampleRecord]) -> dict[str, Any]:
    """Model usage recorded on the records: ``extra.attempts`` (requests sent for the sample, retries included;
    1 where a record has token usage but no count), ``extra.usage`` and ``extra.cost_usd``."""
    totals: dict[str, Any] = {}
    for record in records:
        extra = record.extra or {}
        usage = extra.get("usage")
        attempts = extra.get("attempts")
        if not usage and "cost_usd" not in extra and not attempts:
            continue
        for scope in ("all", "this_run") if not record.cached else ("all",):
            bucket = totals.setdefault(scope, _bucket())
            bucket["requests"] += int(attempts) if attempts else 1
            for key in ("prompt_tokens", "completion_tokens"):
                bucket[key] += int((usage or {}).get(key, 0))
            if "cost_usd" in extra:
                bucket["cost_usd"] = bucket.get("cost_usd", 0.0) + float(extra["cost_usd"])
            if record.error and scope == "this_run":
                bucket["failed_requests"] = bucket.get("failed_requests", 0) + (int(attempts) if attempts else 1)
    return totals


@dataclass
class RecordCounts:
    """How many samples were evaluated, scored, failed and served from the cache: counted in one place, for
    ``results.json`` and for the run's summary."""

    n_samples: int
    n_scored: int
    n_failed: int
    n_cached: int

    @classmethod
    def of(cls, records: Sequence[SampleRecord]) -> RecordCounts:
        """The counts of a task's records."""
        failed = sum(1 for r in records if r.error)
        return cls(len(records), len(records) - failed, failed, sum(1 for r in records if r.cached))


@dataclass
class TaskRun:
    """Everything one task of a run produced: what the results writer writes (one record, not 20 arguments)."""

    model_name: str
    model: Any
    model_fp: dict[str, Any]
    model_fp_hash: str
    task: Any
    task_fp: dict[str, Any]
    split: str
    mode: str
    records: Sequence[SampleRecord]
    metrics: dict[str, Any]
    n_available: int
    limit: int | float | None
    seconds: float
    provenance: dict[str, Any]
    audit: dict[str, Any] | None = None
    seen: list[str] | None = None
    n_calibration: int | None = None
    data_notes: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    #: the name the task was registered and asked for under (default: the task class's ``name``)
    task_name: str = ""
    #: per metric: the values it can take and its direction, as the metric declares them (checked on read)
    metric_info: dict[str, MetricInfo] = field(default_factory=dict)
    #: the name boards show for the model (``--label``)
    label: str | None = None

    @property
    def counts(self) -> RecordCounts:
        """The records' counts."""
        return RecordCounts.of(self.records)


def results_of(run: TaskRun, created: str, stamp: str) -> Results:
    """The :class:`~harness.results_model.Results` of a task run finished at ``created`` (``stamp`` names its
    files)."""
    from harness.fingerprint import hash_obj

    model, task = run.model, run.task
    return Results(
        created=created,
        run_file=f"results_{stamp}.json",
        samples_file=f"samples_{stamp}.jsonl",
        model=ModelInfo(
            name=run.model_name,
            display_name=model.display_name() or None,
            label=run.label,
            args=getattr(model, "args", {}),
            fingerprint=run.model_fp,
            fingerprint_hash=run.model_fp_hash,
            preprocessing=model.preprocessing(),
            request_kinds=sorted(model.request_kinds),
            run_notes=model.run_notes() or None,
        ),
        task=TaskInfo(
            name=run.task_name or task.name,
            version=task.version,
            split=run.split,
            mode=run.mode,
            main_metric=task.main_metric,
            fingerprint=run.task_fp,
            fingerprint_hash=hash_obj(run.task_fp),
            board_columns=getattr(task, "board_columns", {}),
            metrics=dict(run.metric_info),
        ),
        metrics=MetricTable.from_json(run.metrics),
        counts=Counts(
            **asdict(run.counts), n_available=run.n_available, limit=run.limit, n_calibration=run.n_calibration
        ),  # fmt: skip
        seen_generators=run.seen,
        usage=run.usage if run.usage is not None else usage_totals(run.records),
        data=run.data_notes,
        exports=sorted(run.exports),
        audit={"format_shortcut": run.audit},
        failures=[{"sample_id": r.sample_id, "error": r.error} for r in run.records if r.error][:MAX_LISTED_FAILURES],
        seconds=round(run.seconds, 3),
        provenance=run.provenance,
    )


def _jsonl_chunks(records: Sequence[SampleRecord], size: int = 2048) -> Iterator[str]:
    """The records as JSON lines, ``size`` lines per piece."""
    encode = _RECORD_ENCODER.encode
    for start in range(0, len(records), size):
        yield "".join([encode(r.fields_view()) + "\n" for r in records[start : start + size]])


def _publish_samples(out_dir: Path, records: Sequence[SampleRecord]) -> tuple[_dt.datetime, str]:
    """Write ``samples_<time>.jsonl`` under a name taken exclusively (two runs within a microsecond never share
    one); return the time and its stamp."""
    now = _dt.datetime.now(_dt.timezone.utc)
    while True:
        stamp = now.strftime("%Y-%m-%dT%H-%M-%S.%f")
        try:  # written as encoded, a few thousand lines at a time (a write per line cost more than the writing)
            publish_exclusive(out_dir / f"samples_{stamp}.jsonl", _jsonl_chunks(records))
            return now, stamp
        except FileExistsError:
            now += _dt.timedelta(microseconds=1)


def write_task_results(out_dir: Path, run: TaskRun) -> tuple[Path, Results]:
    """Write the run's ``samples_<time>.jsonl`` and ``results_<time>.json`` (created exclusively, never over an
    earlier run's), then ``samples.jsonl`` and ``results.json`` as the latest run's copies; return the results
    path and the :class:`~harness.results_model.Results` written. Every file is complete or absent
    (:mod:`harness.storage`); ``results.json`` names its samples file, so a reader pairs them even if the process
    died between the two copies. ``run.exports`` are extra files for upstream tools: a string is written as it is
    (e.g. CSV), anything else as JSON. A ``--limit`` run over fewer samples, beside a full run, replaces neither
    that run's ``results.json`` nor its exports: its own ``results_<time>.json`` is returned."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise describe_os_error(exc, out_dir, "create the results folder") from exc
    remove_stale_temps(out_dir)
    _remove_orphan_samples(out_dir)
    now, stamp = _publish_samples(out_dir, run.records)
    text = _results_text(results_of(run, now.isoformat(timespec="microseconds"), stamp).to_json())
    results = Results.from_json(json.loads(text))  # in memory exactly what the file holds (tuples are lists ...)
    # a --limit quick look never takes the place of a full run: results.json (what boards show) and the exports
    # stay the full run's; the quick look is its own results_<time>.json
    quick_look = len(run.records) < run.n_available and _is_full_run(out_dir / "results.json")
    for name, content in ({} if quick_look else run.exports).items():
        atomic_write(
            out_dir / name,
            content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False) + "\n",
        )
    publish_exclusive(out_dir / results.run_file, text)
    atomic_write(out_dir / f"lm_eval_{stamp}.json", _results_text(lm_eval_results(results.to_json(), run)))
    results.path = out_dir / results.run_file
    if quick_look:
        return results.path, results
    atomic_copy(out_dir / f"samples_{stamp}.jsonl", out_dir / "samples.jsonl")
    path = out_dir / "results.json"
    atomic_write(path, _results_text({**results.to_json(), "latest": True}))  # the latest run, marked
    results.latest, results.path = True, path
    return path, results


def lm_eval_results(results: dict[str, Any], run: TaskRun) -> dict[str, Any]:
    """The run in lm-evaluation-harness's results schema, written beside ours as ``lm_eval_<time>.json`` so that
    lm-eval's own tools (``lm_eval.utils.make_table``, its loggers) and anything built on that format read it:
    ``results.<task>["<metric>,none"]``, ``"<metric>_stderr,none"`` (the bootstrap's standard error, taken from
    its 95 % interval as (high - low) / 3.92; absent without ``--bootstrap``), ``versions``, ``n-shot`` (0: the
    harness has no few-shot), ``higher_is_better``, ``n-samples`` and ``config``."""
    task = results["task"]["name"]
    values: dict[str, Any] = {"alias": task}
    for name, entry in (results["metrics"].get("all") or {}).items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[f"{name},none"] = float(value)
            ci = entry.get("ci")
            if isinstance(ci, list) and len(ci) == 2:
                values[f"{name}_stderr,none"] = (float(ci[1]) - float(ci[0])) / 3.92
    info = results["task"].get("metrics") or {}
    return {
        "results": {task: values},
        "versions": {task: results["task"]["version"]},
        "n-shot": {task: 0},
        "higher_is_better": {task: {k: bool(v.get("higher_is_better", True)) for k, v in info.items()}},
        "n-samples": {task: {"original": run.n_available, "effective": len(run.records)}},
        "configs": {task: {"task": task, "output_type": results["task"]["mode"], "split": results["task"]["split"]}},
        "config": {
            "model": results["model"]["name"],
            "model_args": results["model"].get("args", {}),
            "limit": run.limit,
            "bootstrap_iters": results["provenance"].get("config", {}).get("bootstrap"),
        },
        "model_name": results["model"].get("label") or results["model"].get("display_name") or results["model"]["name"],
        "date": results["created"],
        "harness": {"name": "aigi-harness", "results_file": results["run_file"]},
    }


def _is_full_run(path: Path) -> bool:
    """Whether ``path`` holds a run over every available sample (no ``--limit``, or one above the task's size)."""
    try:
        counts = json.loads(path.read_text(encoding="utf-8")).get("counts") or {}
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(counts, dict):
        return False
    return counts.get("limit") is None or counts.get("n_samples", 0) >= counts.get("n_available", 0)


#: a run's samples file older than this with no results file beside it was left by a run that died between them
ORPHAN_AFTER_S = 300.0


def _remove_orphan_samples(out_dir: Path) -> None:
    """Remove ``samples_<time>.jsonl`` files whose ``results_<time>.json`` never came (the writer died between
    the two); a writer's own pair is seconds apart, so only files older than :data:`ORPHAN_AFTER_S` go."""
    import time

    for samples in out_dir.glob("samples_*.jsonl"):
        stamp = samples.name[len("samples_") : -len(".jsonl")]
        try:
            old = time.time() - samples.stat().st_mtime > ORPHAN_AFTER_S
        except OSError:
            continue
        if old and not (out_dir / f"results_{stamp}.json").exists():
            samples.unlink(missing_ok=True)


def _results_text(results: dict[str, Any]) -> str:
    return json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n"


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``results.json`` (each folder's latest run) at or below the given folders, and the given files as
    they are (an earlier run's ``results_<time>.json`` named on purpose)."""
    found = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("results.json") if ".cache" not in p.parts))
        else:
            raise FileNotFoundError(f"{path}: no such results file or folder")
    return found


class ResultsFileError(ValueError):
    """A results file that cannot be used: the message names the file and the field."""


def load_results(path: str | Path) -> Results:
    """Read one results file into a :class:`~harness.results_model.Results`, checking its schema and values
    (:func:`validate_results`): a file that is not JSON, lacks a field, has one of the wrong type or a metric value
    outside what the metric can take is refused with one line naming the file and the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise describe_os_error(exc, path, "read") from exc
    except ValueError as exc:
        raise ResultsFileError(f"{path}: not a valid results file: {exc}") from exc
    if not isinstance(data, dict):
        raise ResultsFileError(f"{path}: not a valid results file: a JSON object is expected")
    if data.get("schema") != RESULTS_SCHEMA:
        raise ResultsFileError(f"{path}: results schema {data.get('schema')!r}, expected {RESULTS_SCHEMA}")
    problem = validate_results(data)
    if problem:
        raise ResultsFileError(f"{path}: {problem}")
    return Results.from_json(data, path=path)


#: (path, type) of every field a board or comparison reads
_REQUIRED: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("model", dict),
    ("model.name", str),
    ("model.fingerprint_hash", str),
    ("task", dict),
    ("task.name", str),
    ("task.split", str),
    ("task.mode", str),
    ("metrics", dict),
    ("metrics.all", dict),
    ("counts", dict),
    ("counts.n_samples", int),
    ("provenance", dict),
    ("provenance.harness_version", str),
    ("provenance.date", str),
)


def _missing_field(data: dict[str, Any]) -> str | None:
    """The first of the fields boards read that is missing or of the wrong type, as ``"field: problem"``."""
    for dotted, kind in _REQUIRED:
        node: Any = data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return f"{dotted}: missing"
            node = node[part]
        if not isinstance(node, kind) or isinstance(node, bool) and kind is int:
            return f"{dotted}: expected {getattr(kind, '__name__', kind)}, found {type(node).__name__}"
    return None


def _bad_value(where: str, values: Any, ranges: dict[str, Any]) -> str | None:
    """The first metric value under ``where`` that is not a finite number inside its metric's range."""
    import math

    if not isinstance(values, dict):
        return f"{where}: expected an object of metrics"
    for name, entry in values.items():
        if not isinstance(entry, dict) or entry.get("value") is None:
            continue  # notes and other non-metric entries, undefined values
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{where}.{name}.value: {value!r} is not a finite number"
        low, high = (ranges.get(name) or {}).get("range") or (0.0, 1.0)
        if not low - 1e-9 <= value <= high + 1e-9:
            return f"{where}.{name}.value: {value!r} is outside [{low:g}, {high:g}]"
    return None


def validate_results(data: dict[str, Any]) -> str | None:
    """What is wrong with a results file's content (``"field: problem"``), or ``None``. Checks the fields boards
    read, that the task name is a plain name, and that every metric value is a finite number (or null) inside
    the range its metric declares (recorded in ``task.metrics``; [0, 1] for files written before ranges were)."""
    from harness.names import is_plain_name

    missing = _missing_field(data)
    if missing:
        return missing
    if not is_plain_name(data["task"]["name"]):
        return f"task.name: {data['task']['name']!r} is not a plain name"
    ranges = data["task"].get("metrics") if isinstance(data["task"].get("metrics"), dict) else {}
    metrics = data["metrics"]
    sections = [("metrics.all", metrics["all"])]
    sections += [(f"metrics.subsets.{k}", v) for k, v in (metrics.get("subsets") or {}).items()]
    sections += [
        (f"metrics.groups.{k}", v)
        for k, v in (metrics.get("groups") or {}).items()
        if k not in ("average", "seen_generators")
    ]
    for where, values in sections:
        problem = _bad_value(where, values, ranges)
        if problem:
            return problem
    return None


def samples_path(results_path: str | Path) -> Path:
    """The samples file that belongs to a results file: ``samples_<time>.jsonl`` beside ``results_<time>.json``;
    for ``results.json``, the run's own file it names (``samples_file``), else ``samples.jsonl``."""
    results_path = Path(results_path)
    stamped = re.fullmatch(r"results_(.+)\.json", results_path.name)
    if stamped:
        return results_path.with_name(f"samples_{stamped.group(1)}.jsonl")
    try:
        named = json.loads(results_path.read_text(encoding="utf-8")).get("samples_file")
    except (OSError, ValueError, AttributeError):
        named = None
    if (
        isinstance(named, str)
        and re.fullmatch(r"samples_[^/\\]+\.jsonl", named)
        and (results_path.parent / named).exists()
    ):
        return results_path.parent / named
    return results_path.with_name("samples.jsonl")


def read_samples(results_path: str | Path) -> list[SampleRecord]:
    """The per-sample records of a results file (:func:`samples_path`)."""
    path = samples_path(results_path)
    with open(path, encoding="utf-8") as handle:
        return [SampleRecord.from_json(json.loads(line)) for line in handle if line.strip()]
