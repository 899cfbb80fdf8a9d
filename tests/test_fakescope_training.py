"""FakeChain -> FakeInstruct builder, ACoTI exemplar selection, and FakeScope instruction tuning on the CPU."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from harness.testkit.standin_engine import ScriptedEngine
from harness.trainers.acoti import CoverError, Exemplar, build_prompt, select_exemplars
from harness.trainers.fakeinstruct import FakeInstructBuilder, format_mcq, part1


# -- ACoTI, Eq. 1 --------------------------------------------------------------------------------------------
def brute_force(categories, pool):
    for size in range(1, len(pool) + 1):
        for combo in itertools.combinations(pool, size):
            covered = set().union(*[e.categories for e in combo])
            if set(categories) <= covered and any(e.fake for e in combo) and any(not e.fake for e in combo):
                return size
    return None


def test_set_cover_is_optimal_on_random_small_cases():
    rng = random.Random(0)
    universe = list("abcdefg")
    for _ in range(60):
        pool = [
            Exemplar(str(i), frozenset(rng.sample(universe, rng.randint(1, 3))), fake=rng.random() < 0.5)
            for i in range(rng.randint(3, 8))
        ]
        target = rng.sample(sorted(set().union(*[e.categories for e in pool])), rng.randint(1, 3))
        best = brute_force(target, pool)
        if best is None:
            with pytest.raises(CoverError):
                select_exemplars(target, pool)
            continue
        chosen = select_exemplars(target, pool)
        assert len(chosen) == best
        assert set(target) <= set().union(*[e.categories for e in chosen])
        assert any(e.fake for e in chosen) and any(not e.fake for e in chosen)


def test_set_cover_needs_both_classes_and_prefers_exact_coverage():
    fake_ab = Exemplar("f1", frozenset("ab"), True)
    fake_abz = Exemplar("f2", frozenset("abz"), True)
    real_c = Exemplar("r1", frozenset("c"), False)
    # {a, b} alone is covered by one fake exemplar, but Eq. 1 also requires a real one
    chosen = select_exemplars(["a", "b"], [fake_abz, fake_ab, real_c])
    assert {e.id for e in chosen} == {"f1", "r1"}  # f1 covers exactly: preferred over f2 at equal size
    with pytest.raises(CoverError, match=r"\['q'\]"):
        select_exemplars(["q"], [fake_ab, real_c])
    with pytest.raises(CoverError, match="one fake and one real"):
        select_exemplars(["a"], [fake_ab, fake_abz])


def test_acoti_prompt_carries_steer_demonstrations_and_label():
    pool = [
        Exemplar("f1", frozenset({"hands", "text"}), True, "The fingers merge. Thus, fake."),
        Exemplar("r1", frozenset({"lighting"}), False, "Shadows agree. Thus, real."),
    ]
    prompt = build_prompt(["hands", "lighting"], fake=True, pool=pool)
    assert "hands, lighting" in prompt.text and "The fingers merge" in prompt.text and "Shadows agree" in prompt.text
    assert "The target image is fake (AI-generated)" in prompt.text and prompt.exemplars == ["f1", "r1"]


# -- FakeInstruct builder ---------------------------------------------------------------------------------------
def test_part1_templates_use_the_fake_real_vocabulary_and_polarity():
    records = [{"image": f"{i}.png", "authenticity": "fake" if i % 2 else "real", "generator": "g"} for i in range(40)]
    out = part1(records, per_record=3, seed=1)
    assert len(out) == 120
    for item in out:
        question, answer = item["conversations"][0]["value"], item["conversations"][1]["value"]
        assert question.startswith("<image>\n")
        label = item["authenticity"]
        assert answer.endswith(f"this image is {label}.") or answer == f"This image is {label}."
        if question.endswith(("Is this a real image?", "Is this image real?", "Is this photograph real?")):
            assert answer.startswith("Yes" if label == "real" else "No")
        elif question.endswith(("fake image?", "image fake?", "making it fake?")):
            assert answer.startswith("Yes" if label == "fake" else "No")
        else:
            assert answer == f"This image is {label}."
        assert not re.search(r"\b(genuine|artificial|synthetic|authentic)\b", answer)


def test_mcq_formatting_validates_distractors():
    rng = random.Random(0)
    body, answer, letter = format_mcq("Where is the smudge?", "left eye", ["right ear", "hair", "left eye"], rng)
    assert body.count("\n") == 4 and f"{letter}. left eye" in body and answer == f"{letter}. left eye"
    with pytest.raises(ValueError, match="two distinct distractors"):
        format_mcq("Q?", "a", ["a", "b", "b"], rng)


def scripted_llm(text: str) -> str:
    """The stub LLM: writes Part 2-4 JSON, and answers contamination probes (EASY right, HARD wrong)."""
    if "without seeing any image" in text:
        question = text.split("\n\n", 1)[1]
        options = dict(re.findall(r"^([A-H])\. (.*)$", question, re.M))
        correct = next(k for k, v in options.items() if v == "the right hand")
        if "EASY" in question:
            return correct
        return next(k for k in options if k != correct)
    if "multiple-choice questions" in text:
        return (
            "```json\n"
            + json.dumps(
                {
                    "vqa": [
                        {"question": "What is odd about the hand?", "answer": "It has six fingers."},
                        {"question": "No answer here"},
                    ],
                    "mcq": [
                        {
                            "question": "EASY: which part is distorted?",
                            "correct": "the right hand",
                            "distractors": ["the sky", "the shoes", "the car"],
                        },
                        {
                            "question": "HARD: which part is distorted?",
                            "correct": "the right hand",
                            "distractors": ["the sky", "the shoes"],
                        },
                        {"question": "broken", "correct": "the right hand", "distractors": ["the right hand"]},
                    ],
                }
            )
            + "\n```"
        )
    if "open-ended discussion" in text:
        return json.dumps([{"question": "How could the generator avoid this?", "answer": "Better hand priors."}])
    if "holistic reasoning" in text:
        return json.dumps([{"question": "Why is this image fake?"}, {"question": "Explain the authenticity."}])
    return "nonsense"


def test_builder_parts_2_to_4_and_contamination_filter_with_a_server(monkeypatch):
    from harness.plugins.judges import OpenAICompatibleJudge

    monkeypatch.setenv("HARNESS_JUDGE_API_KEY", "test")
    records = [
        {
            "image": "a.png",
            "authenticity": "fake",
            "generator": "sd",
            "reasoning": "The right hand has six fingers. Thus, I tend to think this is a fake image.",
        }
    ]
    with ScriptedEngine(responder=scripted_llm) as server:
        llm = OpenAICompatibleJudge(model="writer", base_url=server.base_url, max_tokens=512)
        builder = FakeInstructBuilder(llm, seed=0)
        out = builder.build(records)
    by_part = {p: [o for o in out if o["part"] == p] for p in (1, 2, 3, 4)}
    assert len(by_part[1]) == 2 and len(by_part[2]) == 2 and len(by_part[4]) == 1
    assert by_part[2][0]["conversations"][1]["value"] == records[0]["reasoning"]
    questions = [o["conversations"][0]["value"] for o in by_part[3]]
    assert any("What is odd" in q for q in questions)
    assert any("HARD" in q for q in questions) and not any("EASY" in q for q in questions)  # contaminated: dropped
    assert builder.stats["dropped_contaminated"] == 1 and builder.stats["dropped_invalid"] == 2
    mcq = next(o for o in by_part[3] if "HARD" in o["conversations"][0]["value"])
    assert mcq["conversations"][1]["value"].endswith("the right hand")


def test_parts_2_to_4_need_an_llm():
    with pytest.raises(ValueError, match="need an LLM"):
        FakeInstructBuilder(None).build([{"image": "a", "authenticity": 1, "reasoning": "x"}], parts=(2,))


# -- instruction tuning ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_fakescope_deepspeed_zero2_end_to_end(tmp_path: Path, aigi_mini: Path):
    """The mechanics on a slice (the recorded demo, AUC 0.716, is `make fakescope-demo`): tower pretrained then
    frozen, ZeRO-2 on the CPU, the loss falls, the checkpoint loads and the harness scores it."""
    from harness.results import read_samples
    from harness.trainers.fakescope_demo import run

    summary = run(tmp_path / "demo", epochs=1.0, n_train=160, tower_epochs=8)
    assert summary["vision_tower_bit_identical"] is True
    assert summary["last_loss"] < summary["first_loss"] * 0.8
    scores = [r.score for r in read_samples(Path(summary["results"]))]
    assert len(scores) == 440 and summary["test_auc"] is not None and float(np.std(scores)) > 1e-4
    meta = json.loads((tmp_path / "demo" / "fakescope-tiny" / "harness_training.json").read_text())
    assert meta["trained_on"]["seen_generators"] == ["diffusion-resynth", "gan-upsample", "latent-decoder"]
    results = json.loads(Path(summary["results"]).read_text())
    assert results["seen_generators"] == meta["trained_on"]["seen_generators"]  # Seen/Unseen from the checkpoint
    # the CLI path with the shipped ZeRO-3 config: two steps on a few instructions
    data = tmp_path / "demo" / "fakeinstruct-part1.json"
    small = tmp_path / "small.json"
    small.write_text(json.dumps(json.loads(data.read_text())[:8]))
    from importlib import resources

    zero3 = str(resources.files("harness.trainers") / "deepspeed" / "zero3.json")
    cli = run_cli(
        "train",
        "fakescope",
        "--data",
        str(small),
        "--base",
        str(tmp_path / "demo" / "base"),
        "--out",
        str(tmp_path / "cli"),
        "--deepspeed",
        zero3,
        "--args",
        "max_steps=2,batch_size=4",
        "--quiet",
    )
    assert cli.returncode == 0, cli.stderr
    meta3 = json.loads((tmp_path / "cli" / "harness_training.json").read_text())
    assert meta3["vision_tower_bit_identical"] and meta3["deepspeed"].endswith("zero3.json")
    assert "fakescope-llava" in cli.stdout
