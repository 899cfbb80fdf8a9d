"""Paper-style boards from hand-made results: marks, ties, missing cells, improvement, refusal, aggregates."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from harness.boards import BoardError, BoardSpec, rank_marks, render_board, render_plots
from harness.tasks.fakebench import FakeClass


def result(
    model,
    fp,
    task="t",
    metrics=None,
    subsets=None,
    groups=None,
    breakdowns=None,
    limit=None,
    failed=0,
    version="1",
    date="2026-11-26T00:00:00",
):
    wrap = lambda d: {k: {"value": v, "n": 10} for k, v in (d or {}).items()}  # noqa: E731
    return {
        "model": {"name": model, "fingerprint_hash": fp * 8},
        "task": {"name": task, "version": version, "split": "test", "mode": "score", "main_metric": "auc"},
        "metrics": {
            "all": wrap(metrics),
            "subsets": {s: wrap(v) for s, v in (subsets or {}).items()},
            "groups": groups or {},
            "breakdowns": breakdowns or {},
        },
        "counts": {"n_samples": 10, "n_failed": failed, "limit": limit},
        "provenance": {"date": date, "harness_version": "0.1.0"},
        "_path": f"{model}.json",
    }


def spec(**kwargs):
    base = dict(title="T", layout="metrics", tasks=["t"], metrics=["acc", "auc", "eer"])
    base.update(kwargs)
    return BoardSpec(**base)


def row(markdown, name):
    return next(line for line in markdown.splitlines() if line.startswith(f"| {name} "))


def board_table(markdown: str) -> tuple[list[str], dict[str, list[str]]]:
    """A board's one logical table, also when it is split into captioned tables (wide boards): the value
    columns' headers (a split table's caption put back before each of its headers) and per row label its cells,
    in board order."""
    headers: list[str] = []
    rows: dict[str, list[str]] = {}
    caption = ""
    for line in markdown.splitlines():
        if line.startswith("**") and line.endswith("**"):
            caption = line.strip("*")
        elif line.startswith("| Model"):
            headers += [f"{caption}: {h.strip()}" if caption else h.strip() for h in line.split("|")[2:-1]]
        elif line.startswith("| "):
            parts = [c.strip() for c in line.split("|")[1:-1]]
            rows.setdefault(parts[0], []).extend(parts[1:])
    return headers, rows


def test_best_bold_second_underlined_and_lower_is_better():
    board = render_board(
        spec(),
        [
            result("a", "1", metrics={"acc": 0.9, "auc": 0.7, "eer": 0.1}),
            result("b", "2", metrics={"acc": 0.8, "auc": 0.9, "eer": 0.3}),
            result("c", "3", metrics={"acc": 0.7, "auc": 0.8, "eer": 0.2}),
        ],
    )
    assert "**90.00**" in row(board, "a") and "<ins>70.00</ins>" not in row(board, "a")
    assert "<ins>80.00</ins>" in row(board, "b") and "**90.00**" in row(board, "b")
    assert "**10.00**" in row(board, "a") and "<ins>20.00</ins>" in row(board, "c")  # EER: lower is better


def test_ties_share_marks_and_missing_cells():
    assert rank_marks([0.9, 0.9, 0.8, 0.7, None], False) == ["best", "best", "second", "", ""]
    assert rank_marks([0.9, 0.9, 0.8, None], False) == ["best", "best", "", ""], "of two values, no 'second'"
    board = render_board(
        spec(metrics=["acc", "auc"]),
        [result("a", "1", metrics={"acc": 0.5}), result("b", "2", metrics={"acc": 0.5, "auc": 0.6})],
    )
    assert row(board, "a").count("**50.00**") == 1 and "–" in row(board, "a")


def test_improvement_row_and_confidence_intervals():
    a = result("fakescope", "1", metrics={"acc": 0.95, "auc": 0.99})
    a["metrics"]["all"]["auc"]["ci"] = [0.98, 1.0]
    b = result("llava", "2", metrics={"acc": 0.60, "auc": 0.70})
    board = render_board(spec(metrics=["acc", "auc"], improvement={"model": "fakescope", "over": "llava"}), [a, b])
    assert "99.00&nbsp;±&nbsp;1.00" in board
    assert [c.strip() for c in row(board, "Improvement (fakescope − llava)").split("|")[2:4]] == ["+35.00", "+29.00"]


def test_refusal_rules_and_allowances():
    limited = result("a", "1", metrics={"acc": 0.9}, limit=5)
    failed = result("b", "2", metrics={"acc": 0.8}, failed=3)
    with pytest.raises(BoardError, match="--limit 5"):
        render_board(spec(metrics=["acc"]), [limited])
    with pytest.raises(BoardError, match="3 failed samples"):
        render_board(spec(metrics=["acc"]), [failed])
    board = render_board(spec(metrics=["acc"], allow_limit=True, allow_failed=True), [limited, failed])
    assert "<sup>L</sup>" in row(board, "a") and "<sup>F</sup>" in row(board, "b")
    mixed = [result("a", "1", metrics={"acc": 0.9}), result("b", "2", metrics={"acc": 0.8}, version="2")]
    with pytest.raises(BoardError, match="different task versions"):
        render_board(spec(metrics=["acc"]), mixed)
    assert "<sup>V</sup>" in row(render_board(spec(metrics=["acc"], allow_mixed_versions=True), mixed), "b")


def test_per_subset_average_and_unseen_equal_the_mean_of_their_columns():
    gens = ["g1", "g2", "g3"]
    subsets = {"g1": {"ap": 0.9}, "g2": {"ap": 0.6}, "g3": {"ap": 0.3}}
    groups = {
        "mean_over_generators": {"ap": {"value": 0.6, "n": 3, "data": {"generators": gens}}},
        "unseen": {"ap": {"value": 0.45, "n": 2, "data": {"generators": ["g2", "g3"]}}},
    }
    board = render_board(spec(layout="per_subset", metrics=["ap"]), [result("a", "1", subsets=subsets, groups=groups)])
    cells = [c.strip().strip("*") for c in row(board, "a").split("|")[2:-1]]
    assert cells == ["90.00", "60.00", "30.00", "45.00", "60.00"]
    assert float(cells[-1]) == pytest.approx(sum(map(float, cells[:3])) / 3)
    assert float(cells[-2]) == pytest.approx(sum(map(float, cells[1:3])) / 2)
    header = next(line for line in board.splitlines() if line.startswith("| Model"))
    assert [h.strip() for h in header.split("|")[1:-1]] == ["Model", "g1", "g2", "g3", "Unseen", "Average"]


def test_qualitative_layout_fake_is_the_mean_of_generator_columns():
    breakdowns = {
        "generator": {
            "sd": {"qual_acc": {"value": 1.0, "n": 5}},
            "glide": {"qual_acc": {"value": 0.5, "n": 5}},
            "real": {"qual_acc": {"value": 0.9, "n": 10}},
        },
        "authenticity": {"real": {"qual_acc": {"value": 0.9, "n": 10}}},
        "question_type": {
            "what": {"qual_acc": {"value": 0.8, "n": 10}},
            "yes/no (fake)": {"qual_acc": {"value": 1.0, "n": 2}},
            "yes/no (real)": {"qual_acc": {"value": 0.5, "n": 8}},
        },
    }
    r = result("m", "1", metrics={"qual_acc": 0.8}, breakdowns=breakdowns)
    r["task"]["board_columns"] = FakeClass.board_columns  # as a FakeClass results file carries them
    board = render_board(
        spec(layout="qualitative"), [r, copy.deepcopy(r) | {"model": {"name": "n", "fingerprint_hash": "2" * 8}}]
    )
    header = next(line for line in board.splitlines() if line.startswith("| Model"))
    assert [h.strip() for h in header.split("|")[1:-1]] == [
        "Model",
        "Fake",
        "Real",
        "What",
        "Yes/No",
        "glide",
        "sd",
        "Overall",
    ]
    cells = [c.strip().strip("*") for c in row(board, "m").split("|")[2:-1]]
    assert cells[0] == "75.00"  # mean of glide 50 and sd 100
    assert cells[3] == "60.00"  # yes/no weighted by n: (1.0 * 2 + 0.5 * 8) / 10


def test_transparency_overall_is_the_mean_of_ability_averages():
    measures = {
        "bleu1": 0.2,
        "bleu2": 0.1,
        "rouge_l": 0.2,
        "bertscore": 0.6,
        "judge_completeness": 1.8,
        "judge_preciseness": 1.4,
        "judge_relevance": 1.9,
    }
    breakdowns = {
        "ability": {
            "interpreting": {k: {"value": v, "n": 5} for k, v in {**measures, "avr": 0.57}.items()},
            "reasoning": {k: {"value": v, "n": 5} for k, v in {**measures, "avr": 0.45}.items()},
        }
    }
    board = render_board(
        spec(layout="transparency", tasks=["fakeclue"]), [result("m", "1", task="fakeclue", breakdowns=breakdowns)]
    )
    headers, rows = board_table(board)
    assert rows["m"][-1].strip("*") == "0.510"
    assert "interpreting: Avr." in headers and "reasoning: κ" in headers


def test_board_columns_come_from_the_task_not_the_board_code():
    """A task of a plugin declares its own qualitative columns; the board renders them without knowing it."""
    breakdowns = {
        "weather": {"sunny": {"qual_acc": {"value": 0.9, "n": 4}}, "rainy": {"qual_acc": {"value": 0.5, "n": 4}}}
    }
    r = result("m", "1", task="weather-bench", metrics={"qual_acc": 0.7}, breakdowns=breakdowns)
    r["task"]["board_columns"] = {
        "qualitative": [
            {"header": "Mean", "mean_of": "weather"},
            {"each_of": "weather"},
            {"header": "All", "all": True},
        ]
    }
    board = render_board(spec(layout="qualitative", tasks=["weather-bench"]), [r])
    header = next(line for line in board.splitlines() if line.startswith("| Model"))
    assert [h.strip() for h in header.split("|")[1:-1]] == ["Model", "Mean", "rainy", "sunny", "All"]
    assert [c.strip().strip("*") for c in row(board, "m").split("|")[2:-1]] == ["70.00", "50.00", "90.00", "70.00"]


def test_spec_validation_and_plots(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layout: pie\ntasks: [t]\n")
    with pytest.raises(BoardError, match="layout must be one of"):
        BoardSpec.load(bad)
    bad.write_text("layout: metrics\ntasks: [t]\ncolour: red\n")
    with pytest.raises(BoardError, match="unknown board keys"):
        BoardSpec.load(bad)
    r = result("a", "1", metrics={"acc": 0.9}, subsets={"g": {"acc": 0.9}})
    r["metrics"]["all"]["acc_curve"] = {
        "value": None,
        "n": 10,
        "data": {"threshold": [0.0, 0.5, 1.0], "acc": [0.5, 0.9, 0.5]},
    }
    paths = render_plots(spec(metrics=["acc"], plots=["acc_curve", "subset_bars"]), [r], tmp_path, "board")
    assert [p.name for p in paths] == ["board-t-acc-curve.png", "board-t-subsets.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_multi_task_columns_read_their_own_task():
    """Two tasks on one transparency board: each column reads its own task's values (no late binding)."""
    measures = {
        "bleu1": 0.2,
        "bleu2": 0.1,
        "rouge_l": 0.2,
        "bertscore": 0.6,
        "judge_completeness": 1.8,
        "judge_preciseness": 1.4,
        "judge_relevance": 1.9,
        "avr": 0.5,
    }
    clue = result(
        "m",
        "1",
        task="fakeclue",
        breakdowns={"ability": {"interpreting": {k: {"value": v, "n": 5} for k, v in measures.items()}}},
    )
    qa = result("m", "1", task="fakeqa", metrics={**measures, "bleu1": 0.33, "avr": 0.4})
    board = render_board(spec(layout="transparency", tasks=["fakeqa", "fakeclue"]), [clue, qa])
    headers, rows = board_table(board)
    cells = dict(zip(headers, [c.strip("*") for c in rows["m"]], strict=True))
    assert cells["fakeqa: B.-1"] == "0.330" and cells["fakeclue: interpreting: B.-1"] == "0.200"
    assert cells["fakeclue: interpreting: Overall"] == "0.450"  # mean of the abilities' Avr. (0.5 and 0.4)


