"""The paper's baseline LMMs (Sec. VI-A3): same question and answer prefix for all, each in its chat format.

InstructBLIP and IDEFICS run for real on tiny random checkpoints; Qwen-VL-Chat and
InternLM-XComposer2-VL (remote code, transformers 4.3x) run against stand-ins
exposing their repositories' interface (:mod:`remote_code_standins`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import toy_components
from tiny_models import tiny_idefics, tiny_instructblip
from toy_components import write_toy_data

from harness.plugin_manager import HarnessPlugins
from harness.plugins.lmm.backends import hf_vlm, idefics, instructblip, llava, soft_scoring
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_toy_data(tmp_path_factory.mktemp("toy") / "data", n_good=6, bad=False)


def run(model: str, args: dict, data: Path, out: Path, tasks="toy-task", batch_size=3):
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyLmmPlugin,))
    config = RunConfig(
        model=model,
        model_args=args,
        tasks=tasks,
        data_root=str(data),
        output_dir=out,
        batch_size=batch_size,
        progress=False,
        bootstrap=0,
        audit=False,
        device="cpu",
    )
    [outcome] = Evaluator(config, plugins).run()
    assert outcome.status == "done", outcome.reason
    return outcome


def test_every_family_asks_the_same_question_with_the_same_answer_prefix():
    texts = {
        cls.family: hf_vlm.score_text(cls.default_chat)
        for cls in (llava.LlavaBackend, instructblip.InstructBlipBackend, idefics.IdeficsBackend)
    }
    assert texts["llava"] == soft_scoring.DEFAULT_PROMPT  # the paper's prompt, Sec. V-B
    assert texts["instructblip"] == "What is the authenticity of this image? This image is"
    assert (
        texts["idefics"] == "User: What is the authenticity of this image?<image><end_of_utterance>\nAssistant: "
        "This image is"
    )
    assert all(soft_scoring.QUESTION in t and t.endswith(" " + soft_scoring.ANSWER_PREFIX) for t in texts.values())


@pytest.mark.parametrize(
    "model,builder,family",
    [("instructblip-vicuna-7b", tiny_instructblip, "instructblip"), ("idefics-instruct", tiny_idefics, "idefics")],
)
def test_native_baseline_scores_batched_equal_single_and_answers(model, builder, family, data, tmp_path):
    path = builder(tmp_path / "model")
    batched = run(model, {"path": str(path)}, data, tmp_path / "a", batch_size=3)
    single = run(model, {"path": str(path)}, data, tmp_path / "b", batch_size=1)
    scores = [r.score for r in read_samples(batched.results_path)]
    assert len(scores) == 6 and all(0 < s < 1 for s in scores) and len(set(scores)) > 1  # the image matters
    np.testing.assert_allclose(scores, [r.score for r in read_samples(single.results_path)], atol=1e-5)
    info = json.loads(batched.results_path.read_text())["model"]["preprocessing"]
    assert info["backend"] == family and soft_scoring.QUESTION in info["score_prompt"]
    assert info["anchors"]["fake"]["tokens"] == ["fake", "Fake"] and info["anchor_counts_equal"] is True

    answers = run(model, {"path": str(path), "max_new_tokens": 4}, data, tmp_path / "c", tasks="toy-questions")
    records = read_samples(answers.results_path)
    assert all(r.mode == "generate" and isinstance(r.text, str) for r in records)


def test_idefics_generation_stops_at_end_of_utterance_and_never_emits_image_tokens(tmp_path):
    from PIL import Image

    backend = idefics.IdeficsBackend(str(tiny_idefics(tmp_path / "m")))
    kwargs = backend.generate_kwargs()
    tok = backend.tokenizer
    assert tok.convert_tokens_to_ids("<end_of_utterance>") in kwargs["eos_token_id"]
    assert [tok.convert_tokens_to_ids("<image>")] in kwargs["bad_words_ids"]
    inputs = backend.encode([Image.new("RGB", (40, 30), "red")], ["User: hi<image><end_of_utterance>\nAssistant:"])
    tokens = tok.convert_ids_to_tokens(inputs["input_ids"][0])
    assert tokens.count("<end_of_utterance>") == 1 and "<image>" in tokens  # the processor added none of its own
    with pytest.raises(ValueError, match="must contain <image>"):
        backend.encode([Image.new("RGB", (4, 4))], ["no image marker"])


# -- remote-code models --------------------------------------------------------------------------
def test_remote_code_models_refuse_without_opt_in():
    from harness.plugins.lmm import QwenVlAdapter, XComposer2Adapter

    for adapter in (QwenVlAdapter, XComposer2Adapter):
        with pytest.raises(ValueError, match="trust_remote_code=true"):
            adapter(path="x")
        adapter(path="x", trust_remote_code="true")  # accepted: nothing loads before setup
    with pytest.raises(ValueError, match="unknown model arguments"):
        QwenVlAdapter(path="x", trust_remote_code=True, chat_template="{prompt}")


@pytest.fixture
def standins(monkeypatch):
    """Route the transformers auto classes to the stand-ins and record how they were called."""
    import remote_code_standins as s
    import transformers

    calls: list[dict] = []
    tokenizer = s.standin_tokenizer()
    made: dict = {}

    def fake_loader(kind):
        def load(path, **kwargs):
            calls.append({"kind": kind, "path": path, **kwargs})
            if kind == "tokenizer":
                s.qwen_font_lookup(path)
                return tokenizer
            if kind == "causal":
                made["model"] = s.qwen_precision(s.QwenVlStandin(tokenizer), kwargs)
            else:
                made["model"] = s.XComposer2Standin(tokenizer)
            return made["model"]

        return load

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_loader("tokenizer"))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_loader("causal"))
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", fake_loader("auto"))
    return calls, made


def qwen_checkpoint(tmp_path: Path) -> Path:
    """A folder laid out like the Qwen-VL-Chat repository as far as loading cares (tokenizer file, font)."""
    folder = tmp_path / "qwen-vl-chat"
    folder.mkdir(exist_ok=True)
    (folder / "qwen.tiktoken").write_text("")
    (folder / "SimSun.ttf").write_bytes(b"font")
    return folder


def images(tmp_path: Path) -> list[str]:
    """Three images at paths of different lengths (so Qwen-VL's prompts differ in length)."""
    from PIL import Image

    paths = [tmp_path / "a.png", tmp_path / "deeper" / "folder" / "b.png", tmp_path / "c.png"]
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 12), (40 * i, 200 - 60 * i, 90)).save(path)
    return [str(p) for p in paths]


