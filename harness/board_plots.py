"""A board's figures: accuracy against threshold (paper Fig. 7), a metric per generator (Fig. 6 style) and ROC
curves per model, overall and per generator (from each run's ``samples.jsonl``).

What a reader must not be misled by: a bar or accuracy chart's legend sits outside the axes (it never hides a bar
or a curve), a ROC panel's in its lower right, where no ROC curve goes; the
bars cover the generators only (a real-only subset has no AP or AUC, so no empty slot); the value axis starts
where the values do, said on the axis, so 97 against 99 shows; a run made with ``--limit`` is marked ``[L]`` in
the legend; the ROC legend says ``AUC``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.board_layouts import metric_label
from harness.results_model import Results


def percent(entry: Any) -> float:
    """An entry's value in percent (NaN where it has none: no point drawn)."""
    return 100 * entry.value if entry is not None and entry.value is not None else math.nan


def legend_name(model: str, result: Results) -> str:
    """The model's board label, marked ``[L]`` for a ``--limit`` run and ``[paper]`` rows as they are."""
    return f"{model} [L]" if result.counts.limit is not None and result.reported is None else model


def value_floor(values: list[float]) -> float:
    """Where a percent axis starts: 5 below the lowest value, on a multiple of 5, never below 0."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    return max(0.0, 5.0 * math.floor((min(present) - 5.0) / 5.0)) if present else 0.0


def outside_legend(ax: Any) -> None:
    """The legend to the right of the axes, when there is anything to name."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def finish(plt: Any, fig: Any, ax: Any, values: list[float], ylabel: str, title: str, path: Path) -> Path:
    """A percent chart's value axis from near its lowest value (said on the axis), its title, the legend outside,
    written to ``path`` (kept whole) and closed."""
    floor = value_floor(values)
    ax.set_ylim(floor, 100)
    ax.set_ylabel(ylabel + (f", axis from {floor:g}" if floor else ""))
    ax.set_title(title)
    outside_legend(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_plots(spec: Any, chosen: dict[tuple[str, str], Results], out_dir: Path, stem: str) -> list[Path]:
    """The spec's plots (``acc_curve``, ``roc``, ``subset_bars``) per task; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = robustness_curves(plt, spec, chosen, out_dir, stem) if "robustness" in spec.plots else []
    for task in spec.tasks:
        by_model = {m: r for (m, t), r in chosen.items() if t == task}
        if not by_model:
            continue
        if "acc_curve" in spec.plots:
            written += accuracy_curves(plt, task, by_model, out_dir, stem)
        if "roc" in spec.plots:
            written += roc_plots(plt, task, by_model, out_dir, stem)
        if "subset_bars" in spec.plots:
            metric = spec.metrics[0] if spec.metrics else next(iter(by_model.values())).task.main_metric
            written += subset_bars(plt, task, by_model, metric, out_dir, stem)
    return written


def robustness_curves(
    plt: Any, spec: Any, chosen: dict[tuple[str, str], Results], out_dir: Path, stem: str
) -> list[Path]:
    """A sweep's metric against its level, one line per model, per base task (``aigi-mini+jpeg-q90`` ... plot
    as ``aigi-mini``: AUC vs JPEG quality), mildest level first."""
    from harness.board_layouts import level_order

    by_base: dict[str, list[str]] = {}
    for task in spec.tasks:
        if "+" in task:
            by_base.setdefault(task.split("+", 1)[0], []).append(task)
    written = []
    for base, levels in by_base.items():
        levels = sorted(levels, key=level_order)
        first = next(r for (_, task), r in chosen.items() if task == levels[0])
        metric = spec.metrics[0] if spec.metrics else first.task.main_metric
        fig, ax = plt.subplots(figsize=(6, 3.5))
        shown = []
        for model in sorted({m for m, t in chosen if t in levels}):
            entries = [chosen.get((model, level)) for level in levels]
            values = [percent(e.metrics.all.get(metric)) if e is not None else math.nan for e in entries]
            shown += values
            result = next(e for e in entries if e is not None)
            ax.plot(range(len(levels)), values, marker="o", label=legend_name(model, result))
        ax.set_xticks(range(len(levels)))
        ax.set_xticklabels([level.split("+", 1)[1] for level in levels], rotation=20, fontsize=8)
        path = out_dir / f"{stem}-{base}-robustness.png"
        written.append(
            finish(
                plt, fig, ax, shown, f"{metric_label(metric)} (%)", f"{base}: {metric_label(metric)} per level", path
            )
        )
    return written


def accuracy_curves(plt: Any, task: str, by_model: dict[str, Results], out_dir: Path, stem: str) -> list[Path]:
    """Accuracy against the threshold on P(fake), one curve per model (paper Fig. 7)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lowest = []
    for model, result in sorted(by_model.items()):
        entry = result.metrics.all.get("acc_curve")
        curve = entry.data if entry is not None else None
        if curve:
            values = [100 * a for a in curve["acc"]]
            lowest.append(min(values))
            ax.plot(curve["threshold"], values, label=legend_name(model, result))
    ax.set_xlabel("threshold on P(fake)")
    return [
        finish(
            plt,
            fig,
            ax,
            lowest,
            "accuracy (%)",
            f"{task}: accuracy vs threshold",
            out_dir / f"{stem}-{task}-acc-curve.png",
        )
    ]


