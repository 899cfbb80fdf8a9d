"""``harness data build-fakeinstruct``: labelled images (or FakeChain records) -> a FakeInstruct training file.

Inputs: ``--images DIR|TASK`` (a folder of ``0_real`` / ``1_fake`` class folders, or any registered task's
split: label and generator per image, no reasoning yet) or ``--records FILE`` (FakeChain records, JSON list or
JSON lines: ``image``, ``authenticity``, ``reasoning``, ``categories``, ``generator``). Then:

- **ACoTI reasoning** (paper Sec. III-C) for records without reasoning, when ``--exemplars FILE`` gives the
  human demonstrations (``id``, ``categories``, ``fake``, ``reasoning``) and the record has evidence
  ``categories``: the Steer-Demonstrate-Enlighten prompt with the Eq. 1 exemplars, asked of a multimodal model
  with the image (``--reasoner``, an OpenAI-compatible endpoint: the ``openai-api`` adapter);
- **Parts 1-4** (:class:`~harness.trainers.fakeinstruct.FakeInstructBuilder`): Part 1 needs no LLM; Parts 2-4
  and the textual-contamination filter ask a text LLM (``--llm``, a judge of the registry: ``openai``);
- every LLM call goes through the response cache (``--cache``), so an interrupted build resumes without paying
  twice; what the calls will cost is printed before the first one; ``--limit N`` takes a seeded,
  label-stratified N records for a dry look;
- output in the conversation format of the backbone's trainer: ``llava`` (``<image>``) or ``owl2``
  (mPLUG-Owl2's ``<|image|>`` token), and a summary: instructions per part and label, what was dropped and why.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the image token each backbone's training data uses in the first human turn
IMAGE_TOKENS = {"llava": "<image>", "owl2": "<|image|>"}


def load_records(path: Path) -> list[dict[str, Any]]:
    """FakeChain records from a JSON list or JSON lines; image paths relative to the file's folder."""
    records = load_records_plain(path)
    for record in records:
        if "image" not in record or "authenticity" not in record:
            raise ValueError(f"{path}: a record needs image and authenticity: {record}")
        image = Path(record["image"])
        record["image"] = str(image if image.is_absolute() else (path.parent / image))
    return records


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def records_from_folder(root: Path) -> list[dict]:
    """One record per image below ``root`` inside a class folder (``0_real`` / ``real`` / ``1_fake`` / ``fake``);
    the folder above the class folder names the generator (:func:`harness.hf_data.class_folder`)."""
    from harness.hf_data import class_folder

    records: list[dict[str, Any]] = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        found = class_folder(path.relative_to(root))
        if found is None:
            continue
        label, generator = found
        records.append(
            {
                "id": path.relative_to(root).as_posix(),
                "image": str(path),
                "authenticity": "fake" if label == 1 else "real",
                "generator": generator or "unknown",
                "reasoning": "",
                "categories": [],
            }
        )
    if not records:
        raise ValueError(f"{root}: no image inside a 0_real / 1_fake (or real / fake) folder")
    return records


def records_from_task(plugins: Any, task_name: str, data_root: str | None, split: str | None) -> list[dict]:
    """One record per labelled image file of a task's split (no reasoning yet); a folder instead of a task name is
    read by its class folders (:func:`records_from_folder`)."""
    from harness.runner import build_task

    if Path(task_name).expanduser().is_dir():
        return records_from_folder(Path(task_name).expanduser().resolve())
    task = build_task(plugins, task_name, data_root)
    ok, reason = task.available()
    if not ok:
        raise ValueError(f"{task_name}: {reason}")
    records = []
    for sample in task.samples(split or task.default_split):
        if sample.label is None or not isinstance(sample.image, str):
            continue  # unlabelled, or held in memory: a training file names image files
        records.append(
            {
                "id": sample.id,
                "image": sample.image,
                "authenticity": "fake" if sample.label == 1 else "real",
                "generator": sample.subset,
                "reasoning": "",
                "categories": list(sample.metadata.get("categories") or []),
            }
        )
    return records