def test_qwen_vl_chatml_scoring_left_pads_with_positions_and_chats_greedily(standins, tmp_path):
    from harness.plugins.lmm.backends.qwen_vl import QwenVlBackend

    calls, made = standins
    backend = QwenVlBackend(str(qwen_checkpoint(tmp_path)), device="cpu", trust_remote_code=True)
    assert all(c["trust_remote_code"] is True and c["local_files_only"] is True for c in calls)
    paths = images(tmp_path)
    batched = backend.score(paths)
    single = [backend.score([p])[0] for p in paths]
    np.testing.assert_allclose(batched, single, atol=1e-5)
    model = made["model"]
    first = model.forward_calls[0]
    text = backend.tokenizer.decode(first["input_ids"][0][first["attention_mask"][0].bool()])
    assert text.startswith("<|im_start|> system You are a helpful assistant")
    assert "<img>" in text and text.endswith("<|im_start|> assistant This image is")
    assert first["attention_mask"][0, 0] == 0  # left padding: the first path is the shortest
    assert backend.info()["context"] == "harness chatml_context"

    answers = backend.generate(paths[:1], ["Is this a real image?"], max_new_tokens=7)
    call = model.chat_calls[0]
    assert answers == ["This image is fake ."] and call["do_sample"] is False and call["max_new_tokens"] == 7
    assert call["query"] == f"Picture 1: <img>{paths[0]}</img>\nIs this a real image?"


