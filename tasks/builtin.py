"""Registers the built-in tasks. Imports nothing heavy: targets load on use."""

from harness import hookimpl


@hookimpl
def register_tasks(register):
    """aigi-mini (offline smoke benchmark) and the five published benchmarks of the paper."""
    from importlib import resources

    from harness.registry import with_sources

    register = with_sources(register, (resources.files("harness.tasks") / "sources.yaml").read_text(), "tasks")
    register(
        "aigi-mini",
        "harness.tasks.aigi_mini:AigiMini",
        aliases=["aigi_mini"],
        tags=("smoke",),
        description="Simulated smoke benchmark built offline from bundled real photographs "
        "(3 simulated generators; not a real-world measure).",
    )
    fb = "harness.tasks.fakebench"
    register(
        "fakeclass",
        f"{fb}:FakeClass",
        tags=("fakebench", "detection"),
        description="FakeBench FakeClass (paper Table III / Fig. 6). Data: --data-root or "
        "HARNESS_DATA_FAKEBENCH (query JSONs + images).",
    )
    register(
        "fakeclue",
        f"{fb}:FakeClue",
        tags=("fakebench", "transparency"),
        description="FakeBench FakeClue: interpreting + reasoning (Table IV). HARNESS_DATA_FAKEBENCH; "
        "references via --task-args references=FILE.",
    )
    register(
        "fakeqa",
        f"{fb}:FakeQA",
        tags=("fakebench", "transparency"),
        description="FakeBench FakeQA: 14 fine-grained dimensions (Table IV). HARNESS_DATA_FAKEBENCH.",
    )
    fo = "harness.tasks.folder_benchmarks"
    register(
        "aigcdetect",
        f"{fo}:AIGCDetectBenchmark",
        aliases=["aigcdetectbenchmark"],
        tags=("generalization", "detection"),
        description="AIGCDetectBenchmark, 16 generators + SDXL (Table VI). HARNESS_DATA_AIGCDETECT, or "
        "--data-root hf:<local dataset>.",
    )
    register(
        "synthwildx",
        "harness.tasks.synthwildx:SynthWildX",
        tags=("in-the-wild", "detection"),
        description="SynthWildX: list.csv + downloaded images (Table V). HARNESS_DATA_SYNTHWILDX.",
    )
    # folder benchmarks that are data, not code: tasks/specs/*.yaml (WildRF, AntifakePrompt)
    from harness.tasks.folder_spec import register_specs, spec_files

    register_specs(register, spec_files([str(resources.files("harness.tasks") / "specs")]))