# -- the paper's printed rows beside measured runs ------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent


def cells(markdown: str, name: str) -> list[str]:
    return board_table(markdown)[1][name]


def test_paper_table_vi_board_puts_printed_rows_beside_a_run_and_tells_them_apart():
    board_spec = BoardSpec.load(REPO / "leaderboards" / "paper-table-vi.yaml")
    gens = ["progan", "stylegan", "stargan", "gaugan", "stylegan2", "whichfaceisreal"]
    measured = result(
        "my-detector",
        "9",
        task="aigcdetect",
        subsets={g: {"ap": 0.995} for g in gens},
        groups={"mean_over_generators": {"ap": {"value": 0.995, "n": 6, "data": {"generators": gens}}}},
    )
    board = render_board(board_spec, [measured])
    headers = board_table(board)[0]
    progan = headers.index("aigcdetect: progan")
    cnnspot = cells(board, "CNNSpot [paper]")
    assert cnnspot[progan] == "64.86"  # as printed (Table VI, row 1); the row's label "[paper]" marks it
    assert cells(board, "FakeScope (LLaVA-v1.5) [paper]")[progan].startswith("**99.92**")  # best of the column
    mine = cells(board, "my-detector")
    assert mine[progan] == "<ins>99.50</ins>" and "<sup>" not in row(board, "my-detector")  # measured: no mark
    assert "<sup>R</sup>" not in board, "a printed row is marked once, by its label, not in each of its cells"
    # the printed SDXL column, and the per-task Average derived from the printed columns
    sdxl = headers.index("antifakeprompt: SDXL")
    assert cnnspot[sdxl] == "92.51"
    average = headers.index("aigcdetect: Average")
    assert cnnspot[average] == f"{(64.86 + 61.41 + 70.33 + 60.10 + 63.08 + 56.41) / 6:.2f}"
    assert "reported in FakeScope (Sec. VI), Table VI" in board and "from the printed columns" in board
    assert "from 1 results files" in board  # printed rows never count as runs