def test_qwen_vl_loads_offline_from_its_folder_and_restores_the_working_directory(standins, tmp_path, monkeypatch):
    """The tokenizer code looks for SimSun.ttf in the current folder (else downloads it): the harness loads with
    the checkpoint folder as the working directory; without the font the error names the file."""
    import os

    from harness.plugins.lmm.backends.qwen_vl import QwenVlBackend

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    folder = qwen_checkpoint(tmp_path)
    QwenVlBackend(str(folder), device="cpu", trust_remote_code=True)
    assert os.getcwd() == str(elsewhere) and not (elsewhere / "SimSun.ttf").exists()
    (folder / "SimSun.ttf").unlink()
    with pytest.raises(RuntimeError, match=r"SimSun\.ttf .*into " + str(folder)):
        QwenVlBackend(str(folder), device="cpu", trust_remote_code=True)
    assert os.getcwd() == str(elsewhere)


@pytest.mark.parametrize("dtype, expected", [("bf16", "bfloat16"), ("fp32", "float32"), ("auto", "float32")])
def test_qwen_vl_precision_follows_its_own_flags(standins, tmp_path, dtype, expected):
    """Qwen-VL ignores torch_dtype and reads bf16/fp16/fp32 flags: exactly one is passed, the real dtype recorded."""
    from harness.plugins.lmm.backends.qwen_vl import QwenVlBackend

    calls, made = standins
    backend = QwenVlBackend(str(qwen_checkpoint(tmp_path)), device="cpu", trust_remote_code=True, dtype=dtype)
    [load] = [c for c in calls if c["kind"] == "causal"]
    assert sum(bool(load[f]) for f in ("bf16", "fp16", "fp32")) == 1
    assert str(next(made["model"].parameters()).dtype) == f"torch.{expected}"
    assert backend.info()["dtype"] == expected and backend.info()["requested_dtype"] == dtype
    scores = backend.score(images(tmp_path)[:2])
    assert all(0.0 < s < 1.0 for s in scores)


def test_qwen_vl_image_paths_over_256_bytes_are_scored_under_a_short_alias(standins, tmp_path):
    from harness.plugins.lmm.backends.qwen_vl import QwenVlBackend

    calls, made = standins
    backend = QwenVlBackend(str(qwen_checkpoint(tmp_path)), device="cpu", trust_remote_code=True)
    [short] = images(tmp_path)[:1]
    deep = tmp_path.joinpath(*["a-rather-long-folder-name-for-testing"] * 8) / "image.png"
    deep.parent.mkdir(parents=True)
    deep.write_bytes(Path(short).read_bytes())
    assert len(str(deep).encode()) > 256
    with pytest.raises(ValueError, match="too long"):  # what the repository's code does with the path itself
        backend.tokenizer.from_list_format([{"image": str(deep)}, {"text": "x"}])
    [long_score] = backend.score([str(deep)])  # the stand-in's prompt spells the path out, so only validity here;
    assert 0.0 < long_score < 1.0  # equality with the real code on long paths: conformance/check_qwen_vl.py
    [answer] = backend.generate([str(deep)], ["Real?"], max_new_tokens=3)
    query = made["model"].chat_calls[-1]["query"]
    alias = query.split("<img>")[1].split("</img>")[0]
    assert len(alias.encode()) <= 256 and not Path(alias).exists()  # linked for the call, removed after


def test_byte_level_anchor_tokens_are_recorded_as_text():
    """tiktoken-based tokenizers (Qwen) return bytes from convert_ids_to_tokens; results record text."""
    assert soft_scoring.token_text(b" fake") == " fake"
    assert soft_scoring.token_text("\u2581fake") == "\u2581fake"

    class BytesTokenizer:
        unk_token_id = None

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [{"This": 1, "image": 2, "is": 3, "fake": 4, "real": 5}[w] for w in text.split()]}

        def convert_ids_to_tokens(self, token_id):
            return {4: b" fake", 5: b" real"}[token_id]

    fake, real = soft_scoring.resolve_anchors(BytesTokenizer(), "This image is", ["fake"], ["real"])
    assert fake.tokens == [" fake"] and real.tokens == [" real"]
    json.dumps(soft_scoring.anchors_record(fake, real))