def subset_bars(plt: Any, task: str, by_model: dict[str, Results], metric: str, out_dir: Path, stem: str) -> list[Path]:
    """The metric per generator, a bar per model (Fig. 6 style); generators only, as the metric pairs them."""
    from harness.board_layouts import union

    subsets = union([r.metrics.generators(metric) for r in by_model.values()])
    subsets = [s for s in subsets if any(r.metrics.entry(metric, subset=s) for r in by_model.values())]
    if not subsets:
        return []
    fig, ax = plt.subplots(figsize=(max(6, len(subsets) * 1.3), 3.5))
    width = 0.8 / max(1, len(by_model))
    shown = []
    for i, (model, result) in enumerate(sorted(by_model.items())):
        entries = [result.metrics.entry(metric, subset=s) for s in subsets]
        values = [100 * e.value if e is not None and e.value is not None else math.nan for e in entries]
        shown += values
        ax.bar([x + i * width for x in range(len(subsets))], values, width=width, label=legend_name(model, result))
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(subsets))])
    ax.set_xticklabels(subsets, rotation=20, fontsize=8)
    title = f"{task}: {metric_label(metric)} per generator"
    return [finish(plt, fig, ax, shown, f"{metric_label(metric)} (%)", title, out_dir / f"{stem}-{task}-subsets.png")]


def roc_plots(plt: Any, task: str, by_model: dict[str, Results], out_dir: Path, stem: str) -> list[Path]:
    """One ROC figure per task: every model's curve over all samples, and one panel per generator subset (its fake
    images against the task's real pool, as the metrics pair them). Printed rows (no samples) are left out."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from harness.results import read_samples

    curves: dict[str, list[Any]] = {}
    for model, result in sorted(by_model.items()):
        if result.reported is not None or result.path is None:
            continue
        try:
            records = [r for r in read_samples(result.path) if r.score is not None and r.label is not None]
        except OSError:
            continue
        if records:
            curves[model] = records
    if not curves:
        return []
    subsets = sorted({r.subset for records in curves.values() for r in records if r.label == 1})
    panels = ["all"] + subsets
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for index, panel in enumerate(panels):
        ax = axes[index // columns][index % columns]
        for model, records in curves.items():
            chosen = [r for r in records if panel == "all" or r.label == 0 or r.subset == panel]
            labels = [r.label for r in chosen]
            if len(set(labels)) < 2:
                continue
            scores = [r.score for r in chosen]
            fpr, tpr, _ = roc_curve(labels, scores)
            auc = 100 * roc_auc_score(labels, scores)
            ax.plot(fpr, tpr, label=f"{legend_name(model, by_model[model])}: AUC {auc:.1f}")
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5, linestyle=":")
        ax.set_title(panel if panel != "all" else f"{task}: all", fontsize=9)
        ax.set_xlabel("false positive rate", fontsize=8)
        ax.set_ylabel("true positive rate", fontsize=8)
        if ax.get_legend_handles_labels()[0]:  # inside, lower right: where a ROC curve never is
            ax.legend(fontsize=6, loc="lower right")
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].axis("off")
    fig.tight_layout()
    path = out_dir / f"{stem}-{task}-roc.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