def test_paper_table_iii_board_keeps_the_printed_fake_column():
    """Table III's Fake is printed for every row (LLaVA-v1.5's is not its generators' mean: shown as printed)."""
    board = render_board(BoardSpec.load(REPO / "leaderboards" / "paper-table-iii.yaml"), [])
    assert cells(board, "LLaVA-v1.5 (Vicuna-7B, baseline) [paper]")[0] == "38.67"
    assert cells(board, "FakeScope (Ours, mPLUG-Owl2) [paper]")[-1].startswith("**99.68**")  # Overall


def test_paper_table_iv_board_renders_abilities_and_overall():
    board = render_board(BoardSpec.load(REPO / "leaderboards" / "paper-table-iv.yaml"), [])
    gpt4v = cells(board, "GPT-4V (Teacher) [paper]")
    assert gpt4v[0] == "0.188" and gpt4v[-1].startswith("0.503")  # Overall = mean of the three Avr.


def test_a_broken_reported_file_is_a_board_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: measured\n")
    with pytest.raises(BoardError, match="not a reported-results file"):
        render_board(spec(reported=[str(bad)]), [result("a", "1", metrics={"acc": 0.9})])


#: the tags GitHub keeps when it renders markdown (its sanitizer's allowlist); anything else is stripped there
GITHUB_TAGS = set(
    [
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "h7",
        "h8",
        "br",
        "b",
        "i",
        "strong",
        "em",
        "a",
        "pre",
        "code",
        "img",
        "tt",
        "div",
        "ins",
        "del",
        "sup",
        "sub",
        "p",
        "ol",
        "ul",
        "table",
        "thead",
        "tbody",
        "tfoot",
        "blockquote",
        "dl",
        "dt",
        "dd",
        "kbd",
        "q",
        "samp",
        "var",
        "hr",
        "ruby",
        "rt",
        "rp",
        "li",
        "tr",
        "td",
        "th",
        "s",
        "strike",
        "summary",
        "details",
        "caption",
        "figure",
        "figcaption",
        "abbr",
        "bdo",
        "cite",
        "dfn",
        "mark",
        "small",
        "span",
        "time",
        "wbr",
    ]
)