def test_xcomposer2_appends_the_answer_prefix_embeddings_and_batches_equal_lengths(standins, tmp_path):
    from PIL import Image

    from harness.plugins.lmm.backends.xcomposer2 import XComposer2Backend

    calls, made = standins
    backend = XComposer2Backend("internlm/internlm-xcomposer2-vl-7b", device="cpu", trust_remote_code="yes")
    assert [c["kind"] for c in calls] == ["tokenizer", "auto"]
    paths = images(tmp_path)
    batched = backend.score(paths)
    assert len(set(batched)) == 3  # the image embeddings reach the logits
    np.testing.assert_allclose(batched, [backend.score([p])[0] for p in paths], atol=1e-5)
    model = made["model"]
    call = model.forward_calls[0]
    prefix = len(backend.tokenizer(soft_scoring.ANSWER_PREFIX, add_special_tokens=False)["input_ids"])
    assert call["shape"][0] == 3  # one forward pass for the equal-length conversations
    assert call["im_mask"][0].sum() == model.IMAGE_TOKENS and not call["im_mask"][0, -prefix:].any()
    assert model.last_prompt.endswith("[UNUSED_TOKEN_146]assistant\n")
    assert "<ImageHere>" + soft_scoring.QUESTION in model.last_prompt

    in_memory = Image.open(paths[0])
    [answer] = backend.generate([in_memory], ["Describe the artifacts."], max_new_tokens=5)
    call = model.generate_calls[-1]
    assert call["do_sample"] is False and call["rows"] == 1 and call["max_new_tokens"] == 5
    assert call["repetition_penalty"] == 1.005 == backend.info()["repetition_penalty"], "upstream chat()'s default"
    assert model.last_prompt.endswith("user\n<ImageHere>Describe the artifacts.[UNUSED_TOKEN_145]\n"
                                      "[UNUSED_TOKEN_146]assistant\n")  # fmt: skip
    assert model.encoded[-1].endswith(".png") and not Path(model.encoded[-1]).exists(), "temporary file removed"
    [(query, response)] = model.chat(backend.tokenizer, "<ImageHere>Describe the artifacts.", image=paths[0],
                                     meta_instruction=backend.meta_instruction, max_new_tokens=5, do_sample=False,
                                     repetition_penalty=1.005)[1]  # fmt: skip
    assert answer == response.strip()


@pytest.mark.parametrize(
    "builder,backend_class", [(tiny_instructblip, instructblip.InstructBlipBackend), ("llava", llava.LlavaBackend)]
)
def test_fast_scoring_path_equals_the_full_processor_path(builder, backend_class, data, tmp_path):
    """Pixels prepared off the model thread + cached token ids give the processor's own inputs' logits."""
    import torch
    from tiny_models import tiny_llava

    path = (tiny_llava if builder == "llava" else builder)(tmp_path / "m")
    backend = backend_class(str(path))
    images = sorted(str(p) for p in data.glob("*.png"))[:3]
    fast = backend.next_token_logits([backend.prepare_pixels(p) for p in images])
    full = backend.next_token_logits(images, prompt=backend.score_prompt)  # processor(images, text) path
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    assert backend.score(images) == pytest.approx(backend.score([backend.prepare_pixels(p) for p in images]))


@pytest.mark.slow
def test_compile_option_compiles_the_forward_pass_and_keeps_scores(data, tmp_path):
    from tiny_models import tiny_llava

    path = tiny_llava(tmp_path / "m")
    images = sorted(str(p) for p in data.glob("*.png"))[:2]
    plain = llava.LlavaBackend(str(path))
    compiled = llava.LlavaBackend(str(path), compile="eager")  # the inductor backend needs a compiler toolchain
    assert compiled.info()["torch_compile"] == "eager" and plain.info()["torch_compile"] is False
    assert compiled.score(images) == pytest.approx(plain.score(images), abs=1e-6)
    # only the scoring call is compiled: generate() runs the model's own eager forward (a compiled model object
    # recompiled at every decoding step's new shape: 0.047 answers/s instead of 34.7 in a CPU rehearsal)
    assert hasattr(compiled._score_forward, "_torchdynamo_orig_callable")
    assert not hasattr(compiled.model.forward, "_torchdynamo_orig_callable")
    assert compiled.generate(images[:1], ["Is it real?"], max_new_tokens=3) == plain.generate(
        images[:1], ["Is it real?"], max_new_tokens=3
    )