class CachedLLM:
    """``complete(prompt)`` of a judge through the response cache: each distinct prompt is paid for once."""

    def __init__(self, judge: Any, cache: Any) -> None:
        from harness.fingerprint import hash_obj

        self.judge, self.cache = judge, cache
        self.identity = hash_obj(judge.fingerprint())
        self.calls = self.cached = 0

    def complete(self, prompt: str) -> str:
        """The judge's answer to ``prompt`` (cached)."""
        from harness.fingerprint import hash_obj

        key = hash_obj({"llm": self.identity, "prompt": prompt})
        found = self.cache.get_many([key])
        if key in found:
            self.cached += 1
            return str(found[key]["reply"])
        self.calls += 1
        reply = self.judge.complete(prompt)
        self.cache.put_many([(key, {"reply": reply})])
        return reply


def add_acoti_reasoning(records: list[dict], pool: Sequence[Any], reasoner: Any, cache: Any) -> Counter:
    """Reasoning for the records that lack it and have evidence categories: the ACoTI prompt with the image,
    answered by ``reasoner`` (a model adapter serving ``generate``), cached by prompt and image content."""
    from harness.fingerprint import hash_obj
    from harness.records import GenerationParams, Request, Sample
    from harness.trainers.acoti import CoverError, build_prompt

    outcome: Counter = Counter()
    identity = hash_obj(reasoner.fingerprint())
    for record in records:
        if record.get("reasoning") or not record.get("categories"):
            continue
        fake = record["authenticity"] in (1, "1", "fake", "Fake", True)
        try:
            prompt = build_prompt(record["categories"], fake, pool)
        except CoverError as exc:
            outcome[f"no ACoTI demonstration set ({exc})"] += 1
            continue
        sample = Sample(id=str(record.get("id", record["image"])), image=record["image"], label=int(fake))
        key = hash_obj({"reasoner": identity, "prompt": prompt.text, "image": cache.sample_hash(sample)})
        found = cache.get_many([key])
        if key in found:
            record["reasoning"], record["acoti_exemplars"] = found[key]["text"], prompt.exemplars
            outcome["reasoning from the cache"] += 1
            continue
        request = Request(sample=sample, kind="generate", prompt=prompt.text, generation=GenerationParams(512))
        answer = reasoner.answer_one(reasoner.prepare(request), "generate")
        if answer.error or not answer.text:
            outcome[f"reasoning failed ({answer.error})"] += 1
            continue
        cache.put_many([(key, {"text": answer.text})])
        record["reasoning"], record["acoti_exemplars"] = answer.text, prompt.exemplars
        outcome["reasoning written (ACoTI)"] += 1
    return outcome


def to_backbone(instructions: list[dict], backbone: str) -> list[dict]:
    """The instructions with the backbone's image token in the first human turn."""
    token = IMAGE_TOKENS[backbone]
    out = []
    for item in instructions:
        turns = [dict(turn) for turn in item["conversations"]]
        if turns and turns[0]["from"] == "human":
            turns[0]["value"] = turns[0]["value"].replace("<image>", token, 1)
        out.append({**item, "conversations": turns})
    return out


def estimate_calls(records: list[dict], parts: set[int], builder: Any) -> int:
    """Text LLM calls at most for these records and parts."""
    per_record = (2 in parts) + (4 in parts) + ((1 + builder.n_part3 + builder.n_mcq) if 3 in parts else 0)
    return len(records) * per_record  # Part 3: the question set, and a contamination check per question


def summary(instructions: list[dict], stats: dict[str, int], extra: Counter) -> str:
    """Counts per part and label, and what was dropped and why."""
    from tabulate import tabulate

    by = Counter((item["part"], item["authenticity"]) for item in instructions)
    rows = [(f"Part {part}", label, n) for (part, label), n in sorted(by.items())]
    text = tabulate(rows, headers=["part", "label", "instructions"]) if rows else "no instructions"
    notes = [f"{why}: {n}" for why, n in sorted(extra.items())]
    notes += [f"{key.replace('_', ' ')}: {n}" for key, n in stats.items() if n]
    return text + ("\n" + "\n".join(notes) if notes else "")