def test_boards_keep_their_marks_under_githubs_allowlist():
    """Issue #26 item 3: every tag a board renders to survives GitHub's sanitizer (``<u>`` did not), so best,
    second and the flags still show there."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    board = render_board(
        spec(),
        [
            result("a", "1", metrics={"acc": 0.9, "auc": 0.7, "eer": 0.1}),
            result("b", "2", metrics={"acc": 0.8, "auc": 0.9, "eer": 0.3}),
            result("c", "3", metrics={"acc": 0.7, "auc": 0.8, "eer": 0.2}),
        ],
    )
    html = MarkdownIt("commonmark").enable("table").render(board)
    tags: set[str] = set()

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.add(tag)

    Tags().feed(html)
    assert "ins" in tags and "strong" in tags
    assert tags <= GITHUB_TAGS, tags - GITHUB_TAGS
    for name in ("iii", "iv", "v", "vi"):  # the paper layouts, split into captioned tables
        Tags().feed(MarkdownIt("commonmark").enable("table").render(
            render_board(BoardSpec.load(REPO / "leaderboards" / f"paper-table-{name}.yaml"), [])))  # fmt: skip
    assert tags <= GITHUB_TAGS, tags - GITHUB_TAGS


def test_the_improvement_row_is_positive_when_better_in_every_column():
    """Issue #26 item 3: an EER that fell reads as a gain, not as "-45"."""
    board = render_board(
        spec(improvement={"model": "a", "over": "b"}),
        [
            result("a", "1", metrics={"acc": 0.9, "auc": 0.9, "eer": 0.05}),
            result("b", "2", metrics={"acc": 0.6, "auc": 0.7, "eer": 0.50}),
        ],  # fmt: skip
    )
    cells = [c.strip() for c in row(board, "Improvement (a − b)").split("|")[2:-1]]
    assert all(c.startswith("+") for c in cells), cells
    assert "positive = better in every column" in board