@pytest.mark.slow
def test_a_baseline_runs_in_a_worker_with_the_same_scores(data, tmp_path):
    """Any backend runs behind the worker protocol (python=...), not only LLaVA's."""
    import sys

    path = tiny_instructblip(tmp_path / "m")
    local = run("instructblip-vicuna-7b", {"path": str(path)}, data, tmp_path / "local")
    worker = run("instructblip-vicuna-7b", {"path": str(path), "python": sys.executable}, data, tmp_path / "w")
    np.testing.assert_allclose(
        [r.score for r in read_samples(worker.results_path)],
        [r.score for r in read_samples(local.results_path)],
        atol=1e-6,
    )
    info = json.loads(worker.results_path.read_text())["model"]["preprocessing"]
    assert info["isolated_worker"] is True and info["backend"] == "instructblip"


def test_missing_weights_are_a_clear_error_not_a_download(tmp_path):
    from harness.interfaces import ModelLoadError
    from harness.plugins.lmm import InstructBlipAdapter

    adapter = InstructBlipAdapter(path="nobody/no-such-model")
    with pytest.raises(
        ModelLoadError, match=r"not in the local Hugging Face cache .*`hf download nobody/no-such-model`"
    ):
        adapter.setup("cpu")
    with pytest.raises(ModelLoadError, match="no checkpoint folder at") as missing:
        InstructBlipAdapter(path=str(tmp_path / "missing")).check()
    assert "download" not in str(missing.value)  # a filesystem path is never offered as a hub id
    with pytest.raises(ModelLoadError, match="no checkpoint folder at"):  # also when a worker would load it
        InstructBlipAdapter(path="/models/x", python=sys.executable).check()


def test_hub_ids_are_fingerprinted_by_their_cached_revision(tmp_path, monkeypatch):
    """Two revisions of one hub id (different files, different prompts) never share cached answers."""
    import huggingface_hub.constants

    from harness.plugins.lmm import QwenVlAdapter

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--Qwen--Qwen-VL-Chat"
    hashes = []
    for revision, code in (("a" * 40, "old"), ("b" * 40, "new")):
        snapshot = repo / "snapshots" / revision
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text("{}")
        (snapshot / "modeling_qwen.py").write_text(code)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(revision)
        adapter = QwenVlAdapter(path="Qwen/Qwen-VL-Chat", trust_remote_code=True)
        adapter.check()  # present in the cache: no error
        hashes.append(adapter.weights_hash())
    assert hashes[0] != hashes[1] and all(h.startswith("hub:Qwen/Qwen-VL-Chat@") for h in hashes)


def test_answers_are_ordered_by_prompt_length_scores_keep_task_order():
    from harness.plugins.lmm import IdeficsAdapter
    from harness.records import Request, Sample

    adapter, sample = IdeficsAdapter(path="x"), Sample(id="a", image="a.png", label=1)
    assert adapter.cost(Request(sample, kind="generate", prompt="Describe the artifacts.")) == 23.0
    assert adapter.cost(Request(sample, kind="score")) is None


def test_open_image_keeps_an_rgb_image_and_converts_others():
    from PIL import Image

    from harness.plugins.lmm.backends.images import open_image

    rgb, grey = Image.new("RGB", (4, 3)), Image.new("L", (4, 3))
    assert open_image(rgb) is rgb
    assert open_image(grey).mode == "RGB" and open_image(grey) is not grey


