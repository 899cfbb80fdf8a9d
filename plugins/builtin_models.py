"""Registers the built-in model adapters. Imports nothing heavy: targets load on use."""

from harness import hookimpl


@hookimpl
def register_models(register):
    """Every built-in adapter, each with where its weights come from (``sources.yaml``)."""
    from importlib import resources

    from harness.registry import with_sources

    register = with_sources(register, (resources.files("harness.plugins") / "sources.yaml").read_text(), "models")
    register_light_models(register)
    register_lmms(register)
    register_torch_detectors(register)


def register_light_models(register):
    """Models that run without torch: FreDect, the format auditor, the testing model."""
    register(
        "fredect",
        "harness.plugins.fredect:FreDect",
        aliases=["fredect-dct"],
        tags=("detector",),
        description="FreDect (Frank et al. 2020): log-DCT + standardisation + logistic regression. "
        "Needs checkpoint=DIR from `harness train fredect`.",
    )
    register(
        "format-shortcut",
        "harness.plugins.format_shortcut:FormatShortcut",
        tags=("audit",),
        description="Auditor that sees only file format, size, mode and JPEG quality; "
        "above chance means the benchmark leaks labels through storage.",
    )
    register(
        "noop",
        "harness.testkit.components:NoopModel",
        tags=("testing",),
        description="Pseudo-scores from the sample id, no pixels read: for testing tasks and timing "
        "the harness itself.",
    )


def register_lmms(register):
    """FakeScope, the baseline LMMs and any OpenAI-compatible endpoint."""
    register(
        "fakescope-llava",
        "harness.plugins.lmm:LlavaAdapter",
        tags=("lmm", "fakescope"),
        description="FakeScope on LLaVA-1.5 (HF format, path=DIR): Eq. 2 soft-scoring and greedy answers; "
        "python=ENV/bin/python runs it in an isolated worker.",
    )
    register(
        "llava-1.5",
        "harness.plugins.lmm:LlavaAdapter",
        aliases=["llava-1.5-7b"],
        tags=("lmm", "baseline"),
        path="llava-hf/llava-1.5-7b-hf",
        description="LLaVA-1.5-7B baseline (default path: llava-hf/llava-1.5-7b-hf from the local HF cache).",
    )
    register(
        "fakescope-owl2",
        "harness.plugins.lmm:Owl2Adapter",
        tags=("lmm", "fakescope"),
        description="FakeScope on mPLUG-Owl2 via upstream mplug_owl2 code, normally in a worker environment "
        "(python=...; see `harness env create mplug-owl2`).",
    )
    register(
        "mplug-owl2",
        "harness.plugins.lmm:Owl2Adapter",
        tags=("lmm", "baseline"),
        path="MAGAer13/mplug-owl2-llama2-7b",
        description="mPLUG-Owl2 baseline (upstream code in a worker environment).",
    )
    register(
        "instructblip-vicuna-7b",
        "harness.plugins.lmm:InstructBlipAdapter",
        aliases=["instructblip"],
        tags=("lmm", "baseline"),
        path="Salesforce/instructblip-vicuna-7b",
        description="InstructBLIP (Vicuna-7B) baseline through transformers (default path from the local "
        "HF cache); plain-instruction prompts as upstream LAVIS.",
    )
    register(
        "idefics-instruct",
        "harness.plugins.lmm:IdeficsAdapter",
        aliases=["idefics-9b-instruct"],
        tags=("lmm", "baseline"),
        path="HuggingFaceM4/idefics-9b-instruct",
        description="IDEFICS-Instruct baseline through transformers, in its User:/Assistant: dialogue format.",
    )
    register(
        "qwen-vl-chat",
        "harness.plugins.lmm:QwenVlAdapter",
        aliases=["qwen-vl"],
        tags=("lmm", "baseline"),
        path="Qwen/Qwen-VL-Chat",
        description="Qwen-VL-Chat baseline through its repository's code: needs trust_remote_code=true, "
        "normally python=... of `harness env create qwen-vl-chat`.",
    )
    register(
        "internlm-xcomposer2-vl",
        "harness.plugins.lmm:XComposer2Adapter",
        aliases=["xcomposer2-vl"],
        tags=("lmm", "baseline"),
        path="internlm/internlm-xcomposer2-vl-7b",
        description="InternLM-XComposer2-VL baseline through its repository's code: needs "
        "trust_remote_code=true, normally python=... of `harness env create internlm-xcomposer2-vl`.",
    )
    register(
        "openai-api",
        "harness.plugins.openai_api:OpenAIApiModel",
        aliases=["api", "vllm"],
        tags=("lmm", "api"),
        description="Any OpenAI-compatible endpoint (model=NAME, base_url=URL; key from HARNESS_API_KEY): "
        "answers, and soft scores from top_logprobs when the endpoint returns them.",
    )


def register_torch_detectors(register):
    """The torch detectors of AIGCDetectBenchmark and CLIP zero-shot."""
    d = "harness.plugins.detectors"
    register(
        "cnnspot",
        f"{d}:CNNSpot",
        tags=("detector",),
        description="CNNSpot (Wang et al. 2020): ResNet-50 + 1 logit; checkpoint=CNNDetection .pth or a "
        "`harness train cnnspot` folder. Centre crop 224, no resize (resize=256 optional).",
    )
    register(
        "univfd",
        f"{d}:UnivFD",
        tags=("detector",),
        description="UnivFD (Ojha et al. 2023): CLIP ViT-L/14 embedding + linear head; checkpoint=fc_weights.pth "
        "or a `harness train univfd` folder, clip=HF folder or OpenAI .pt.",
    )
    register(
        "fredect-resnet",
        f"{d}:FreDectResNet",
        tags=("detector",),
        description="AIGCDetectBenchmark FreDect: ResNet-50 on a normalised 224 log-DCT (netC checkpoint, "
        "dct_mean=, dct_var=).",
    )
    register(
        "clip-zeroshot",
        f"{d}:ClipZeroShot",
        tags=("detector", "zero-shot"),
        description="CLIP ViT-L/14 zero-shot with real / AI-generated prompt ensembles (clip=HF folder).",
    )