def test_boards_explain_their_abbreviations_empty_columns_and_sort_names_case_blind():
    """Issue #26 item 3: abbreviated headers are spelled out, a column no row fills says so, rows sort by name
    whatever its case, and raw boards say what their scale is."""
    board = render_board(
        spec(metrics=["acc", "balanced_acc", "acc_val_threshold"], percent=False),
        [
            result("b", "1", metrics={"acc": 0.9, "balanced_acc": 0.8}),
            result("A", "2", metrics={"acc": 0.7, "balanced_acc": 0.6}),
        ],  # fmt: skip
    )
    lines = board.splitlines()
    assert lines.index(row(board, "A")) < lines.index(row(board, "b"))
    assert "B.Acc = balanced accuracy" in board and "Acc@val-thr = accuracy at the threshold" in board
    assert "No run here reports Acc@val-thr" in board
    assert "Values raw (0-1; LLM-judge scores 0-2)" in board


def test_a_metric_declares_its_direction_once():
    """Issue #27: the direction comes from what the metric declared (recorded in task.metrics), not a list in
    the board code: a metric the boards never heard of, declared lower-is-better, ranks its lowest value first."""
    import harness.boards

    assert not hasattr(harness.boards, "LOWER_IS_BETTER")
    rows = []
    for name, fp, value in (("a", "1", 0.2), ("b", "2", 0.5), ("c", "3", 0.9)):
        r = result(name, fp, metrics={"latency_share": value})
        r["task"]["metrics"] = {"latency_share": {"range": [0.0, 1.0], "higher_is_better": False}}
        rows.append(r)
    board = render_board(spec(metrics=["latency_share"]), rows)
    assert "**20.00**" in row(board, "a") and "<ins>50.00</ins>" in row(board, "b") and "**" not in row(board, "c")
    for r in rows:
        r["task"]["metrics"]["latency_share"]["higher_is_better"] = True
    assert "**90.00**" in row(render_board(spec(metrics=["latency_share"]), rows), "c")