def test_xcomposer2_scores_the_answer_prefix_as_written_in_the_turn(monkeypatch, tmp_path):
    """With a SentencePiece-style vocabulary (dummy prefix at a text's start), the answer prefix after
    ``assistant\\n`` is other tokens than the prefix alone (here ``assistant\\nThis`` is even one piece).
    Eq. 2 must be read after the turn as the repository tokenizes it: the whole text after the image, prefix
    included, as one part with BOS (what conformance/upstream_xcomposer2.py computes from the real code; the old
    way, the prefix tokenized alone and appended, differed there by 0.014)."""
    import remote_code_standins as s
    import torch
    import transformers

    from harness.plugins.lmm.backends.xcomposer2 import XComposer2Backend

    tokenizer = s.sentencepiece_like_tokenizer()
    model = s.XComposer2Standin(tokenizer)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: model)
    backend = XComposer2Backend("internlm/internlm-xcomposer2-vl-7b", device="cpu", trust_remote_code="yes")
    paths = images(tmp_path)

    def anchors(words):
        base = tokenizer(soft_scoring.ANSWER_PREFIX)["input_ids"]
        rests = [tokenizer(f"{soft_scoring.ANSWER_PREFIX} {w}")["input_ids"][len(base) :] for w in words]
        return [r[0] for r in rests if len(r) == 1]

    fake, real = anchors(["fake", "Fake"]), anchors(["real", "Real"])
    meta = backend.meta_instruction
    expected, appended = [], []
    for path in paths:  # the repository's prompt, written out, with the prefix in the text
        text = (f"[UNUSED_TOKEN_146]system\n{meta}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]user\n<ImageHere>"
                f"{soft_scoring.QUESTION}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n"
                + soft_scoring.ANSWER_PREFIX)  # fmt: skip
        before, after = text.split("<ImageHere>")
        image = model.encode_img(path)
        with torch.no_grad():
            parts = [model.model.tok_embeddings(torch.tensor([tokenizer(before)["input_ids"]])), image,
                     model.model.tok_embeddings(torch.tensor([tokenizer(after)["input_ids"]]))]  # fmt: skip
            z = model.lm(inputs_embeds=torch.cat(parts, dim=1)).logits[0, -1]
            expected.append(float(torch.softmax(torch.stack([z[fake].sum(), z[real].sum()]), 0)[0]))
            alone = tokenizer(soft_scoring.ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
            inputs, _ = model.interleav_wrap_chat(tokenizer, "<ImageHere>" + soft_scoring.QUESTION, image, [], meta)
            old = torch.cat([inputs["inputs_embeds"], model.model.tok_embeddings(torch.tensor([alone]))], dim=1)
            z = model.lm(inputs_embeds=old).logits[0, -1]
            appended.append(float(torch.softmax(torch.stack([z[fake].sum(), z[real].sum()]), 0)[0]))
    assert backend.score(paths) == pytest.approx(expected, abs=1e-6)
    assert max(abs(a - b) for a, b in zip(appended, expected, strict=True)) > 1e-4, "the old way differs here"
    assert "\u2581This" not in backend.info()["scored_turn"], "the turn holds no dummy-prefix 'This'"


def test_xcomposer2_in_half_precision_on_the_cpu_runs_under_autocast(monkeypatch, tmp_path):
    """The repository's encode_img hands float32 image features to a projector in the weights' dtype; its examples
    run chat() under autocast. Without it bf16 weights fail on the CPU ('mat1 and mat2 must have the same dtype', as
    the conformance run found); the backend autocasts at the weights' dtype."""
    import contextlib

    import remote_code_standins as s
    import torch
    import transformers

    from harness.plugins.lmm.backends.xcomposer2 import XComposer2Backend

    tokenizer = s.standin_tokenizer()
    model = s.XComposer2Standin(tokenizer).to(torch.bfloat16)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: model)
    backend = XComposer2Backend("internlm/internlm-xcomposer2-vl-7b", device="cpu", trust_remote_code="yes")
    paths = images(tmp_path)
    scores = backend.score(paths)
    assert all(0 < x < 1 for x in scores) and len(set(scores)) > 1
    monkeypatch.setattr(backend, "_autocast", contextlib.nullcontext)
    with pytest.raises(RuntimeError, match="dtype"):
        backend.score(paths)


