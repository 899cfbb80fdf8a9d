"""The served path against a real OpenAI-compatible server nobody here wrote: Hugging Face ``transformers serve``
with a tiny random LLaVA built offline, on 127.0.0.1 (issue #25).

    python conformance/check_served.py [--server-python PATH] [--work DIR]

``--server-python`` is an interpreter with transformers and its serving extras (fastapi, uvicorn); by default the
one running this script. Without them the script prints ``SKIPPED: <reason>`` and exits 0. What it checks, each
through ``harness run`` as a user runs it, with the server's own access log as the count of requests it got:

1. generate mode (FakeClass, greedy): every sample answered; each answer equals transformers' own greedy
   ``generate`` on the same rendered prompt and image (the harness sends the image bytes and the prompt intact);
   ``usage`` equals the server's count;
2. score mode: this server returns no log-probabilities, so every sample fails, each with that reason, and is
   kept as a deterministic failure: the rerun makes no request at all;
3. ``prefill=true``: the server refuses ``continue_final_message`` (HTTP 422); the run says so with the server's
   own message, after one probe request;
4. a wrong model name: the error carries the server's HTTP status and message;
5. a second run on a held cache stops at once, asking nothing.

The outcome is appended to ``conformance/results/transformers-serve.json``; exit 1 on any failed check.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import REPO, SHARED_QUERIES, fakeclass_root, harness_facts, skip, write_result

TEMPLATE = REPO / "plugins" / "lmm" / "templates" / "llava-1.5.jinja"
RESULTS = REPO / "conformance" / "results" / "transformers-serve.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_model(path: Path) -> Path:
    """A tiny random LLaVA (the tests' recipe) with LLaVA-1.5's chat template, saved for the server."""
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import tiny_llava
    from transformers import AutoProcessor

    tiny_llava(path)
    processor = AutoProcessor.from_pretrained(path)
    processor.chat_template = processor.tokenizer.chat_template = TEMPLATE.read_text()
    processor.save_pretrained(path)
    return path


class Server:
    """``transformers serve MODEL`` in its own process group; :meth:`posts` counts the completions it received."""

    def __init__(self, python: str, model: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        command = [python, "-m", "transformers.cli.transformers", "serve", str(model), "--host", "127.0.0.1",
                   "--port", str(self.port), "--device", "cpu"]  # fmt: skip
        print("+ " + " ".join(command), flush=True)
        self.handle = open(log, "w")  # noqa: SIM115 - the server writes into it until stop() closes it
        self.proc = subprocess.Popen(command, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ, HF_HUB_OFFLINE="1"))  # fmt: skip
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"error: the server exited ({self.proc.returncode}); see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise SystemExit(f"error: the server did not answer /health in 180 s; see {log}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def posts(self) -> int:
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions')

    def version(self) -> str:
        code = "import transformers; print(transformers.__version__)"
        return subprocess.run([self.proc.args[0], "-c", code], capture_output=True, text=True).stdout.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.handle.close()


def run(args: list[str], out: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "harness.cli", "run", *args, "--output-dir", str(out), "--bootstrap", "0",
               "--no-audit", "--quiet"]  # fmt: skip
    print("+ " + " ".join(command), flush=True)
    env = dict(os.environ, HARNESS_API_KEY="EMPTY", HF_HUB_OFFLINE="1", **(env_extra or {}))
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def latest(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    [results] = list(out.rglob("results.json"))
    data = json.loads(results.read_text())
    samples = [json.loads(line) for line in (results.parent / data["samples_file"]).read_text().splitlines()]
    return data, samples


def local_greedy(model: Path, image: Path, prompt: str, max_new_tokens: int) -> str:
    """transformers' own greedy answer to the same conversation the harness sent (rendered by the same template)."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model)
    llava = LlavaForConditionalGeneration.from_pretrained(model).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    with Image.open(image) as opened:
        inputs = processor(images=opened.convert("RGB"), text=text, return_tensors="pt")
    with torch.no_grad():
        out = llava.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


@dataclass
class Context:
    """What every check needs: the server, the run's common arguments, the model and data, the scratch folder."""

    server: Any
    base: list[str]
    served: str
    model: Path
    data: Path
    present: list[str]
    work: Path


def check_generate(ctx: Context) -> dict[str, Any]:
    """Answers through the server are transformers' greedy answers; usage counts the server's requests."""
    server, base, served, work = ctx.server, ctx.base, ctx.served, ctx.work
    model, data, present = ctx.model, ctx.data, ctx.present
    before = server.posts()
    done = run([*base, "--mode", "generate", "--model-args", served], work / "generate")
    results, samples = latest(work / "generate")
    answers = []
    for sample in samples:
        reference = local_greedy(model, data / "FakeBench_images" / sample["sample_id"], sample["prompt"], 64)
        answers.append({"image": sample["sample_id"], "served": sample["extra"].get("raw_text", sample["text"]),
                        "transformers_generate": reference})  # fmt: skip
    identical = sum(a["served"] == a["transformers_generate"] for a in answers)
    check: dict[str, Any] = {
        "exit": done.returncode,
        "samples": len(samples),
        "failed": sum(1 for s in samples if s["error"]),
        "answers_identical_to_transformers_generate": identical,
        "usage_requests": results["usage"]["this_run"]["requests"],
        "server_requests": server.posts() - before,
        "answers": answers,
    }
    check["ok"] = (
        done.returncode == 0
        and check["failed"] == 0
        and identical == len(samples) == len(present)
        and check["usage_requests"] == check["server_requests"]
    )
    return check


def check_score(ctx: Context) -> dict[str, Any]:
    """No log-probabilities from this server: each sample a kept deterministic failure, not asked again."""
    server, base, served, work = ctx.server, ctx.base, ctx.served, ctx.work
    before = server.posts()
    first = run([*base, "--mode", "score", "--model-args", served], work / "score")
    asked_first = server.posts() - before
    _, scored = latest(work / "score")
    before = server.posts()
    run([*base, "--mode", "score", "--model-args", served], work / "score")
    asked_again = server.posts() - before
    errors = sorted({s["error"] for s in scored if s["error"]})
    check: dict[str, Any] = {
        "exit": first.returncode,
        "samples": len(scored),
        "errors": errors,
        "server_requests": asked_first,
        "server_requests_on_rerun": asked_again,
        "ok": asked_first == len(scored)
        and asked_again == 0
        and errors == ["soft score unavailable: the endpoint returned no log-probabilities"],
    }
    return check


def check_prefill(ctx: Context) -> dict[str, Any]:
    """A prefill the server refuses fails with the server's reason."""
    server, base, served, work = ctx.server, ctx.base, ctx.served, ctx.work
    before = server.posts()
    run([*base, "--mode", "score", "--model-args", served + ",prefill=true"], work / "prefill")
    _, prefill_samples = latest(work / "prefill")
    message = prefill_samples[0]["error"] or ""
    check: dict[str, Any] = {
        "error": message,
        "server_requests": server.posts() - before,
        "ok": "HTTP 422 (1 attempt)" in message and "continue_final_message" in message,
    }
    return check


def check_wrong_model(ctx: Context) -> dict[str, Any]:
    """A wrong model name: the server's status and message, one attempt."""
    server, base, work = ctx.server, ctx.base, ctx.work
    run([*base, "--mode", "generate", "--model-args", f"model=no-such-model,base_url={server.base_url}",
                 "--limit", "1"], work / "wrong")  # fmt: skip
    _, wrong_samples = latest(work / "wrong")
    check: dict[str, Any] = {
        "error": wrong_samples[0]["error"],
        "ok": "HTTP " in (wrong_samples[0]["error"] or "") and "(1 attempt)" in (wrong_samples[0]["error"] or ""),
    }
    return check


def check_held_cache(ctx: Context) -> dict[str, Any]:
    """A second run on a held cache asks nothing."""
    server, base, served, work = ctx.server, ctx.base, ctx.served, ctx.work
    from harness.run_lock import RunLock

    before = server.posts()
    with RunLock(work / "held" / ".cache" / "responses.sqlite", ["conformance", "holder"]):
        held = run([*base, "--mode", "generate", "--model-args", served], work / "held")
    check: dict[str, Any] = {
        "exit": held.returncode,
        "stderr": held.stderr.strip().splitlines()[-1:],
        "server_requests": server.posts() - before,
        "ok": held.returncode == 2 and server.posts() == before,
    }
    return check


def main() -> int:
    """Run every check against a real `transformers serve` and record the outcome."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-python", default=sys.executable, help="interpreter with transformers[serving]")
    parser.add_argument("--work", type=Path, default=Path("conformance-work/served"), help="scratch folder")
    parser.add_argument("--queries", type=Path, default=SHARED_QUERIES, help="folder with FakeClass.json")
    parser.add_argument("--no-record", action="store_true", help="do not append to the results file")
    args = parser.parse_args()
    probe = subprocess.run([args.server_python, "-c", "import fastapi, uvicorn, transformers"], capture_output=True)
    if probe.returncode != 0:
        skip(f"{args.server_python} lacks transformers' serving extras (pip install 'transformers[serving]')")
    if not (args.queries / "FakeClass.json").is_file():
        skip(f"no FakeClass.json under {args.queries} (pass --queries DIR)")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = build_model(work / "tiny-llava")
    data, present = fakeclass_root(work / "fakebench", args.queries)
    (data / "FakeClass.json").write_text((args.queries / "FakeClass.json").read_text())
    server = Server(args.server_python, model, work / "server.log")
    checks: dict[str, Any] = {}
    try:
        ctx = Context(server, ["--model", "openai-api", "--tasks", "fakeclass", "--data-root", str(data)],
                      f"model={model},base_url={server.base_url}", model, data, present, work)  # fmt: skip
        checks["generate"] = check_generate(ctx)
        checks["score"] = check_score(ctx)
        checks["prefill"] = check_prefill(ctx)
        checks["wrong_model"] = check_wrong_model(ctx)
        checks["held_cache"] = check_held_cache(ctx)
    finally:
        version = server.version()
        server.stop()
    ok = all(check["ok"] for check in checks.values())
    print(json.dumps({name: check["ok"] for name, check in checks.items()}, indent=2))
    if not args.no_record:
        write_result(
            RESULTS,
            {
                "server": f"transformers serve {version} (CPU), tiny random LLaVA",
                "passed": ok,
                "harness": harness_facts(),
                "checks": checks,
            },  # fmt: skip
        )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