def test_a_new_layout_is_one_class_and_one_registration_line(monkeypatch, tmp_path):
    """Issue #27 done-when: a board layout is a small class in harness.board_layouts.LAYOUTS; a new one is a
    class and one line, and the rest (spec validation, ranking, marks, footnotes) comes with it."""
    from harness.board_layouts import LAYOUTS, Layout, overall

    class SpreadLayout(Layout):  # one column per metric, headed "max-min" (a layout nobody wrote before)
        def columns(self, spec, task, results):
            return [(f"{m} (spread)", m, overall(m)) for m in spec.metrics]

    monkeypatch.setitem(LAYOUTS, "spread", SpreadLayout("spread"))
    path = tmp_path / "b.yaml"
    path.write_text("title: S\nlayout: spread\ntasks: [t]\nmetrics: [acc]\n")
    board = render_board(
        BoardSpec.load(path), [result("a", "1", metrics={"acc": 0.5}), result("b", "2", metrics={"acc": 0.7})]
    )
    assert "| acc (spread)" in board and "**70.00**" in row(board, "b")
    path.write_text("title: S\nlayout: nowhere\ntasks: [t]\n")
    with pytest.raises(BoardError, match="layout must be one of"):
        BoardSpec.load(path)


class _Recorder:
    """A stand-in for matplotlib's pyplot, figure and axes: records what a plot function draws."""

    def __init__(self):
        self.calls = []

    def subplots(self, *args, **kwargs):
        return self, self

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return ([1], ["x"]) if name == "get_legend_handles_labels" else None

        return record

    def named(self, name):
        return [(args, kwargs) for called, args, kwargs in self.calls if called == name]


def test_plots_show_generators_only_from_where_the_values_are_with_limited_runs_marked(tmp_path):
    """Issue #26 item 4: no empty 'real' slot, a value axis that starts near the values (97 vs 99 shows), the
    legend outside the bars, a --limit run marked [L] in the legend."""
    from harness.board_plots import legend_name, subset_bars, value_floor
    from harness.results_model import as_results

    groups = {"mean_over_generators": {"auc": {"value": 0.98, "n": 2, "data": {"generators": ["g1", "g2"]}}}}
    full = result("a", "1", subsets={"g1": {"auc": 0.97}, "g2": {"auc": 0.99}, "real": {"acc": 0.9}}, groups=groups)
    quick = result("b", "2", subsets={"g1": {"auc": 0.98}, "g2": {"auc": 0.985}}, groups=groups, limit=10)
    plt = _Recorder()
    [path] = subset_bars(plt, "t", {"a": as_results(full), "b": as_results(quick)}, "auc", tmp_path, "s")
    assert path.name == "s-t-subsets.png"
    [(labels,), _] = plt.named("set_xticklabels")[0]
    assert list(labels) == ["g1", "g2"], "generators only: no empty 'real' slot"
    assert [kw["label"] for _, kw in plt.named("bar")] == ["a", "b [L]"]
    assert plt.named("set_ylim")[0][0] == (90.0, 100)
    [(_, legend)] = plt.named("legend")
    assert legend["loc"] == "upper left" and legend["bbox_to_anchor"][0] > 1, "the legend sits outside the axes"
    assert value_floor([97.0, 99.0]) == 90.0 and value_floor([3.0, 50.0]) == 0.0
    assert legend_name("x", as_results(result("x", "3"))) == "x"