@pytest.mark.parametrize(
    "builder,backend_class", [("llava", llava.LlavaBackend), (tiny_instructblip, instructblip.InstructBlipBackend)]
)
def test_a_static_kv_cache_generates_the_eager_tokens(builder, backend_class, data, tmp_path):
    """``cache_implementation=static`` (a fixed-shape KV cache, with which transformers compiles the decoding step
    on CUDA) gives the same greedy tokens as the default growing cache, batched and left-padded; a value other
    than dynamic|static is refused."""
    from tiny_models import tiny_llava

    path = (tiny_llava if builder == "llava" else builder)(tmp_path / "m")
    images = sorted(str(p) for p in data.glob("*.png"))[:3]
    prompts = ["Is it real?", "Describe the artifacts in this image.", "Why?"]
    dynamic = backend_class(str(path))
    static = backend_class(str(path), cache_implementation="static")
    assert static.info()["cache_implementation"] == "static" and dynamic.info()["cache_implementation"] == "dynamic"
    assert static.generate(images, prompts, max_new_tokens=8) == dynamic.generate(images, prompts, max_new_tokens=8)
    with pytest.raises(ValueError, match="dynamic, static"):
        backend_class(str(path), cache_implementation="offloaded")


def test_qwen_vl_answers_equal_length_contexts_in_one_generate_call_as_chat_answers_each(standins, tmp_path,
                                                                                          monkeypatch):  # fmt: skip
    """Issue #28: with the repository's chat steps in its module, one ``generate`` per context length, and every
    answer what ``chat`` gives for that image alone (finished rows cut at their end token before decoding)."""
    import qwen_vl_standin
    import remote_code_standins as s

    from harness.plugins.lmm.backends.qwen_vl import QwenVlBackend

    monkeypatch.setattr(s, "QwenVlStandin", qwen_vl_standin.QwenVlGenerating)
    calls, made = standins
    backend = QwenVlBackend(str(qwen_checkpoint(tmp_path)), device="cpu", trust_remote_code=True)
    model = made["model"]
    assert backend.info()["answers"] == "chat's steps, batched by context length"
    a, b, c = images(tmp_path)
    paths, prompts = [a, c, a, b], ["yes no", "This image", "real ?", "yes no"]  # "yes no" ends first: padded
    answers = backend.generate(paths, prompts, max_new_tokens=8)
    assert sorted(model.generate_calls) == [1, 3], "a.png, c.png (paths of one length), two-word questions: one call"
    alone = [model.chat(backend.tokenizer, backend._query(p, q), system=backend.system, max_new_tokens=8,
                        do_sample=False)[0].strip() for p, q in zip(paths, prompts, strict=True)]  # fmt: skip
    assert answers == alone and len(set(answers)) > 1


def test_xcomposer2_answers_equal_length_conversations_in_one_generate_call_as_chat_answers_each(standins, tmp_path):
    """Issue #28: one ``generate`` per conversation length, and every answer what the repository's ``chat`` gives
    for that image alone; here the first row runs to the token limit and the other three end before it (padded
    in the batch)."""
    from harness.plugins.lmm.backends.xcomposer2 import XComposer2Backend

    _, made = standins
    backend = XComposer2Backend("internlm/internlm-xcomposer2-vl-7b", device="cpu", trust_remote_code=True)
    model = made["model"]
    a, b, _ = images(tmp_path)
    sources = [a, a, b, b, a]
    prompts = ["fake ?", "yes no", "yes no", "real ?", "Is this a real image ?"]
    answers = backend.generate(sources, prompts, max_new_tokens=8)
    assert [call["rows"] for call in model.generate_calls] == [4, 1]
    alone = [
        model.chat(backend.tokenizer, "<ImageHere>" + prompt, image=source, meta_instruction=backend.meta_instruction,
                   max_new_tokens=8, do_sample=False, repetition_penalty=backend.repetition_penalty)[0].strip()
        for source, prompt in zip(sources, prompts, strict=True)
    ]  # fmt: skip
    assert answers == alone and len(set(answers)) >= 2
    assert len(answers[0].split()) == 8 > max(len(answer.split()) for answer in answers[1:4]), "rows ended early"
    lengths = [len(model.generate_calls[i]["eos_token_id"]) for i in range(2)]
    assert lengths == [2, 2], "chat()'s two end tokens"