def main(args: Any, plugins: Any) -> int:
    """The command (arguments from :func:`add_arguments`)."""
    from harness.cache import ResponseCache
    from harness.cli_args import parse_kv
    from harness.runner import limited
    from harness.trainers.acoti import Exemplar
    from harness.trainers.fakeinstruct import FakeInstructBuilder

    parts = {int(p) for p in args.parts.split(",") if p}
    if not parts <= {1, 2, 3, 4}:
        print("error: --parts takes 1, 2, 3 and 4", file=sys.stderr)
        return 2
    if args.records:
        records = load_records(Path(args.records))
    else:
        records = records_from_task(plugins, args.images, args.data_root, args.split)
    if args.limit:
        from harness.records import Sample

        wrapped = [
            Sample(id=str(i), image="", label=int(r["authenticity"] in ("fake", 1))) for i, r in enumerate(records)
        ]
        records = [records[int(s.id)] for s in limited(wrapped, args.limit, args.seed)]
    cache = ResponseCache(args.cache)
    extra: Counter = Counter()
    if args.exemplars and args.reasoner:
        from harness.runner import build_model

        pool_rows = load_records_plain(Path(args.exemplars))
        pool = [Exemplar(str(e["id"]), frozenset(e["categories"]), bool(e["fake"]), e["reasoning"]) for e in pool_rows]
        reasoner, _ = build_model(plugins, "openai-api", parse_kv(args.reasoner))
        reasoner.setup("cpu")
        todo = sum(1 for r in records if not r.get("reasoning") and r.get("categories"))
        print(f"ACoTI reasoning: at most {todo} multimodal calls ({reasoner.estimate([]) or 'no price given'})")
        extra += add_acoti_reasoning(records, pool, reasoner, cache)
    llm = None
    if parts & {2, 3, 4}:
        from harness.judging import build_judge

        llm_args = {"max_tokens": 1024, **parse_kv(args.llm)}  # Parts 2-4 answer with JSON lists, not one word
        llm = CachedLLM(build_judge(plugins, "openai", llm_args), cache)
    builder = FakeInstructBuilder(llm=llm, seed=args.seed, contamination_filter=not args.no_filter)
    text_calls = estimate_calls([r for r in records if r.get("reasoning")], parts, builder)
    print(f"{len(records)} records, parts {sorted(parts)}: at most {text_calls} text LLM calls (cached ones are free)")
    without = sum(1 for r in records if not r.get("reasoning"))
    if without and parts & {2, 3, 4}:
        extra["records without reasoning (Part 1 only)"] += without
    instructions = builder.build(records, parts)
    out = to_backbone(instructions, args.backbone)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    cache.close()
    if llm is not None:
        extra[f"text LLM calls made (cached: {llm.cached})"] += llm.calls
    print(summary(instructions, builder.stats, extra))
    print(f"{len(out)} instructions ({args.backbone} format) written to {args.out}")
    return 0


def load_records_plain(path: Path) -> list[dict]:
    """A JSON list or JSON lines file, as it is."""
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x]


def add_arguments(parser: Any) -> None:
    """The command's options."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--images", metavar="DIR|TASK", help="a folder of 0_real / 1_fake images, or a task whose images to use"
    )
    source.add_argument("--records", metavar="FILE", help="FakeChain records (JSON list or lines)")
    parser.add_argument("--data-root", "--data_root", default=None, help="the task's data (a folder: hf:DIR)")
    parser.add_argument("--split", default=None, help="the task's split (default: its own)")
    parser.add_argument("--out", required=True, type=Path, help="the training file to write (JSON)")
    parser.add_argument("--parts", default="1,2,3,4", help="FakeInstruct parts (default 1,2,3,4)")
    parser.add_argument("--backbone", choices=sorted(IMAGE_TOKENS), default="llava", help="conversation format")
    parser.add_argument("--llm", default="", metavar="K=V,...", help="text LLM for Parts 2-4: model=...,base_url=...")
    parser.add_argument("--exemplars", default=None, metavar="FILE", help="ACoTI human demonstrations")
    parser.add_argument(
        "--reasoner", default=None, metavar="K=V,...", help="multimodal model (openai-api args) writing ACoTI reasoning"
    )
    parser.add_argument("--cache", type=Path, default=Path(".cache/fakeinstruct.sqlite"), help="response cache")
    parser.add_argument("--limit", type=int, default=None, help="a seeded, label-stratified N records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-filter", action="store_true", help="skip the textual-contamination filter")