def test_a_robustness_board_tables_each_level_mildest_first_with_the_mean(tmp_path):
    """Issue #30 item 2: layout robustness shows, per model, the metric at each level of a --perturb sweep
    found among the results (JPEG quality falling), the mean over the levels, and a curve per model."""
    levels = {
        "aigi-mini+jpeg-q50": (0.70, 0.60),
        "aigi-mini+jpeg-q90": (0.95, 0.90),
        "aigi-mini+jpeg-q70": (0.85, 0.80),
    }
    results = [result(m, fp, task=t, metrics={"auc": v[i]}) for t, v in levels.items()
               for i, (m, fp) in enumerate((("a", "1"), ("b", "2")))]  # fmt: skip
    results.append(result("a", "1", task="aigi-mini", metrics={"auc": 0.99}))  # the clean run: not a level
    board = render_board(spec(layout="robustness", tasks=["aigi-mini"], metrics=["auc"], plots=["robustness"]), results)
    header = next(line for line in board.splitlines() if line.startswith("| Model"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "Model", "aigi-mini+jpeg-q90", "aigi-mini+jpeg-q70", "aigi-mini+jpeg-q50", "Mean over levels"
    ]  # fmt: skip
    assert row(board, "a").rstrip(" |").endswith(f"**{100 * (0.95 + 0.85 + 0.70) / 3:.2f}**")
    drawn = render_plots(spec(layout="robustness", tasks=["aigi-mini"], metrics=["auc"], plots=["robustness"]),
                         results, tmp_path, "r")  # fmt: skip
    assert [p.name for p in drawn] == ["r-aigi-mini-robustness.png"] and drawn[0].stat().st_size > 1000


def test_a_wide_board_is_split_into_captioned_tables_that_hold_the_same_cells():
    """Paper Tables III, IV and VI (16-26 value columns) are shown as tables of at most max_columns each, split
    where the headers' task or ability changes, headers shortened by their caption, the Model column repeated: the
    same cells in the same order as the single wide table (max_columns 0)."""
    from harness.boards import column_groups

    for name in ("iii", "iv", "vi"):
        wide_spec = BoardSpec.load(REPO / "leaderboards" / f"paper-table-{name}.yaml")
        split = render_board(wide_spec, [])
        wide_spec.max_columns = 0
        wide = render_board(wide_spec, [])
        assert split.count("| Model") > 1 and wide.count("| Model") == 1
        assert board_table(split)[1] == board_table(wide)[1]
        for line in split.splitlines():
            if line.startswith("| Model"):
                assert len(line.split("|")) - 3 <= 10
    headers = ["a: x", "a: y", "b: x", "b: y", "b: z", "Overall"]
    assert column_groups(headers, 10) == [("", [0, 1, 2, 3, 4, 5])]
    assert column_groups(headers, 3) == [("a", [0, 1]), ("b", [2, 3]), ("b", [4, 5])]  # Overall stays with b
    assert column_groups([f"g{i}" for i in range(16)], 10) == [("", list(range(8))), ("", list(range(8, 16)))]
    iv = render_board(BoardSpec.load(REPO / "leaderboards" / "paper-table-iv.yaml"), [])
    assert "**fakeclue: interpreting**" in iv and "| B.-1" in iv and "fakeclue: interpreting: B.-1" not in iv