def test_compile_auto_keeps_the_compiled_forward_only_where_its_scores_match_eager(data, tmp_path, monkeypatch):
    """Issue #28 item 3: ``compile=auto`` (the default) is eager on the CPU; where it compiles (CUDA), the first
    batch runs both ways and the compiled forward stays only if its Eq. 2 scores are within the dtype's tolerance,
    else the run goes on eagerly; a backend that fails to compile falls back too. The check is recorded. Here a
    stand-in ``torch.compile`` returns a forward that is exact, one that moves the fake anchors' logits, or one
    that raises."""
    import torch
    from tiny_models import tiny_llava

    from harness.plugins.lmm.backends import hf_vlm

    path = tiny_llava(tmp_path / "m")
    images = sorted(str(p) for p in data.glob("*.png"))[:3]
    eager = llava.LlavaBackend(str(path))
    assert eager.compiled is None and eager.info()["compile_check"] is None, "auto on the CPU: eager"
    expected = eager.score(images)

    def exact(forward, **_):
        return forward

    def skewed(forward, **_):
        def run(**inputs):
            output = forward(**inputs)
            output.logits[..., eager.fake.ids] += 0.5
            return output

        return run

    def broken(forward, **_):
        def run(**inputs):
            raise RuntimeError("no compiler toolchain\nmore")

        return run

    def silent(forward, **_):
        def run(**inputs):
            raise RuntimeError()

        return run

    monkeypatch.setattr(hf_vlm, "auto_compile_backend", lambda device: "stand-in")
    outcomes = {}
    for name, compile_fn in (("exact", exact), ("skewed", skewed), ("broken", broken), ("silent", silent)):
        monkeypatch.setattr(torch, "compile", compile_fn)
        backend = llava.LlavaBackend(str(path))
        calls = []
        original = backend._score_forward
        backend._score_forward = lambda c=calls, f=original, **inputs: c.append(1) or f(**inputs)
        assert backend.score(images[:2]) == pytest.approx(expected[:2], abs=1e-6)
        assert backend.score(images[2:]) == pytest.approx(expected[2:], abs=1e-6)
        outcomes[name] = (backend.info()["compile_check"], backend.compiled, len(calls))
    check, compiled, calls = outcomes["exact"]
    assert check["kept"] and check["max_abs_score_diff"] == 0.0 and compiled == "stand-in" and calls == 2
    assert check["tolerance"] == hf_vlm.COMPILE_TOLERANCE["float32"] and check["batch"] == 2
    check, compiled, calls = outcomes["skewed"]
    assert not check["kept"] and check["max_abs_score_diff"] > 0.01 and compiled is None and calls == 1
    check, compiled, _ = outcomes["broken"]
    assert not check["kept"] and check["error"] == "RuntimeError: no compiler toolchain" and compiled is None
    check, compiled, _ = outcomes["silent"]
    assert not check["kept"] and check["error"] == "RuntimeError" and compiled is None, "an empty message too"


def test_generate_encodes_the_images_once_not_at_every_decoding_step(data, tmp_path):
    """Issue #28 item 1: no per-step work repeats the image: one vision-tower and projector call per ``generate``
    call (for the whole batch), one language-model call per new token."""
    from tiny_models import tiny_llava

    backend = llava.LlavaBackend(str(tiny_llava(tmp_path / "m")))
    inner = backend.model.model
    counts = {"vision_tower": 0, "multi_modal_projector": 0, "language_model": 0}
    for name in counts:
        getattr(inner, name).register_forward_hook(lambda *_, n=name: counts.__setitem__(n, counts[n] + 1))
    new_tokens = []
    original = backend.model.generate

    def generate(**inputs):
        output = original(**inputs)
        new_tokens.append(output.shape[1] - inputs["input_ids"].shape[1])
        return output

    backend.model.generate = generate
    images = sorted(str(p) for p in data.glob("*.png"))[:3]
    backend.generate(images, ["Is it real?"] * 3, max_new_tokens=6)
    assert counts["vision_tower"] == counts["multi_modal_projector"] == 1
    assert counts["language_model"] == new_tokens[0] > 1
