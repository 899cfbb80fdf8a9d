"""`harness data build-fakeinstruct` (issue #20, item 1): images or FakeChain records -> a training file, with
ACoTI reasoning, Parts 1-4, the contamination filter, a response cache and the backbone's format."""

from __future__ import annotations

import json

from test_fakescope_training import scripted_llm
from toy_components import write_toy_data

from harness.cli import main
from harness.testkit.standin_engine import ScriptedEngine

CATEGORIES = ["hands", "texture"]


def llm_and_reasoner(text: str) -> str:
    """The scripted text LLM (Parts 2-4, contamination probes), and a reasoner answering ACoTI prompts."""
    if "forensic expert who examines images" in text:
        verdict = "fake" if "fake (AI-generated)" in text else "real"
        return f"The right hand has six fingers and the texture is waxy. Thus, I tend to think this is {verdict}."
    return scripted_llm(text)


def test_images_to_an_owl2_training_file_with_acoti_reasoning_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_JUDGE_API_KEY", "EMPTY")
    monkeypatch.setenv("HARNESS_API_KEY", "EMPTY")
    data = write_toy_data(tmp_path / "imgs", n_good=4, bad=False)
    records = [
        {"image": f"imgs/img{i:03d}.png", "authenticity": "fake" if i % 2 else "real", "generator": "gen",
         "categories": CATEGORIES[: 1 + i % 2]}
        for i in range(4)
    ]  # fmt: skip
    (tmp_path / "chain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    pool = [
        {"id": "h1", "categories": ["hands", "texture"], "fake": True, "reasoning": "Six fingers. Thus fake."},
        {"id": "r1", "categories": ["hands"], "fake": False, "reasoning": "Hands are natural. Thus real."},
    ]
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    out = tmp_path / "fakeinstruct.json"
    with ScriptedEngine(responder=llm_and_reasoner) as server:
        argv = [
            "data", "build-fakeinstruct", "--records", str(tmp_path / "chain.jsonl"), "--out", str(out),
            "--backbone", "owl2", "--exemplars", str(tmp_path / "pool.json"),
            "--reasoner", f"model=reasoner,base_url={server.base_url}",
            "--llm", f"model=writer,base_url={server.base_url}", "--cache", str(tmp_path / "cache.sqlite"),
        ]  # fmt: skip
        assert main(argv) == 0
        first = len(server.requests)
        printed = capsys.readouterr().out
        assert main(argv) == 0
        assert len(server.requests) == first, "a rerun pays for nothing: every call came from the cache"
    assert data.is_dir()
    items = json.loads(out.read_text())
    parts = {item["part"] for item in items}
    assert parts == {1, 2, 3, 4}
    assert all(item["conversations"][0]["value"].startswith("<|image|>\n") for item in items), "owl2's image token"
    part2 = [i for i in items if i["part"] == 2]
    assert part2 and all("six fingers" in i["conversations"][1]["value"] for i in part2), "ACoTI reasoning used"
    acoti = [b for b in server.requests if "forensic expert" in json.dumps(b)]
    assert len(acoti) == 4 and all(b["messages"][0]["content"][0]["type"] == "image_url" for b in acoti)
    assert "reasoning written (ACoTI): 4" in printed and "dropped contaminated" in printed
    assert "at most" in printed.split("\n")[0] or "at most" in printed, "the cost is said before the calls"


def test_part_1_from_a_task_alone_needs_no_llm(tmp_path, cache_dir, capsys):
    out = tmp_path / "p1.json"
    argv = ["data", "build-fakeinstruct", "--images", "aigi-mini", "--parts", "1", "--limit", "20", "--out", str(out),
            "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    assert main(argv) == 0
    items = json.loads(out.read_text())
    assert len(items) == 40 and all(item["conversations"][0]["value"].startswith("<image>\n") for item in items)
    labels = {item["authenticity"] for item in items}
    assert labels == {"fake", "real"}, "the stratified --limit keeps both labels"
    answers = {item["conversations"][1]["value"].lower() for item in items}
    assert all(any(word in a for word in ("fake", "real", "yes", "no")) for a in answers)


def test_part_1_from_a_folder_of_class_folders(tmp_path):
    from PIL import Image

    for generator, label in (("sdxl", "1_fake"), ("sdxl", "0_real"), ("dalle", "1_fake")):
        (tmp_path / "imgs" / generator / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / generator / label / "a.png")
    out = tmp_path / "p1.json"
    argv = ["data", "build-fakeinstruct", "--images", str(tmp_path / "imgs"), "--parts", "1", "--out", str(out),
            "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    assert main(argv) == 0
    items = json.loads(out.read_text())
    assert {(i["generator"], i["authenticity"]) for i in items} == {
        ("sdxl", "fake"),
        ("sdxl", "real"),
        ("dalle", "fake"),
    }
