"""``harness.evaluate``: a run from Python, as ``harness run`` does it from the shell (lm-eval's ``simple_evaluate``).

    import harness

    run = harness.evaluate(model="fredect", model_args={"checkpoint": "checkpoints/fredect"}, tasks=["aigi-mini"])
    run.metrics("aigi-mini")["auc"].value

Options are :class:`harness.runner.RunConfig`'s fields (``limit``, ``batch_size``, ``device``, ``output_dir``,
``seed``, ``mode``, ``gen_kwargs`` ...); results are written and cached exactly as by the CLI, so a notebook and
a shell share one response cache and one results folder. ``plugins`` adds plugin objects registered in code (a
class or module with hook implementations) to the installed ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.results_model import MetricEntry, Results


@dataclass
class Evaluation:
    """What a run did: each task's outcome and, for the tasks that finished, their results."""

    model: str
    outcomes: list[Any]
    #: task -> its results, as written (:class:`harness.results_model.Results`)
    results: dict[str, Results] = field(default_factory=dict)

    def metrics(self, task: str) -> dict[str, MetricEntry]:
        """The overall metrics of one task (``{"auc": MetricEntry(value=..., ci=...), ...}``)."""
        if task not in self.results:
            done = ", ".join(self.results) or "none"
            raise KeyError(f"no results for task {task!r} (finished: {done})")
        return self.results[task].metrics.all

    @property
    def ok(self) -> bool:
        """Whether every task finished (none failed or was skipped)."""
        return bool(self.outcomes) and all(o.status == "done" for o in self.outcomes)


def evaluate(
    model: str,
    tasks: str | Iterable[str] = "aigi-mini",
    model_args: dict[str, Any] | str | None = None,
    plugins: Iterable[Any] = (),
    **options: Any,
) -> Evaluation:
    """Evaluate ``model`` on ``tasks`` (names, tags or globs; a list or a comma-separated string) and return an
    :class:`Evaluation`. Raises :class:`~harness.runner.RunError` for a run that cannot start and
    :class:`~harness.interfaces.ModelLoadError` for a model that cannot load."""
    from harness.cli_args import parse_kv
    from harness.plugin_manager import HarnessPlugins, get_plugins
    from harness.runner import Evaluator, RunConfig, default_workers

    extra = tuple(plugins)
    manager = HarnessPlugins(extra_plugins=extra) if extra else get_plugins()
    if isinstance(model_args, str):
        model_args = parse_kv(model_args)
    task_spec = tasks if isinstance(tasks, str) else ",".join(tasks)
    options.setdefault("num_workers", default_workers())
    if "output_dir" in options:
        options["output_dir"] = Path(options["output_dir"])
    config = RunConfig(model=model, model_args=dict(model_args or {}), tasks=task_spec, **options)
    evaluator = Evaluator(config, manager, command=["harness.evaluate", model, task_spec])
    outcomes = evaluator.run()
    results = {o.task: o.results for o in outcomes if o.results is not None}  # in memory, as written
    return Evaluation(model=evaluator.model_name, outcomes=outcomes, results=results)
