"""Loading upstream detector checkpoints strictly (torch): formats, key mapping, clear errors.

Every load goes through ``torch.load(..., weights_only=True, map_location="cpu")``
(no arbitrary pickle code; UnivFD's ``fc_weights.pth`` was saved on ``cuda:0`` and
loads anywhere) or safetensors, then ``load_state_dict(strict=True)``: a missing or
unexpected key is a :class:`CheckpointError` that names the keys, never a silently
random model (AIGCDetectBenchmark's ``eval_all.py`` swallows that error).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.checkpoints import CONFIG, WEIGHTS, CheckpointError
from harness.fingerprint import hash_path_memo


def load_torch_file(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU, errors naming the file."""
    import torch

    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        raise CheckpointError(
            f"{path}: cannot load as a weights-only torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Remove ``prefix`` (e.g. DataParallel's ``module.``) when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_strict(module: Any, state: dict[str, Any], where: str) -> None:
    """``load_state_dict(strict=True)`` with missing / unexpected keys and shape mismatches named."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
            f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}"
        )
    bad = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise CheckpointError(f"{where}: shape mismatch: {bad[:5]}")
    module.load_state_dict(state, strict=True)


def harness_checkpoint(path: Path, model: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(state dict, config) of a ``harness train`` folder for ``model``; ``None`` if ``path`` is not one."""
    from safetensors.torch import load_file

    if not (path.is_dir() and (path / WEIGHTS).is_file() and (path / CONFIG).is_file()):
        return None
    config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    if config.get("model") != model:
        raise CheckpointError(f"{path}: checkpoint is for model {config.get('model')!r}, not {model!r}")
    return load_file(str(path / WEIGHTS)), config


def checkpoint_hash(path: str | Path) -> str:
    """Content hash of a checkpoint file or folder (memoised)."""
    return hash_path_memo(Path(path).expanduser())


def openai_clip_visual_to_hf(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Map an OpenAI / open_clip CLIP state dict's vision tower to ``CLIPVisionModelWithProjection`` keys.

    Returns (HF state dict, CLIPVisionConfig kwargs inferred from the shapes). Follows
    transformers' ``convert_clip_original_pytorch_to_hf.py``: ``in_proj`` split in three,
    ``ln_pre`` -> ``pre_layrnorm`` (sic), ``visual.proj`` transposed into
    ``visual_projection.weight``; OpenAI's towers use QuickGELU.
    """
    state = strip_prefix(state, "module.")
    if not any(k.startswith("visual.") for k in state):
        raise CheckpointError("not an OpenAI/open_clip CLIP state dict: no 'visual.*' keys")
    out: dict[str, Any] = {}
    v = "vision_model."
    out[v + "embeddings.class_embedding"] = state["visual.class_embedding"]
    out[v + "embeddings.position_embedding.weight"] = state["visual.positional_embedding"]
    out[v + "embeddings.patch_embedding.weight"] = state["visual.conv1.weight"]
    for src, dst in (("visual.ln_pre", "pre_layrnorm"), ("visual.ln_post", "post_layernorm")):
        out[f"{v}{dst}.weight"], out[f"{v}{dst}.bias"] = state[f"{src}.weight"], state[f"{src}.bias"]
    layers = sorted({int(k.split(".")[3]) for k in state if k.startswith("visual.transformer.resblocks.")})
    for i in layers:
        src, dst = f"visual.transformer.resblocks.{i}.", f"{v}encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, val = state[f"{src}attn.in_proj_{kind}"].chunk(3, dim=0)
            out[f"{dst}self_attn.q_proj.{kind}"], out[f"{dst}self_attn.k_proj.{kind}"] = q, k
            out[f"{dst}self_attn.v_proj.{kind}"] = val
            out[f"{dst}self_attn.out_proj.{kind}"] = state[f"{src}attn.out_proj.{kind}"]
            out[f"{dst}layer_norm1.{kind}"] = state[f"{src}ln_1.{kind}"]
            out[f"{dst}layer_norm2.{kind}"] = state[f"{src}ln_2.{kind}"]
            out[f"{dst}mlp.fc1.{kind}"] = state[f"{src}mlp.c_fc.{kind}"]
            out[f"{dst}mlp.fc2.{kind}"] = state[f"{src}mlp.c_proj.{kind}"]
    out["visual_projection.weight"] = state["visual.proj"].t().contiguous()
    hidden = state["visual.conv1.weight"].shape[0]
    patch = state["visual.conv1.weight"].shape[-1]
    positions = state["visual.positional_embedding"].shape[0]
    grid = int(round((positions - 1) ** 0.5))
    config = {
        "hidden_size": hidden,
        "patch_size": patch,
        "image_size": grid * patch,
        "num_hidden_layers": len(layers),
        "num_attention_heads": max(1, hidden // 64),
        "intermediate_size": state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "projection_dim": state["visual.proj"].shape[1],
        "hidden_act": "quick_gelu",
    }
    return out, config
